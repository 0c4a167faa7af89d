// Which generations still need the saga: not terminal, or terminal with a hold still open. Built by folding the
// global log (from the start, then live), so recovery finds every unfinished generation after any crash without
// scanning streams. Memory holds only unfinished work.
import type { GenerationEvent } from '../domain/events.ts';
import { assertNever } from '../domain/exhaustive.ts';
import { isTerminalStatus, statusAfter, type GenerationStatus } from '../domain/generation.ts';
import { accountMovement } from '../domain/movement.ts';
import { parseAccountId, storeOfAccount } from '../domain/streams.ts';
import type { EventStore, Position, RecordedEvent } from './ports/eventStore.ts';
import { readLog } from './log.ts';
import { decodeRecorded, eventTime } from './recorded.ts';

export interface PendingEntry {
  status: Exclude<GenerationStatus, 'none'>;
  /** epoch ms from which the saga should look at it again */
  dueAt: number;
  holdOpen: boolean;
  /** the paying account (from GenerationRequested): finds a store's generations when it is uninstalled */
  account?: string;
}

export interface PendingSnapshot {
  position: { commit: string; prepare: string };
  entries: Array<[string, PendingEntry]>;
}

/**
 * When recovery should look at a generation after `e`: at once for a released one, when the lease or the retry delay
 * ends, else after the grace (the worker that appended it is probably still driving it).
 */
function dueAfter(e: GenerationEvent, at: number, grace: number): number {
  switch (e.type) {
    case 'GenerationReleased':
      return at;
    case 'GenerationStarted':
      return Date.parse(e.data.leaseUntil);
    case 'RetryScheduled':
      return Date.parse(e.data.notBefore);
    case 'GenerationRequested':
    case 'GenerationCharged':
    case 'GenerationCompleted':
    case 'GenerationFailed':
    case 'GenerationRejected':
      return grace;
    default:
      return assertNever(e, 'generation event');
  }
}

export class PendingIndex {
  private readonly entries = new Map<string, PendingEntry>();
  position: Position | null = null;

  /**
   * `settleGraceMs`: a generation that just changed state is probably being driven by the worker that changed it;
   * recovery looks at it only after this grace.
   */
  constructor(private readonly settleGraceMs = 10_000) {}

  apply(e: RecordedEvent): void {
    this.position = e.position;
    const r = decodeRecorded(e);
    if (!r) return;
    const at = eventTime(e);
    const grace = at + this.settleGraceMs;
    if (r.stream === 'account') {
      const m = accountMovement(r.event);
      switch (m.kind) {
        case 'granted':
        case 'revoked':
        case 'transferred':
          return;
        case 'deducted':
        case 'overage_charged': {
          // A hold taken for a generation that is already terminal (a lost race) must be returned by settle.
          const entry = this.entries.get(m.generationId!);
          this.entries.set(m.generationId!, {
            status: entry?.status ?? 'requested',
            dueAt: Math.max(entry?.dueAt ?? 0, grace),
            holdOpen: true,
            ...(entry?.account ? { account: entry.account } : {}),
          });
          return;
        }
        case 'captured':
        case 'refunded':
        case 'overage_captured':
        case 'overage_refund_due':
          // Capture and refund are appended only once the generation is terminal, and end its only hold: nothing is
          // left to do. (The entry's status can be stale: a hold taken after the generation ended and was dropped
          // comes back as 'requested', and would otherwise stay due forever.)
          this.entries.delete(m.generationId!);
          return;
        default:
          return assertNever(m.kind, 'movement kind');
      }
    }
    if (r.stream === 'store') {
      // An uninstalled store's queued generations are due now: the saga cancels them and returns their holds.
      if (r.event.type === 'StoreUninstalled') for (const id of this.unfinishedOf(r.storeId)) this.entries.get(id)!.dueAt = Math.min(this.entries.get(id)!.dueAt, at);
      return;
    }
    // A transfer is finished by its inbox command being run again (src/bridge), not by the saga.
    if (r.stream === 'transfer') return;
    const { sessionId, event } = r;
    const entry = this.entries.get(sessionId) ?? { status: 'requested' as const, dueAt: grace, holdOpen: false };
    entry.status = statusAfter(event);
    entry.dueAt = dueAfter(event, at, grace);
    if (event.type === 'GenerationRequested') entry.account = event.data.account;
    this.entries.set(sessionId, entry);
    if (isTerminalStatus(entry.status) && !entry.holdOpen) this.entries.delete(sessionId);
  }

  /** Session ids the saga should drive now. */
  due(now: number, ignoreGrace = false): string[] {
    const out: string[] = [];
    for (const [id, e] of this.entries) {
      const waitsForTime = e.status === 'started' || e.status === 'retry_scheduled';
      if (e.dueAt <= now || (ignoreGrace && !waitsForTime)) out.push(id);
    }
    return out;
  }

  /** Unfinished generations paid by the store or one of its shoppers (as far as their request was seen). */
  unfinishedOf(storeId: string): string[] {
    const out: string[] = [];
    for (const [id, e] of this.entries) {
      if (e.account === undefined) continue;
      if (storeOfAccount(parseAccountId(e.account)) === storeId) out.push(id);
    }
    return out;
  }

  get size(): number {
    return this.entries.size;
  }

  /** A snapshot (a cache: consistent with `position`), so a restart resumes the log from there instead of 0. */
  toSnapshot(): PendingSnapshot | null {
    if (!this.position) return null;
    return {
      position: { commit: String(this.position.commit), prepare: String(this.position.prepare) },
      entries: [...this.entries],
    };
  }

  static fromSnapshot(snapshot: PendingSnapshot, settleGraceMs?: number): PendingIndex {
    const index = new PendingIndex(settleGraceMs);
    index.position = { commit: BigInt(snapshot.position.commit), prepare: BigInt(snapshot.position.prepare) };
    for (const [id, entry] of snapshot.entries) index.entries.set(id, entry);
    return index;
  }

  /** Folds the whole log as it stands (tests, `wearon recover`). */
  static async fromLog(store: EventStore, settleGraceMs = 0): Promise<PendingIndex> {
    const index = new PendingIndex(settleGraceMs);
    for await (const page of readLog(store)) for (const e of page) index.apply(e);
    return index;
  }
}

// Invariants 1-3 of ledger.md, checked over the whole log by one streaming pass. Used by `wearon verify` and by the
// property tests. Pure: feed events in global order, then ask for the report.
import type { AccountEvent, GenerationEvent, LedgerEvent, TransferEvent } from './events.ts';
import { isAccountEvent, isStoreEvent } from './decode.ts';
import { assertNever } from './exhaustive.ts';
import { accountMovement, change, transferReference, zeroMovementTotals, type MovementKind } from './movement.ts';
import { isTerminalStatus, statusAfter, type GenerationStatus } from './generation.ts';
import { accountFromStream, accountIdOf, sessionIdFromStream, transferIdFromStream } from './streams.ts';

/** Where a violation shows: the stream and the event (when the caller passed event ids to `add`). */
export interface EventLocation {
  stream: string;
  event_type: string;
  event_id?: string;
  revision?: number;
}

export interface Violation extends Partial<EventLocation> {
  invariant: 1 | 2 | 3 | 4;
  /** account id or session id */
  subject: string;
  message: string;
}

/** A generation's charge: a hold of credits, or an overage (no credit moves). Both count as its one charge. */
interface HoldRecord {
  account: string;
  overage: boolean;
  deductions: number;
  captures: number;
  refunds: number;
  /** the (first) deduction */
  at?: EventLocation;
}

/** A transfer as its events show it: the request, the two legs (credits), where each went, and how it ended. */
interface TransferRecord {
  status: 'none' | 'requested' | 'completed' | 'rejected';
  from?: string;
  to?: string;
  amount?: number;
  out: number;
  in: number;
  outAccount?: string;
  inAccount?: string;
  lastAt: number;
  last?: EventLocation;
}

/** Totals per movement kind, and `openHolds`: how many holds are still open (a count, not credits). */
export interface LedgerSummary extends Record<MovementKind, number> {
  accounts: number;
  generations: number;
  events: number;
  openHolds: number;
  byStatus: Record<string, number>;
  /** transfer processes by status */
  transfers: Record<string, number>;
}

export class LedgerAuditor {
  private readonly balances = new Map<string, number>();
  private readonly holds = new Map<string, HoldRecord>();
  private readonly generations = new Map<string, { status: GenerationStatus; account: string | null; lastAt: number; last?: EventLocation }>();
  private readonly transfers = new Map<string, TransferRecord>();
  private readonly violations: Violation[] = [];
  private readonly totals: Record<MovementKind | 'events', number> = { ...zeroMovementTotals(), events: 0 };
  /** the event being added: every violation found while adding it points at it */
  private current: EventLocation | undefined;

  constructor(private readonly maxViolations = 1000) {}

  private violate(v: Violation) {
    if (this.violations.length < this.maxViolations) this.violations.push({ ...this.current, ...v });
  }

  /**
   * `at`: the event's time (epoch ms), used to leave recent generations out of invariant 3 on a live ledger.
   * `ref`: the recorded event's id and revision, so violations name the event that shows them.
   */
  add(streamId: string, event: LedgerEvent, at = 0, ref?: { id: string; revision: number }): void {
    this.totals.events += 1;
    this.current = { stream: streamId, event_type: event.type, ...(ref ? { event_id: ref.id, revision: ref.revision } : {}) };
    if (isAccountEvent(event)) {
      const account = accountFromStream(streamId);
      if (!account) return this.violate({ invariant: 1, subject: streamId, message: `${event.type} outside a credit-account stream` });
      this.addAccountEvent(accountIdOf(account), event, at);
      return;
    }
    const transferId = transferIdFromStream(streamId);
    if (transferId !== null) return this.addTransferEvent(transferId, event as TransferEvent, at);
    const sessionId = sessionIdFromStream(streamId);
    if (!sessionId || isStoreEvent(event)) return; // store facts move nothing
    this.addGenerationEvent(sessionId, event as GenerationEvent, at);
  }

  private transfer(id: string, at: number): TransferRecord {
    const t = this.transfers.get(id) ?? { status: 'none' as const, out: 0, in: 0, lastAt: at };
    t.lastAt = at;
    if (this.current) t.last = this.current;
    this.transfers.set(id, t);
    return t;
  }

  /** Both legs or neither: a leg never comes without its request, the receiving leg never before the paying one. */
  private addTransferLeg(account: string, e: AccountEvent, at: number) {
    if (e.type === 'CreditsTransferredOut') {
      const t = this.transfer(e.data.transferId, at);
      if (t.status !== 'requested') this.violate({ invariant: 1, subject: e.data.transferId, message: `paying leg of a transfer that is ${t.status}` });
      else if (t.from !== account || t.amount !== e.data.amount) this.violate({ invariant: 1, subject: e.data.transferId, message: `paying leg ${e.data.amount} from ${account}, requested ${t.amount} from ${t.from}` });
      t.out += e.data.amount;
      t.outAccount = account;
    } else if (e.type === 'CreditsGranted' && e.data.reason === 'transfer_in') {
      const prefix = transferReference('');
      const id = e.data.reference.startsWith(prefix) ? e.data.reference.slice(prefix.length) : e.data.reference;
      const t = this.transfer(id, at);
      if (t.out !== e.data.amount || t.in > 0) this.violate({ invariant: 1, subject: id, message: `receiving leg of ${e.data.amount} after paying legs of ${t.out} (and ${t.in} received)` });
      else if (t.to !== account) this.violate({ invariant: 1, subject: id, message: `receiving leg on ${account}, requested for ${t.to}` });
      t.in += e.data.amount;
      t.inAccount = account;
    }
  }

  private addTransferEvent(id: string, e: TransferEvent, at: number) {
    const t = this.transfer(id, at);
    switch (e.type) {
      case 'TransferRequested':
        if (t.status !== 'none') this.violate({ invariant: 2, subject: id, message: 'transfer requested twice' });
        t.status = 'requested';
        t.from = e.data.from;
        t.to = e.data.to;
        t.amount = e.data.amount;
        return;
      case 'TransferCompleted':
        if (t.status !== 'requested') this.violate({ invariant: 2, subject: id, message: `completed a transfer that is ${t.status}` });
        if (t.out !== t.amount || t.in !== t.amount) this.violate({ invariant: 1, subject: id, message: `completed with ${t.out} paid and ${t.in} received of ${t.amount}` });
        t.status = 'completed';
        return;
      case 'TransferRejected':
        if (t.status !== 'requested') this.violate({ invariant: 2, subject: id, message: `rejected a transfer that is ${t.status}` });
        if (t.out > 0 || t.in > 0) this.violate({ invariant: 1, subject: id, message: `rejected after ${t.out} paid and ${t.in} received` });
        t.status = 'rejected';
        return;
      default:
        return assertNever(e, 'transfer event');
    }
  }

  /** An event the decoder refused: nothing about its stream can be trusted after it. */
  addUndecodable(streamId: string, reason: string, ref?: { id: string; revision: number; type: string }): void {
    this.totals.events += 1;
    this.current = { stream: streamId, event_type: ref?.type ?? 'unknown', ...(ref ? { event_id: ref.id, revision: ref.revision } : {}) };
    this.violate({ invariant: accountFromStream(streamId) ? 1 : 2, subject: streamId, message: `undecodable event: ${reason}` });
  }

  private addAccountEvent(account: string, e: AccountEvent, at: number) {
    this.addTransferLeg(account, e, at);
    const m = accountMovement(e);
    this.totals[m.kind] += m.credits;
    const balance = (this.balances.get(account) ?? 0) + change(m, 'balance');
    switch (m.kind) {
      case 'granted':
      case 'revoked':
      case 'transferred':
        break;
      case 'deducted':
        this.holdTaken(account, m.generationId!, false);
        break;
      case 'overage_charged':
        if (!account.startsWith('store:')) this.violate({ invariant: 2, subject: m.generationId!, message: `overage charged to ${account}, not a store` });
        this.holdTaken(account, m.generationId!, true);
        break;
      case 'captured':
      case 'refunded':
        this.holdSettled(account, m.generationId!, e.type, m.kind, false);
        break;
      case 'overage_captured':
        this.holdSettled(account, m.generationId!, e.type, 'captured', true);
        break;
      case 'overage_refund_due':
        this.holdSettled(account, m.generationId!, e.type, 'refunded', true);
        break;
      default:
        assertNever(m.kind, 'movement kind');
    }
    if (balance < 0) this.violate({ invariant: 1, subject: account, message: `balance ${balance} after ${e.type}` });
    this.balances.set(account, balance);
  }

  private holdTaken(account: string, generationId: string, overage: boolean) {
    const h = this.holds.get(generationId) ?? { account, overage, deductions: 0, captures: 0, refunds: 0, ...(this.current ? { at: this.current } : {}) };
    h.deductions += 1;
    if (h.deductions > 1) this.violate({ invariant: 2, subject: generationId, message: `${overage ? 'overage charged' : 'deducted'} ${h.deductions} times` });
    if (h.overage !== overage) this.violate({ invariant: 2, subject: generationId, message: 'charged both as a hold of credits and as an overage' });
    if (h.account !== account) this.violate({ invariant: 2, subject: generationId, message: `deducted from ${account} and ${h.account}` });
    const g = this.generations.get(generationId);
    if (g?.account && g.account !== account) {
      this.violate({ invariant: 2, subject: generationId, message: `deducted from ${account}, but the generation belongs to ${g.account}` });
    }
    this.holds.set(generationId, h);
  }

  private holdSettled(account: string, generationId: string, type: AccountEvent['type'], kind: 'captured' | 'refunded', overage: boolean) {
    const h = this.holds.get(generationId);
    if (!h) return this.violate({ invariant: 2, subject: generationId, message: `${type} without a deduction` });
    if (h.overage !== overage) this.violate({ invariant: 2, subject: generationId, message: `${type} settles a charge of the other kind` });
    if (h.account !== account) this.violate({ invariant: 2, subject: generationId, message: `${type} on ${account}, held on ${h.account}` });
    if (kind === 'captured') h.captures += 1;
    else h.refunds += 1;
    if (h.captures + h.refunds > 1) {
      this.violate({ invariant: 2, subject: generationId, message: `settled ${h.captures + h.refunds} times (${h.captures} captures, ${h.refunds} refunds)` });
    }
    const g = this.generations.get(generationId);
    if (!g || !isTerminalStatus(g.status)) this.violate({ invariant: 2, subject: generationId, message: `${type} before the generation was terminal` });
    else if (kind === 'captured' && g.status !== 'completed') {
      this.violate({ invariant: 2, subject: generationId, message: `captured although the generation ${g.status}` });
    } else if (kind === 'refunded' && g.status === 'completed') {
      this.violate({ invariant: 2, subject: generationId, message: 'refunded although the generation completed' });
    }
  }

  private addGenerationEvent(sessionId: string, e: GenerationEvent, at: number) {
    const g = this.generations.get(sessionId) ?? { status: 'none', account: null, lastAt: at };
    g.lastAt = at;
    if (this.current) g.last = this.current;
    if (isTerminalStatus(g.status)) {
      this.violate({ invariant: 2, subject: sessionId, message: `${e.type} after the generation was ${g.status}` });
    }
    g.status = statusAfter(e);
    if (e.type === 'GenerationRequested') g.account = e.data.account;
    this.generations.set(sessionId, g);
  }

  /**
   * `quiescent`: recovery has run with nothing in flight, so invariant 3 applies to every generation. On a live ledger
   * pass `settledBefore` (epoch ms): invariant 3 then applies to generations whose last event is older than that.
   */
  report(quiescent: boolean, settledBefore = Number.NEGATIVE_INFINITY): { violations: Violation[]; summary: LedgerSummary } {
    const cutoff = quiescent ? Number.POSITIVE_INFINITY : settledBefore;
    const settledLongAgo = (id: string) => (this.generations.get(id)?.lastAt ?? 0) < cutoff;
    const violations = [...this.violations];
    const byStatus: Record<string, number> = {};
    for (const g of this.generations.values()) byStatus[g.status] = (byStatus[g.status] ?? 0) + 1;
    let openHolds = 0;
    for (const [generationId, h] of this.holds) {
      const open = h.deductions - h.captures - h.refunds > 0;
      if (open) openHolds += 1;
      if (!settledLongAgo(generationId)) continue;
      const g = this.generations.get(generationId);
      if (open) violations.push({ ...h.at, invariant: 3, subject: generationId, message: `hold of ${h.account} still open (generation ${g?.status ?? 'unknown'})` });
    }
    if (cutoff > Number.NEGATIVE_INFINITY) {
      for (const [sessionId, g] of this.generations) {
        if (!settledLongAgo(sessionId)) continue;
        const h = this.holds.get(sessionId);
        if (g.status === 'completed' && !(h && h.captures === 1)) {
          violations.push({ ...g.last, invariant: 3, subject: sessionId, message: 'completed but not captured' });
        }
        if ((g.status === 'failed' || g.status === 'rejected') && h && h.captures > 0) {
          violations.push({ ...g.last, invariant: 3, subject: sessionId, message: `${g.status} but a charge was kept` });
        }
      }
      for (const [id, t] of this.transfers) {
        if (t.lastAt >= cutoff) continue;
        if (t.status === 'requested' || t.out !== t.in) {
          violations.push({ ...t.last, invariant: t.out === t.in ? 3 : 1, subject: id, message: `transfer ${t.status} with ${t.out} paid and ${t.in} received` });
        }
      }
      const t = this.totals;
      if (quiescent && t.deducted !== t.captured + t.refunded) {
        violations.push({ invariant: 3, subject: '*', message: `deducted ${t.deducted} != captured ${t.captured} + refunded ${t.refunded}` });
      }
      if (quiescent && t.overage_charged !== t.overage_captured + t.overage_refund_due) {
        violations.push({
          invariant: 3,
          subject: '*',
          message: `overage charged ${t.overage_charged} != captured ${t.overage_captured} + refund due ${t.overage_refund_due}`,
        });
      }
    }
    return {
      violations,
      summary: {
        accounts: this.balances.size,
        generations: this.generations.size,
        ...this.totals,
        openHolds,
        byStatus,
        transfers: [...this.transfers.values()].reduce<Record<string, number>>((a, t) => ((a[t.status] = (a[t.status] ?? 0) + 1), a), {}),
      },
    };
  }
}

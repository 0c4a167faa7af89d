// `wearon verify`: re-folds every stream of the log and checks invariants 1-3 of ledger.md.
import type { LedgerEvent } from '../domain/events.ts';
import { LedgerAuditor, type LedgerSummary, type Violation } from '../domain/invariants.ts';
import { STREAM_PREFIXES } from '../domain/streams.ts';
import type { EventStore, Position } from './ports/eventStore.ts';
import { readLog } from './log.ts';

export interface VerifyOptions {
  /** recovery ran with nothing in flight: invariant 3 applies to every generation */
  quiescent?: boolean;
  /** on a live ledger, invariant 3 applies to generations idle for longer than this */
  settleGraceMs?: number;
  now?: number;
  /** after each page: events read so far and the log position reached */
  onProgress?: (events: number, position: Position) => void;
  signal?: AbortSignal;
}

export async function verifyLedger(store: EventStore, o: VerifyOptions = {}): Promise<{ violations: Violation[]; summary: LedgerSummary }> {
  const auditor = new LedgerAuditor();
  let count = 0;
  for await (const page of readLog(store, { filter: { streamPrefixes: STREAM_PREFIXES } })) {
    o.signal?.throwIfAborted();
    for (const e of page) auditor.add(e.streamId, e as unknown as LedgerEvent, Date.parse(e.metadata.occurredAt) || e.recordedAt.getTime(), e);
    count += page.length;
    o.onProgress?.(count, page[page.length - 1]!.position);
  }
  const now = o.now ?? Date.now();
  return auditor.report(o.quiescent ?? false, now - (o.settleGraceMs ?? 10 * 60 * 1000));
}

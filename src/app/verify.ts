// `wearon verify`: re-folds every stream of the log and checks invariants 1-3 of ledger.md.
import type { LedgerEvent } from '../domain/events.ts';
import { LedgerAuditor, type LedgerSummary, type Violation } from '../domain/invariants.ts';
import { STREAM_PREFIXES } from '../domain/streams.ts';
import { comparePositions, type EventStore, type Position } from './ports/eventStore.ts';

export interface VerifyOptions {
  /** recovery ran with nothing in flight: invariant 3 applies to every generation */
  quiescent?: boolean;
  /** on a live ledger, invariant 3 applies to generations idle for longer than this */
  settleGraceMs?: number;
  now?: number;
  onProgress?: (events: number) => void;
}

export async function verifyLedger(store: EventStore, o: VerifyOptions = {}): Promise<{ violations: Violation[]; summary: LedgerSummary }> {
  const auditor = new LedgerAuditor();
  let from: Position | 'start' = 'start';
  let count = 0;
  for (;;) {
    const page = await store.readAll({ fromPosition: from, maxCount: 5000, filter: { streamPrefixes: STREAM_PREFIXES } });
    const after: Position | 'start' = from;
    const fresh: typeof page = after === 'start' ? page : page.filter((e) => comparePositions(e.position, after) > 0);
    if (fresh.length === 0) break;
    for (const e of fresh) {
      auditor.add(e.streamId, e as unknown as LedgerEvent, Date.parse(e.metadata.occurredAt) || e.recordedAt.getTime());
    }
    count += fresh.length;
    o.onProgress?.(count);
    from = fresh[fresh.length - 1]!.position;
  }
  const now = o.now ?? Date.now();
  return auditor.report(o.quiescent ?? false, now - (o.settleGraceMs ?? 10 * 60 * 1000));
}

// `wearon verify`: re-folds every stream of the log and checks invariants 1-3 of ledger.md.
import { UndecodableEventError } from '../domain/decode.ts';
import { LedgerAuditor, type LedgerSummary, type Violation } from '../domain/invariants.ts';
import { STREAM_PREFIXES } from '../domain/streams.ts';
import type { EventStore, Position } from './ports/eventStore.ts';
import { readLog } from './log.ts';
import { decodeRecorded, eventTime } from './recorded.ts';

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

export async function verifyLedger(store: EventStore, options: VerifyOptions = {}): Promise<{ violations: Violation[]; summary: LedgerSummary }> {
  const auditor = new LedgerAuditor();
  let count = 0;
  for await (const page of readLog(store, { filter: { streamPrefixes: STREAM_PREFIXES } })) {
    options.signal?.throwIfAborted();
    for (const e of page) {
      try {
        const r = decodeRecorded(e);
        if (r) auditor.add(e.streamId, r.event, eventTime(e), e);
      } catch (err) {
        if (!(err instanceof UndecodableEventError)) throw err;
        auditor.addUndecodable(e.streamId, err.message, e);
      }
    }
    count += page.length;
    options.onProgress?.(count, page[page.length - 1]!.position);
  }
  const now = options.now ?? Date.now();
  return auditor.report(options.quiescent ?? false, now - (options.settleGraceMs ?? 10 * 60 * 1000));
}

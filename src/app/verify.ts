// `wearon verify`: re-folds every stream of the log and checks invariants 1-3 of ledger.md.
import { UndecodableEventError } from '../domain/decode.ts';
import { LedgerAuditor, type LedgerSummary, type Violation } from '../domain/invariants.ts';
import { STREAM_PREFIXES } from '../domain/streams.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { EventStore } from './ports/eventStore.ts';
import { readLog } from './log.ts';
import { decodeRecorded, eventTime } from './recorded.ts';

export interface VerifyOptions {
  /** recovery ran with nothing in flight: invariant 3 applies to every generation */
  quiescent?: boolean;
  /** on a live ledger, invariant 3 applies to generations idle for longer than this */
  settleGraceMs?: number;
  now?: number;
  onProgress?: (events: number) => void;
}

export async function verifyLedger(store: EventStore, options: VerifyOptions = {}): Promise<{ violations: Violation[]; summary: LedgerSummary }> {
  const auditor = new LedgerAuditor();
  let count = 0;
  for await (const page of readLog(store, { filter: { streamPrefixes: STREAM_PREFIXES } })) {
    for (const e of page) {
      try {
        const r = decodeRecorded(e);
        if (r) auditor.add(e.streamId, r.event, eventTime(e));
      } catch (err) {
        if (!(err instanceof UndecodableEventError)) throw err;
        auditor.addUndecodable(e.streamId, err.message);
      }
    }
    count += page.length;
    options.onProgress?.(count);
  }
  const now = options.now ?? Date.now();
  return auditor.report(options.quiescent ?? false, now - (options.settleGraceMs ?? 10 * 60 * 1000));
}

/** The periodic check of a running worker: invariants 1-3 (3 for generations idle 10 minutes), exported as metrics. */
export async function verifyAndExport(store: EventStore, metrics: Metrics, log: Logger): Promise<void> {
  try {
    const { violations, summary } = await verifyLedger(store);
    metrics.verifyViolations.set(violations.length);
    metrics.verifyLastRun.set(Date.now() / 1000);
    if (violations.length) log.error({ violations: violations.slice(0, 20), count: violations.length }, 'ledger_verify_violations');
    else log.info({ events: summary.events }, 'ledger_verified');
  } catch (err) {
    log.error({ err }, 'ledger_verify_failed');
  }
}

// Ledger verification as a job of the serving process: the periodic pass and the console's "verify now" share one
// runner, so only one runs at a time and the last result (when, how long, what it found) is there for the console.
import type { LedgerSummary, Violation } from '../domain/invariants.ts';
import type { JobControl, Jobs, StartResult } from './jobs.ts';
import type { EventStore } from './ports/eventStore.ts';
import { verifyLedger } from './verify.ts';

export const VERIFY_JOB = 'verify';

export interface VerifyResult {
  ok: boolean;
  summary: LedgerSummary;
  violations: Violation[];
  /** read-model rows that differ from a fresh fold of the log; null when not checked */
  drifts: readonly object[] | null;
}

export interface LedgerHealthDeps {
  store: EventStore;
  jobs: Jobs;
  /** compares the read models with the log, when this process has them (the projections layer provides it) */
  readModelDrifts?: () => Promise<readonly object[]>;
  /** every finished verification (metrics, logs) */
  onResult?: (r: VerifyResult, trigger: string) => void;
}

export class LedgerHealth {
  constructor(private readonly d: LedgerHealthDeps) {}

  /**
   * Starts a verification unless one runs. Invariant 3 applies to generations idle for 10 minutes (a live ledger);
   * `readModels` also compares every read-model row with the log (the console's run; the periodic one skips it).
   */
  verify(trigger: string, opts: { readModels: boolean }): StartResult<VerifyResult> {
    return this.d.jobs.start(VERIFY_JOB, { trigger }, (ctl) => this.run(ctl, trigger, opts.readModels));
  }

  view() {
    return this.d.jobs.view<VerifyResult>(VERIFY_JOB);
  }

  private async run(ctl: JobControl, trigger: string, readModels: boolean): Promise<VerifyResult> {
    const { store } = this.d;
    const head = await store.headPosition();
    // SQLite positions count events; EventStoreDB's are log offsets, still a fair measure of how far the read got.
    ctl.phase('reading the log', store.kind === 'sqlite' ? 'events' : 'log position');
    ctl.progress(0, head ? Number(head.commit) : 0);
    const { violations, summary } = await verifyLedger(store, {
      signal: ctl.signal,
      onProgress: (_events, position) => ctl.progress(Number(position.commit)),
    });
    let drifts: readonly object[] | null = null;
    if (readModels && this.d.readModelDrifts) {
      ctl.phase('comparing read models');
      drifts = await this.d.readModelDrifts();
    }
    const result = { ok: violations.length === 0 && (drifts?.length ?? 0) === 0, summary, violations, drifts };
    this.d.onResult?.(result, trigger);
    return result;
  }
}

// Long operations run inside the serving process (ledger verify, projection replay) as jobs with observable progress:
// at most one running job per kind, a clear answer when one is already running, and the last finished job of each
// kind kept for the console. Progress is polled (the console sends its token in a header, which EventSource cannot).
import { randomUUID } from 'node:crypto';

export type JobState = 'running' | 'done' | 'failed' | 'cancelled';

export interface JobView<R = unknown> {
  id: string;
  kind: string;
  /** what runs, e.g. the projection being replayed */
  subject: string | null;
  /** who started it: `console`, `schedule` */
  trigger: string;
  state: JobState;
  phase: string;
  started_at: string;
  finished_at: string | null;
  elapsed_ms: number;
  progress: { done: number; total: number | null; unit: string };
  /** units per second over the current phase */
  rate: number | null;
  /** remaining time of the current phase at that rate */
  eta_ms: number | null;
  result: R | null;
  error: string | null;
}

export interface JobControl {
  readonly signal: AbortSignal;
  progress(done: number, total?: number | null): void;
  /** a new phase restarts the rate (e.g. `replaying` then `swapping`) */
  phase(name: string, unit?: string): void;
}

class Job<R> {
  readonly id = randomUUID();
  readonly ac = new AbortController();
  readonly startedAt = Date.now();
  state: JobState = 'running';
  phaseName = 'starting';
  phaseStartedAt = Date.now();
  phaseStartDone = 0;
  unit = 'events';
  done = 0;
  total: number | null = null;
  finishedAt: number | null = null;
  result: R | null = null;
  error: string | null = null;
  promise: Promise<void> = Promise.resolve();

  constructor(
    readonly kind: string,
    readonly subject: string | null,
    readonly trigger: string,
  ) {}

  view(now = Date.now()): JobView<R> {
    const seconds = (now - this.phaseStartedAt) / 1000;
    const rate = this.state === 'running' && seconds > 0.2 ? (this.done - this.phaseStartDone) / seconds : null;
    const eta = rate && rate > 0 && this.total !== null ? Math.max(0, ((this.total - this.done) / rate) * 1000) : null;
    return {
      id: this.id,
      kind: this.kind,
      subject: this.subject,
      trigger: this.trigger,
      state: this.state,
      phase: this.phaseName,
      started_at: new Date(this.startedAt).toISOString(),
      finished_at: this.finishedAt === null ? null : new Date(this.finishedAt).toISOString(),
      elapsed_ms: (this.finishedAt ?? now) - this.startedAt,
      progress: { done: this.done, total: this.total, unit: this.unit },
      rate: rate === null ? null : Math.round(rate),
      eta_ms: eta === null ? null : Math.round(eta),
      result: this.result,
      error: this.error,
    };
  }
}

export type StartResult<R> = { started: true; job: JobView<R> } | { started: false; running: JobView<R> };

export class Jobs {
  private readonly running = new Map<string, Job<unknown>>();
  private readonly last = new Map<string, Job<unknown>>();

  constructor(private readonly onFailure: (kind: string, err: unknown) => void = () => undefined) {}

  /** Starts `run` unless a job of this kind is running (then answers with that one). */
  start<R>(kind: string, opts: { subject?: string; trigger: string }, run: (ctl: JobControl) => Promise<R>): StartResult<R> {
    const busy = this.running.get(kind);
    if (busy) return { started: false, running: busy.view() as JobView<R> };
    const job = new Job<R>(kind, opts.subject ?? null, opts.trigger);
    this.running.set(kind, job as Job<unknown>);
    const ctl: JobControl = {
      signal: job.ac.signal,
      progress: (done, total) => {
        job.done = done;
        if (total !== undefined) job.total = total;
      },
      phase: (name, unit) => {
        job.phaseName = name;
        job.phaseStartedAt = Date.now();
        job.phaseStartDone = job.done;
        if (unit) job.unit = unit;
      },
    };
    job.promise = (async () => {
      try {
        job.result = await run(ctl);
        job.state = 'done';
        job.phaseName = 'done';
      } catch (err) {
        job.state = job.ac.signal.aborted ? 'cancelled' : 'failed';
        job.error = err instanceof Error ? err.message : String(err);
        if (job.state === 'failed') this.onFailure(kind, err);
      } finally {
        job.finishedAt = Date.now();
        this.running.delete(kind);
        this.last.set(kind, job as Job<unknown>);
      }
    })();
    return { started: true, job: job.view() };
  }

  /** The running job of this kind, else the last finished one, else null. */
  view<R>(kind: string): { running: JobView<R> | null; last: JobView<R> | null } {
    return {
      running: (this.running.get(kind)?.view() as JobView<R> | undefined) ?? null,
      last: (this.last.get(kind)?.view() as JobView<R> | undefined) ?? null,
    };
  }

  /** Resolves when the job of this kind that is running now (if any) has finished. */
  async settled(kind: string): Promise<void> {
    await this.running.get(kind)?.promise;
  }

  /** Aborts every running job and waits for them (shutdown). */
  async stop(): Promise<void> {
    const jobs = [...this.running.values()];
    for (const j of jobs) j.ac.abort();
    await Promise.all(jobs.map((j) => j.promise));
  }
}

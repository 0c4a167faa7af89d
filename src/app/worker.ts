// The worker runtime: takes tasks from the queue when a slot is free, drives generations through the saga with a
// bounded concurrency, re-drives what is due (retries, expired leases, unsettled holds) from the pending index, and
// shuts down by stopping intake, letting runs finish within the grace period and releasing the rest.
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { recordQueuedTask, type IntakeDeps } from './intake.ts';
import { PendingIndex, type PendingSnapshot } from './pending.ts';
import { STREAM_PREFIXES } from '../domain/streams.ts';
import { START, comparePositions, type EventStore } from './ports/eventStore.ts';
import { consume, type CheckpointedProcessor } from './consumer.ts';
import type { TaskQueue } from './ports/queue.ts';
import type { DriveOutcome, GenerationSaga } from './saga.ts';

export interface WorkerOptions {
  concurrency: number;
  recoveryIntervalMs: number;
  shutdownGraceMs: number;
  /** how long one BLMOVE waits before the loop looks at its state again */
  takeTimeoutMs?: number;
}

/** Where the pending index is cached between runs (a file in DATA_DIR); optional. */
export interface PendingSnapshotStore {
  load(): Promise<PendingSnapshot | null>;
  save(snapshot: PendingSnapshot): Promise<void>;
}

export interface WorkerDeps extends IntakeDeps {
  store: EventStore;
  queue?: TaskQueue;
  snapshots?: PendingSnapshotStore;
  options: WorkerOptions;
}

/** Resolves when `wake` is called (if the caller hands it out), after `ms` (if set) or when `signal` aborts; either way
 * its abort listener goes, so loops that wait thousands of times leave nothing on the long-lived signal. */
function until(signal: AbortSignal | undefined, ms: number | null, handOut?: (wake: () => void) => void): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      if (timer) clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = ms === null ? null : setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
    handOut?.(done);
  });
}

const sleep = (ms: number, signal?: AbortSignal) => until(signal, ms);

export class GenerationWorker {
  index = new PendingIndex();
  private readonly driving = new Map<string, Promise<DriveOutcome | undefined>>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly stopIntake = new AbortController();
  private readonly shutdown = new AbortController();
  private readonly loops: Promise<void>[] = [];
  /** Loops that ended with an error: the worker is degraded (its health check says so), never a crashed process. */
  readonly deadLoops: string[] = [];
  private slotWaiters: Array<() => void> = [];
  private caughtUp = false;
  private started = false;
  private readonly log: Logger;
  private readonly saga: GenerationSaga;
  private readonly metrics: Metrics | undefined;

  constructor(private readonly deps: WorkerDeps) {
    this.log = deps.logger.child({ component: 'worker' });
    this.saga = deps.saga;
    this.metrics = deps.metrics;
  }

  get inFlight(): number {
    return this.driving.size;
  }

  /** True once the pending index has caught up with the log (start-up recovery can run). */
  get ready(): boolean {
    return this.caughtUp;
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.runLoop('follow-log', this.followLog());
    this.runLoop('recovery', this.recoveryLoop());
    if (this.deps.queue) this.runLoop('intake', this.intakeLoop(this.deps.queue));
    else this.log.warn('redis intake is off (no REDIS_URL): tasks arrive over HTTP only');
  }

  /** Each loop retries its own failures; one that still throws is logged and reported, never left unhandled. */
  private runLoop(name: string, loop: Promise<void>): void {
    this.loops.push(
      loop.catch((err: unknown) => {
        this.deadLoops.push(name);
        this.log.error({ err, loop: name }, 'worker_loop_died');
      }),
    );
  }

  /** Drives a generation now unless this process already is; resolves when this drive ends. */
  submit(sessionId: string): Promise<DriveOutcome | undefined> {
    const running = this.driving.get(sessionId);
    if (running) return running;
    const t = this.timers.get(sessionId);
    if (t) {
      clearTimeout(t);
      this.timers.delete(sessionId);
    }
    const work = this.drive(sessionId);
    this.driving.set(sessionId, work);
    void work.finally(() => {
      this.driving.delete(sessionId);
      const wake = this.slotWaiters;
      this.slotWaiters = [];
      for (const w of wake) w();
    });
    return work;
  }

  private async drive(sessionId: string): Promise<DriveOutcome | undefined> {
    try {
      const outcome = await this.saga.drive(sessionId, this.shutdown.signal);
      if ((outcome.kind === 'waiting' || outcome.kind === 'leased') && !this.stopIntake.signal.aborted) {
        const delay = Math.max(0, outcome.until - this.deps.clock()) + 50;
        this.timers.set(sessionId, setTimeout(() => {
          this.timers.delete(sessionId);
          void this.submit(sessionId);
        }, delay).unref());
      }
      return outcome;
    } catch (err) {
      // The ledger refused or failed: recovery will pick the generation up again from the pending index.
      this.log.error({ err, session_id: sessionId }, 'generation_drive_failed');
      return undefined;
    }
  }

  private async waitForSlot(signal: AbortSignal): Promise<void> {
    while (this.driving.size >= this.deps.options.concurrency && !signal.aborted) {
      await until(signal, null, (wake) => this.slotWaiters.push(wake));
    }
  }

  private async intakeLoop(queue: TaskQueue): Promise<void> {
    const signal = this.stopIntake.signal;
    let failures = 0;
    const heartbeat = setInterval(() => void queue.heartbeat().catch((err) => this.log.warn({ err }, 'queue_heartbeat_failed')), 5000);
    heartbeat.unref();
    try {
      // No heartbeat before the loop: take() beats before it moves anything, inside the retrying try below (a first
      // beat out here that timed out on a busy Redis rejected this loop, unhandled).
      while (!signal.aborted) {
        await this.waitForSlot(signal);
        if (signal.aborted) break;
        try {
          const item = await queue.take(this.deps.options.takeTimeoutMs ?? 2000);
          if (!item) continue;
          const result = await this.recordWithRetry(queue, item, signal);
          if (result?.kind === 'accepted') void this.submit(result.sessionId);
          failures = 0;
        } catch (err) {
          failures += 1;
          this.log.error({ err }, 'intake_error');
          await sleep(Math.min(5000, 100 * 2 ** failures), signal);
        }
      }
    } finally {
      clearInterval(heartbeat);
    }
  }

  /** The task is in our processing list: keep trying to record it; on shutdown leave it there to be re-driven. */
  private async recordWithRetry(queue: TaskQueue, item: { raw: string }, signal: AbortSignal) {
    for (let attempt = 0; ; attempt++) {
      try {
        return await recordQueuedTask(queue, item, this.deps);
      } catch (err) {
        this.log.error({ err, attempt }, 'intake_record_failed');
        if (signal.aborted) return undefined;
        await sleep(Math.min(5000, 100 * 2 ** attempt), signal);
      }
    }
  }

  /** Keeps the pending index current from the global log (catch-up, then live), resuming after failures. */
  private async followLog(): Promise<void> {
    const snapshot = await this.deps.snapshots?.load().catch((err) => (this.log.warn({ err }, 'pending_snapshot_unreadable'), null));
    if (snapshot) {
      const cached = PendingIndex.fromSnapshot(snapshot);
      const head = await this.deps.store.headPosition().catch((err) => (this.log.warn({ err }, 'pending_snapshot_unchecked'), null));
      // A snapshot ahead of the log belongs to another ledger (a wiped data dir, another cluster): ignore it.
      if (head && comparePositions(cached.position!, head) <= 0) this.index = cached;
      else this.log.warn('pending_snapshot_ignored_ahead_of_log');
    }
    let savedAt = this.index.position;
    const save = async () => {
      const snap = this.index.toSnapshot();
      if (!snap || !this.deps.snapshots || savedAt === this.index.position) return;
      savedAt = this.index.position;
      await this.deps.snapshots.save(snap).catch((err) => this.log.warn({ err }, 'pending_snapshot_save_failed'));
    };
    const saver = setInterval(() => void save(), 30_000).unref();
    this.shutdown.signal.addEventListener('abort', () => clearInterval(saver), { once: true });
    this.loops.push(new Promise<void>((resolve) => this.shutdown.signal.addEventListener('abort', () => void save().finally(resolve), { once: true })));
    // The index lives in memory: its checkpoint is its position (saved with it), and a batch always applies.
    const processor: CheckpointedProcessor = {
      checkpoint: async () => this.index.position ?? START,
      apply: async (events) => {
        for (const e of events) this.index.apply(e);
        return { ok: true, applied: events.length };
      },
    };
    let failures = 0;
    while (!this.shutdown.signal.aborted) {
      try {
        await consume({
          store: this.deps.store,
          processor,
          batchSize: 1000,
          filter: { streamPrefixes: STREAM_PREFIXES },
          signal: this.shutdown.signal,
          onRead: (_cp, caughtUp) => {
            failures = 0;
            if (!caughtUp || this.caughtUp) return;
            this.caughtUp = true;
            this.log.info({ pending: this.index.size }, 'pending_index_caught_up');
            // Right after start nothing is driven by this process: what is due is due now, grace or not.
            void this.recoveryPass({ ignoreGrace: true });
          },
        });
      } catch (err) {
        failures += 1;
        this.log.error({ err }, 'log_follow_failed');
        await sleep(Math.min(10_000, 200 * 2 ** failures), this.shutdown.signal);
      }
    }
  }

  private async recoveryLoop(): Promise<void> {
    while (!this.stopIntake.signal.aborted) {
      await sleep(this.deps.options.recoveryIntervalMs, this.stopIntake.signal);
      if (this.stopIntake.signal.aborted) break;
      await this.recoveryPass({ ignoreGrace: false }).catch((err) => this.log.error({ err }, 'recovery_failed'));
      if (this.deps.queue) {
        const moved = await this.deps.queue.redriveOrphans().catch((err) => (this.log.warn({ err }, 'redrive_failed'), 0));
        if (moved) this.log.warn({ moved }, 'orphaned_tasks_redriven');
        await this.reportQueueDepth(this.deps.queue);
      }
    }
  }

  private async reportQueueDepth(queue: TaskQueue) {
    try {
      const depth = await queue.depth();
      this.metrics?.queueDepth.set({ queue: 'waiting' }, depth.waiting);
      this.metrics?.queueDepth.set({ queue: 'processing' }, depth.processing);
      this.metrics?.queueDepth.set({ queue: 'dead_letter' }, depth.deadLetter);
    } catch (err) {
      this.log.warn({ err }, 'queue_depth_failed');
    }
  }

  /**
   * One recovery pass: drives every generation the index says is due. Queued work is charged and run, never failed;
   * only expired leases with no attempts left fail (worker_lost), and only terminal generations are refunded.
   */
  private async recoveryPass({ ignoreGrace }: { ignoreGrace: boolean }): Promise<number> {
    if (!this.caughtUp) return 0;
    const due = this.index.due(this.deps.clock(), ignoreGrace).filter((id) => !this.driving.has(id));
    let n = 0;
    for (const id of due) {
      if (this.stopIntake.signal.aborted) break;
      await this.waitForSlot(this.stopIntake.signal);
      void this.submit(id);
      n += 1;
    }
    if (n) this.log.info({ driven: n }, 'recovery_pass');
    return n;
  }

  /** Stops intake, lets runs finish for up to the grace period, then releases what is left. */
  async stop(): Promise<void> {
    this.stopIntake.abort();
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    const all = () => Promise.allSettled([...this.driving.values()]);
    const graceOver = new AbortController();
    const graceful = await Promise.race([all().then(() => true), sleep(this.deps.options.shutdownGraceMs, graceOver.signal).then(() => false)]);
    graceOver.abort();
    if (!graceful) this.log.warn({ in_flight: this.driving.size }, 'shutdown_grace_elapsed_releasing');
    this.shutdown.abort();
    await all();
    await Promise.allSettled(this.loops);
  }
}

// Main-thread side of pose estimation: a pool of worker threads (one model instance each), a bounded FIFO queue
// and a per-request deadline. The queue lives here, not in the worker, so queued requests that time out never
// reach the model and the queue depth is observable.
import type { Worker } from 'node:worker_threads';
import os from 'node:os';
import type { Logger } from '../../logger.ts';
import type { Metrics } from '../../metrics.ts';
import { ImageUnavailableError, PoseUnavailableError, type PoseEstimatorPort } from '../../app/sizeRecommendation.ts';
import type { FromWorker, PoseModelName, PoseResult, ToWorker } from './types.ts';
import { spawnModuleWorker } from '../workerThread.ts';

// The errors extend the use case's port errors, so the HTTP layer maps them without knowing this adapter.
export class PoseNotReadyError extends PoseUnavailableError {
  constructor(message = 'pose model is not loaded') {
    super('not_ready', message, 5);
  }
}
/** The queue is full; callers should answer 503 with Retry-After. */
export class PoseOverloadedError extends PoseUnavailableError {
  constructor(retryAfterSeconds: number) {
    super('overloaded', 'pose estimation queue is full', retryAfterSeconds);
  }
}
export class PoseTimeoutError extends PoseUnavailableError {
  constructor(retryAfterSeconds: number) {
    super('timeout', 'pose estimation timed out', retryAfterSeconds);
  }
}
/** The bytes are not a decodable image (or exceed the pixel limit). */
export class PoseInputError extends ImageUnavailableError {
  constructor(message: string) {
    super('undecodable', message);
  }
}

export interface PoseEstimatorOptions {
  model: PoseModelName;
  queueMax: number;
  timeoutMs: number;
  /** worker threads, each with its own model (about 100 MB each); 0/absent = one per CPU, at most 2 */
  workers?: number;
  /** average the final landmark pass with its mirror image (see blazepose.ts); default true */
  mirrorAverage?: boolean;
  /** decode limit (IMAGE_MAX_PIXELS) */
  maxPixels?: number;
  logger: Logger;
  metrics?: Pick<Metrics, 'poseQueueDepth' | 'poseInferenceSeconds'>;
}

export interface PoseEstimator extends PoseEstimatorPort {
  ready(): boolean;
  /** Starts the workers and resolves when every model is compiled; rejects if loading fails. */
  load(): Promise<void>;
  estimate(image: Uint8Array): Promise<PoseResult>;
  close(): Promise<void>;
}

interface Job {
  id: number;
  bytes: Uint8Array;
  resolve: (r: PoseResult) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
  settled: boolean;
}

interface Slot {
  worker: Worker;
  ready: boolean;
  busy: Job | null;
}

function spawnWorker(model: PoseModelName, mirrorAverage: boolean) {
  return spawnModuleWorker(import.meta.url, 'poseWorker', { workerData: { model, mirrorAverage }, stdout: true, stderr: true });
}

export function createPoseEstimator(options: PoseEstimatorOptions): PoseEstimator {
  const { model, queueMax, timeoutMs, logger, metrics } = options;
  const maxPixels = options.maxPixels ?? 40_000_000;
  // More workers than cores only adds latency (measured: a third worker on 2 vCPUs gained ~5% throughput).
  const workerCount = options.workers && options.workers > 0 ? options.workers : Math.min(2, os.availableParallelism());
  const log = logger.child({ component: 'pose' });
  const slots: Slot[] = [];
  const queue: Job[] = [];
  let nextId = 1;
  let closed = false;
  let loading: Promise<void> | null = null;
  // Rough service time for Retry-After; updated from observed inference times.
  let avgMs = 250;

  const setDepth = () => metrics?.poseQueueDepth.set(queue.length);
  const retryAfter = () => Math.max(1, Math.ceil(((queue.length + 1) * avgMs) / workerCount / 1000));

  function settle(job: Job, fn: () => void) {
    if (job.settled) return;
    job.settled = true;
    clearTimeout(job.timer);
    fn();
  }

  function pump() {
    for (const slot of slots) {
      if (!slot.ready || slot.busy) continue;
      let job: Job | undefined;
      while ((job = queue.shift()) && job.settled); // skip jobs that already timed out
      setDepth();
      if (!job) return;
      slot.busy = job;
      const msg: ToWorker = { type: 'estimate', id: job.id, bytes: job.bytes, maxPixels };
      slot.worker.postMessage(msg, [job.bytes.buffer as ArrayBuffer]);
    }
  }

  function start(): Promise<void> {
    const loads: Promise<void>[] = [];
    for (let i = 0; i < workerCount; i++) loads.push(startSlot());
    return Promise.all(loads).then(() => undefined);
  }

  function startSlot(): Promise<void> {
    const worker = spawnWorker(model, options.mirrorAverage ?? true);
    const slot: Slot = { worker, ready: false, busy: null };
    slots.push(slot);
    // LiteRT prints INFO/WARNING lines from native code; keep them out of the JSON log stream.
    for (const stream of [worker.stdout, worker.stderr]) {
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => log.trace({ native: chunk.trimEnd() }, 'pose_worker_output'));
    }
    return new Promise<void>((resolve, reject) => {
      worker.on('message', (msg: FromWorker) => {
        if (msg.type === 'ready') {
          slot.ready = true;
          log.info({ model, loadMs: Math.round(msg.loadMs) }, 'pose_model_loaded');
          resolve();
          pump();
          return;
        }
        if (msg.type === 'load_failed') {
          log.error({ model, error: msg.message }, 'pose_model_load_failed');
          reject(new Error(`pose model failed to load: ${msg.message}`));
          return;
        }
        const job = slot.busy;
        slot.busy = null;
        if (job && job.id === msg.id) {
          if (msg.type === 'result') {
            avgMs = avgMs * 0.8 + msg.inferenceMs * 0.2;
            metrics?.poseInferenceSeconds.observe(msg.inferenceMs / 1000);
            settle(job, () => job.resolve(msg.result));
          } else {
            const err = msg.kind === 'decode' ? new PoseInputError(msg.message) : new Error(`pose worker: ${msg.message}`);
            settle(job, () => job.reject(err));
          }
        }
        pump();
      });
      worker.on('error', (err) => {
        log.error({ err }, 'pose_worker_error');
        reject(err);
      });
      worker.on('exit', (code) => {
        const idx = slots.indexOf(slot);
        if (idx >= 0) slots.splice(idx, 1);
        const job = slot.busy;
        if (job) settle(job, () => job.reject(new Error(`pose worker exited with code ${code}`)));
        reject(new Error(`pose worker exited with code ${code} before it was ready`));
        if (!closed && slot.ready) {
          // A crashed worker is replaced so one bad image cannot take the endpoint down for good.
          log.error({ code }, 'pose_worker_exited_restarting');
          startSlot().catch((e: unknown) => log.error({ err: e }, 'pose_worker_restart_failed'));
        }
      });
    });
  }

  return {
    ready: () => !closed && slots.some((s) => s.ready),
    load() {
      loading ??= start();
      return loading;
    },
    estimate(image) {
      if (closed || !slots.some((s) => s.ready)) return Promise.reject(new PoseNotReadyError());
      if (queue.length >= queueMax) return Promise.reject(new PoseOverloadedError(retryAfter()));
      return new Promise<PoseResult>((resolve, reject) => {
        // Own copy: the buffer is transferred to the worker and the caller's may be a pooled Buffer slice.
        const bytes = new Uint8Array(image);
        const job: Job = {
          id: nextId++,
          bytes,
          resolve,
          reject,
          settled: false,
          timer: setTimeout(() => settle(job, () => reject(new PoseTimeoutError(retryAfter()))), timeoutMs),
        };
        queue.push(job);
        setDepth();
        pump();
      });
    },
    async close() {
      closed = true;
      for (const job of queue.splice(0)) settle(job, () => job.reject(new PoseNotReadyError('pose estimator closed')));
      setDepth();
      await Promise.all(slots.map((s) => s.worker.terminate()));
      slots.length = 0;
    },
  };
}

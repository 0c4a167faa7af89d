// `wearon serve` runs its projectors in a worker thread (projectionThreadMain.ts) when PROJECTIONS_THREAD is on: a
// projector's batch is a handful of read-model round trips, and on the main thread each one waits for an event loop
// the pipeline keeps busy (measured: ~10 ms a statement under load, against 0.06 ms idle). The thread has its own
// ledger and read-model connections, is woken by the main thread's append signals as well as its store's own, logs
// through the main thread's logger, and answers the health probe and /metrics through messages. If it dies it is
// restarted (the projectors resume from their checkpoints); until then the probe fails.
import { once } from 'node:events';
import type { Worker } from 'node:worker_threads';
import { spawnModuleWorker } from '../adapters/workerThread.ts';
import type { EventStore } from '../app/ports/eventStore.ts';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import type { ForeignMetrics } from '../metrics.ts';
import type { Resource } from './scope.ts';

export type ThreadRequest = { kind: 'probe' } | { kind: 'metrics' };
export type ToThread = { type: 'appended' } | { type: 'request'; id: number; request: ThreadRequest } | { type: 'stop' };
type FromThread =
  | { type: 'started' }
  | { type: 'failed'; error: string }
  | { type: 'log'; line: string }
  | { type: 'response'; id: number; ok: true; value: unknown }
  | { type: 'response'; id: number; ok: false; error: string };

export interface ProjectionThread {
  /** The projectors' readiness (projectorsProbe, answered by the thread). */
  probe(): Promise<Record<string, unknown>>;
  /** The thread's metrics (projection lag, delay, events, the projections' gauges), to merge into /metrics. */
  metrics(): Promise<ForeignMetrics>;
  /** Ends the thread as a crash would (it is restarted): drills and tests. */
  terminate(): Promise<void>;
}

const REQUEST_TIMEOUT_MS = 5_000;
const STOP_TIMEOUT_MS = 30_000;
const LEVELS = new Set(['trace', 'debug', 'info', 'warn', 'error', 'fatal']);

/** A log line of the thread, written again through `log` (which adds its bindings, redacts and scrubs). */
function relog(log: Logger, line: string): void {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    log.warn({ line }, 'projection_thread_unparsable_log');
    return;
  }
  const { level, msg, time: _time, pid: _pid, hostname: _host, service: _service, name: _name, ...fields } = entry;
  const method = typeof level === 'string' && LEVELS.has(level) ? (level as 'info') : 'info';
  log[method](fields, typeof msg === 'string' ? msg : '');
}

/** Starts the thread and waits until its projectors run (rejects with the thread's error if they cannot start). */
export async function startProjectionThread(config: Config, store: EventStore, logger: Logger): Promise<Resource<ProjectionThread>> {
  const log = logger.child({ thread: 'projections' });
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  let nextId = 0;
  let worker: Worker | null = null;
  let stopping = false;
  let restartDelayMs = 1_000;
  let restartTimer: NodeJS.Timeout | undefined;

  const spawn = () =>
    new Promise<void>((resolve, reject) => {
      const w = spawnModuleWorker(import.meta.url, 'projectionThreadMain', { workerData: { config } });
      let started = false;
      w.on('message', (m: FromThread) => {
        if (m.type === 'log') relog(log, m.line);
        else if (m.type === 'started') {
          started = true;
          worker = w;
          restartDelayMs = 1_000;
          resolve();
        } else if (m.type === 'failed') reject(new Error(m.error));
        else if (m.type === 'response') {
          const p = pending.get(m.id);
          if (!p) return;
          pending.delete(m.id);
          clearTimeout(p.timer);
          if (m.ok) p.resolve(m.value);
          else p.reject(new Error(m.error));
        }
      });
      w.on('error', (err) => {
        log.error({ err }, 'projection_thread_error');
        if (!started) reject(err);
      });
      w.on('exit', (code) => {
        if (worker === w) worker = null;
        for (const [id, p] of pending) {
          pending.delete(id);
          clearTimeout(p.timer);
          p.reject(new Error('projection thread exited'));
        }
        if (!started) reject(new Error(`projection thread exited with ${code} before its projectors started`));
        else if (!stopping) {
          log.error({ code, restart_in_ms: restartDelayMs }, 'projection_thread_exited');
          scheduleRestart();
        }
      });
    });
  let restarting: Promise<void> | null = null;
  const restart = () => {
    if (stopping) return;
    restarting = spawn().catch((err: unknown) => {
      if (stopping) return;
      log.error({ err, restart_in_ms: restartDelayMs }, 'projection_thread_restart_failed');
      scheduleRestart();
    });
  };
  /** The next attempt after the current delay, which doubles up to 30 s (a successful start resets it). */
  function scheduleRestart(): void {
    restartTimer = setTimeout(restart, restartDelayMs);
    restartDelayMs = Math.min(restartDelayMs * 2, 30_000);
  }

  const request = <T>(r: ThreadRequest): Promise<T> => {
    const w = worker;
    if (!w) return Promise.reject(new Error('projection thread not running (restarting)'));
    const id = nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`projection thread did not answer within ${REQUEST_TIMEOUT_MS} ms`));
      }, REQUEST_TIMEOUT_MS);
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      w.postMessage({ type: 'request', id, request: r } satisfies ToThread);
    });
  };

  await spawn();
  const off = store.onAppended?.(() => worker?.postMessage({ type: 'appended' } satisfies ToThread));
  return {
    value: {
      probe: () => request({ kind: 'probe' }),
      metrics: () => request({ kind: 'metrics' }),
      terminate: async () => void (await worker?.terminate()),
    },
    close: async () => {
      stopping = true;
      clearTimeout(restartTimer);
      off?.();
      await restarting; // a thread starting now is stopped like a running one
      const w = worker;
      if (!w) return;
      const exited = once(w, 'exit');
      w.postMessage({ type: 'stop' } satisfies ToThread);
      const timer = setTimeout(() => {
        log.warn({ timeout_ms: STOP_TIMEOUT_MS }, 'projection_thread_stop_timeout');
        void w.terminate();
      }, STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    },
  };
}

// The worker's background loops (intake, log follower, recovery) outlive the failures of what they call: a Redis
// command that times out at start-up (seen at load 20: "Command timed out" crashed a worker of the scale-out drill)
// is retried by the loop, never left as an unhandled rejection; and their waits leave no listener behind.
import { afterEach, describe, expect, it } from 'vitest';
import { openSqliteEventStore } from '../../src/adapters/eventstore/sqlite/sqliteEventStore.ts';
import type { EventStore } from '../../src/app/ports/eventStore.ts';
import type { GenerationSaga } from '../../src/app/saga.ts';
import type { QueuedTask, TaskQueue } from '../../src/app/ports/queue.ts';
import { GenerationWorker } from '../../src/app/worker.ts';
import { silentLogger } from '../../src/logger.ts';
import { waitFor } from '../support/deadlines.ts';

/** A queue whose first `failures` heartbeats and takes fail as ioredis fails them when Redis does not answer in time. */
function stalledQueue(failures: number) {
  const calls = { heartbeat: 0, take: 0 };
  const timedOut = () => Promise.reject(new Error('Command timed out'));
  const queue: TaskQueue = {
    heartbeat: () => (++calls.heartbeat <= failures ? timedOut() : Promise.resolve()),
    // An empty queue answers after the wait, as BLMOVE does (an instant null would spin the loop on microtasks).
    take: (ms: number): Promise<QueuedTask | null> => (++calls.take <= failures ? timedOut() : new Promise((r) => setTimeout(() => r(null), ms))),
    ack: async () => undefined,
    deadLetter: async () => undefined,
    redriveOrphans: async () => 0,
    depth: async () => ({ waiting: 0, processing: 0, deadLetter: 0 }),
    push: async () => undefined,
    listDeadLetters: async () => ({ total: 0, items: [] }),
    redriveDeadLetter: async () => false,
    close: async () => undefined,
  };
  return { queue, calls };
}

/** A worker over `queue` that is never handed a task, so nothing is driven: only its loops run. */
const idleWorker = (store: EventStore, queue: TaskQueue, recoveryIntervalMs: number) =>
  new GenerationWorker({
    saga: {} as GenerationSaga,
    store,
    queue,
    cost: 1,
    clock: Date.now,
    logger: silentLogger(),
    options: { concurrency: 1, recoveryIntervalMs, shutdownGraceMs: 100, takeTimeoutMs: 10 },
  });

describe('worker loops', () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => void unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  afterEach(() => void (unhandled.length = 0));

  it('keeps taking after Redis timed out at start-up, with nothing unhandled and no loop lost', async () => {
    const store = openSqliteEventStore({ path: ':memory:' });
    const { queue, calls } = stalledQueue(2);
    const worker = idleWorker(store, queue, 60_000);
    try {
      worker.start();
      await waitFor('the intake loop to take again after the failures', () => calls.take > 2, 10_000);
      expect(unhandled).toEqual([]);
      expect(worker.deadLoops).toEqual([]);
    } finally {
      await worker.stop();
      await store.close();
    }
  });

  it('the recovery loop leaves no abort listener behind per pass (Node warns past 10 on one signal)', async () => {
    // Each pass slept with a listener on the worker's stop signal that was never removed: one more per pass, for the
    // life of the process (the bench saw MaxListenersExceededWarning).
    const warnings: Error[] = [];
    const onWarning = (w: Error) => void (w.name === 'MaxListenersExceededWarning' && warnings.push(w));
    process.on('warning', onWarning);
    const store = openSqliteEventStore({ path: ':memory:' });
    const { queue } = stalledQueue(0);
    let passes = 0;
    queue.redriveOrphans = async () => (passes++, 0); // called once per recovery pass
    const worker = idleWorker(store, queue, 1);
    try {
      worker.start();
      await waitFor('30 recovery passes', () => passes >= 30, 10_000);
      await new Promise((r) => setImmediate(r)); // warnings are emitted on the next tick
      expect(warnings.map((w) => w.message)).toEqual([]);
    } finally {
      await worker.stop();
      await store.close();
      process.off('warning', onWarning);
      process.off('unhandledRejection', onUnhandled);
    }
  });
});

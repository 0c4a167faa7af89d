// The projectors of `wearon serve` in a worker thread (started by projectionThread.ts): their own ledger and read-model
// connections and their own event loop. Messages in: `appended` (the main thread's store signalled an append),
// `request` (probe, metrics), `stop`. Out: `started` or `failed`, `log` lines, `response`; it ends once stopped.
import { Writable } from 'node:stream';
import { parentPort, workerData } from 'node:worker_threads';
import type { EventStore } from '../app/ports/eventStore.ts';
import type { Config } from '../config.ts';
import { createLogger } from '../logger.ts';
import { createMetrics } from '../metrics.ts';
import { projectorsProbe } from '../projections/projector.ts';
import type { ThreadRequest, ToThread } from './projectionThread.ts';
import { openEventStore } from './ledger.ts';
import { startProjections } from './readModel.ts';
import type { Resource } from './scope.ts';

const port = parentPort!;
const { config } = workerData as { config: Config };
// Lines go to the main thread's logger (its bindings, its stream), which writes them.
const logger = createLogger({
  level: config.LOG_LEVEL,
  stream: new Writable({
    write(chunk: Buffer, _encoding, done) {
      port.postMessage({ type: 'log', line: chunk.toString() });
      done();
    },
  }),
});
// Counters and gauges only: the process-wide defaults (CPU, memory, event loop) are the main thread's.
const metrics = createMetrics({ defaults: false });

/** The store, waking its listeners also when the main thread's store signals an append (its own appends: the worker's). */
function wokenByMain(store: EventStore, wakes: Set<() => void>): EventStore {
  const onAppended = (listener: () => void) => {
    const off = store.onAppended?.(listener);
    wakes.add(listener);
    return () => {
      off?.();
      wakes.delete(listener);
    };
  };
  return new Proxy(store, {
    get(target, prop) {
      if (prop === 'onAppended') return onAppended;
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

const wakes = new Set<() => void>();
let store: Resource<EventStore> | undefined;
let projections: Awaited<ReturnType<typeof startProjections>> | undefined;
try {
  store = await openEventStore(config, logger, metrics);
  projections = await startProjections(config, wokenByMain(store.value, wakes), logger, metrics);
  port.postMessage({ type: 'started' });
} catch (err) {
  await store?.close().catch(() => undefined);
  port.postMessage({ type: 'failed', error: err instanceof Error ? err.message : String(err) });
  process.exit(1);
}
const running = projections!.value;
const probe = projectorsProbe(running.projectors);

async function answer(request: ThreadRequest): Promise<unknown> {
  if (request.kind === 'probe') return probe();
  return metrics.registry.getMetricsAsJSON();
}

port.on('message', (m: ToThread) => {
  if (m.type === 'appended') for (const wake of wakes) wake();
  else if (m.type === 'request') {
    answer(m.request).then(
      (value) => port.postMessage({ type: 'response', id: m.id, ok: true, value }),
      (err: unknown) => port.postMessage({ type: 'response', id: m.id, ok: false, error: err instanceof Error ? err.message : String(err) }),
    );
  } else if (m.type === 'stop') {
    void (async () => {
      try {
        await projections!.close(); // stops the projectors (releasing their locks), closes the read model
        await store!.close();
      } catch (err) {
        logger.error({ err }, 'projection_thread_stop_failed');
      } finally {
        port.close(); // nothing else keeps the thread alive: it ends
      }
    })();
  }
});

// The service: starts the requested parts (HTTP API, worker, projectors) from the factories of this folder, and stops
// them in reverse order. `wearon serve`, `worker` and `project` run it; nothing else starts intake.
import path from 'node:path';
import { pendingIndexFile } from '../adapters/pendingIndexFile.ts';
import { HealthMonitor } from '../app/health.ts';
import { Jobs } from '../app/jobs.ts';
import { LedgerHealth, type VerifyResult } from '../app/ledgerHealth.ts';
import type { EventStore } from '../app/ports/eventStore.ts';
import type { TaskQueue } from '../app/ports/queue.ts';
import { StatementReader } from '../app/statements.ts';
import { GenerationWorker } from '../app/worker.ts';
import type { Config } from '../config.ts';
import { browserGuard } from '../http/browserGuard.ts';
import { adminRoutes } from '../http/routes/admin.ts';
import { consoleRoutes } from '../http/routes/console.ts';
import { filesRoutes } from '../http/routes/files.ts';
import { healthRoutes } from '../http/routes/health.ts';
import { projectionsRoutes } from '../http/routes/projections.ts';
import { v1Routes } from '../http/routes/v1.ts';
import { createHttpServer } from '../http/server.ts';
import type { Logger } from '../logger.ts';
import { createMetrics, type ForeignMetrics, type Metrics } from '../metrics.ts';
import { LagHistory } from '../projections/lagHistory.ts';
import { projectorsProbe } from '../projections/projector.ts';
import type { ReadModel } from '../projections/readModel.ts';
import { Replays } from '../projections/replayJob.ts';
import { verifyReadModels } from '../projections/verifyReadModels.ts';
import { startInbox } from './bridge.ts';
import type { InboxConsumer } from '../bridge/consumer.ts';
import { createGeneration } from './generation.ts';
import { openEventStore, workerIdOf } from './ledger.ts';
import { startProjectionThread } from './projectionThread.ts';
import { openReadModel, startProjections } from './readModel.ts';
import { openRedis, openTaskQueue } from './redis.ts';
import { Scope } from './scope.ts';

export interface Parts {
  http: boolean;
  worker: boolean;
  projections: boolean;
}

export interface Service {
  workerId: string;
  store: EventStore;
  metrics: Metrics;
  worker?: GenerationWorker;
  address?: string;
  stop(): Promise<void>;
}

/** Exports a verification's result (the periodic one and the console's): metrics for the alerts, and a log line. */
function reportVerify(metrics: Metrics, log: Logger) {
  return ({ violations, summary, drifts }: VerifyResult, trigger: string) => {
    metrics.verifyViolations.set(violations.length);
    metrics.verifyLastRun.set(Date.now() / 1000);
    if (violations.length) log.error({ violations: violations.slice(0, 20), count: violations.length, trigger }, 'ledger_verify_violations');
    else log.info({ events: summary.events, trigger }, 'ledger_verified');
    if (drifts?.length) log.warn({ drifts: drifts.length, trigger }, 'read_model_drift');
  };
}

/** Starts the requested parts of the service; `stop()` shuts them down in reverse order. */
export async function startService(config: Config, parts: Parts, logger: Logger): Promise<Service> {
  const metrics = createMetrics();
  const workerId = workerIdOf(config);
  const log = logger.child({ worker_id: workerId });
  const scope = new Scope(log);
  const stop = () => scope.close();

  try {
    const store = scope.add(await openEventStore(config, log, metrics));
    const jobs = new Jobs((kind, err) => log.error({ err, job: kind }, 'job_failed'));
    let readModel: ReadModel | undefined; // the projections' read model, when this process runs them
    const ledgerHealth = new LedgerHealth({
      store,
      jobs,
      readModelDrifts: async () => (readModel ? verifyReadModels(store, readModel, log) : []),
      onResult: reportVerify(metrics, log),
    });
    const health = new HealthMonitor({ metrics });
    health.add({ name: 'ledger', check: async () => (await store.ping(), { store: store.kind }) });

    const redis = config.REDIS_URL ? scope.add(openRedis(config.REDIS_URL, log, 'commands')) : undefined;
    if (redis) health.add({ name: 'redis', check: async () => void (await redis.ping()) });
    else log.warn('no REDIS_URL: the Redis intake is off and the upstream budget is per process');

    const clock = () => Date.now();
    // The platform bridge's inbox (docs/platform-adoption.md): started with the worker, before intake.
    let inbox: InboxConsumer | undefined;
    const pendingCredits = async () => (inbox ? (await inbox.drainNow()).applied > 0 : false);
    const { saga, repo, pipeline } = await createGeneration(config, { store, workerId, logger: log, metrics, redis, pendingCredits });
    if (parts.worker && config.DATABASE_URL && config.BRIDGE_INBOX) {
      inbox = scope.add(await startInbox(config.DATABASE_URL, config.BRIDGE_POLL_MS, { repo, workerId, clock, logger: log }));
    }
    const statements = new StatementReader(repo);

    let worker: GenerationWorker | undefined;
    let queue: TaskQueue | undefined;
    if (parts.worker) {
      if (config.REDIS_URL) queue = scope.add(openTaskQueue({ ...config, REDIS_URL: config.REDIS_URL }, workerId, log));
      const w = new GenerationWorker({
        saga,
        store,
        snapshots: pendingIndexFile(path.join(config.DATA_DIR, 'pending-index.json')),
        ...(queue ? { queue } : {}),
        cost: config.GENERATION_COST,
        clock,
        logger: log,
        metrics,
        options: {
          concurrency: config.WORKER_CONCURRENCY,
          recoveryIntervalMs: config.RECOVERY_INTERVAL_MS,
          shutdownGraceMs: config.SHUTDOWN_GRACE_MS,
        },
      });
      worker = w;
      health.add({ name: 'worker', check: async () => {
        if (w.deadLoops.length) throw new Error(`worker loop(s) stopped: ${w.deadLoops.join(', ')}`);
        if (!w.ready) throw new Error('pending index still catching up with the log');
        return { in_flight: w.inFlight, pending: w.index.size };
      } });
      w.start();
      scope.defer(() => w.stop());
      if (config.VERIFY_INTERVAL_MS > 0) {
        // A first pass shortly after start, so the "verify stale" alert has a fresh timestamp after a deploy.
        const verifyNow = () => void ledgerHealth.verify('schedule', { readModels: false });
        const firstVerify = setTimeout(verifyNow, 30_000).unref();
        const verifyTimer = setInterval(verifyNow, config.VERIFY_INTERVAL_MS).unref();
        scope.defer(() => (clearTimeout(firstVerify), clearInterval(verifyTimer)));
      }
      log.info({ concurrency: config.WORKER_CONCURRENCY, generator: pipeline.generator.provider, intake: queue ? 'redis+http' : 'http' }, 'worker_started');
    }

    let threadMetrics: (() => Promise<ForeignMetrics>) | undefined;
    if (parts.projections) {
      let probe: () => Promise<Record<string, unknown>>;
      if (parts.worker && config.PROJECTIONS_THREAD) {
        // Beside the pipeline: the projectors in a thread of their own; this thread's read model serves the routes.
        readModel = scope.add(await openReadModel(config, log));
        const thread = scope.add(await startProjectionThread(config, store, log));
        probe = thread.probe;
        threadMetrics = thread.metrics;
      } else {
        const running = scope.add(await startProjections(config, store, log, metrics));
        readModel = running.readModel;
        probe = projectorsProbe(running.projectors);
      }
      const rm = readModel;
      health.add({ name: 'read_model', check: async () => void (await rm.query('SELECT 1 AS ok')) });
      health.add({ name: 'projections', check: probe });
      log.info({ read_model: rm.dialect, thread: Boolean(threadMetrics) }, 'projections_started');
    }

    scope.defer(() => jobs.stop()); // before the store and read models close under a running verify or replay

    let address: string | undefined;
    if (parts.http) {
      const apiToken = config.API_TOKEN ? { apiToken: config.API_TOKEN } : {};
      const app = createHttpServer({
        logger: log,
        metrics,
        timeouts: {
          headersMs: config.HTTP_HEADERS_TIMEOUT_MS,
          requestMs: config.HTTP_REQUEST_TIMEOUT_MS,
          idleMs: config.HTTP_IDLE_TIMEOUT_MS,
          keepAliveMs: config.HTTP_KEEP_ALIVE_TIMEOUT_MS,
        },
      });
      app.addHook('onRequest', browserGuard(apiToken));
      await app.register(healthRoutes({ health, metrics, startedAt: Date.now(), ...(threadMetrics ? { threadMetrics } : {}) }));
      await app.register(
        v1Routes({
          store,
          repo,
          statements,
          saga,
          results: pipeline.resultStore,
          ...apiToken,
          cost: config.GENERATION_COST,
          workerId,
          signedUrlTtlSeconds: config.SIGNED_URL_TTL_SECONDS,
          clock,
          metrics,
          ...(worker ? { submit: (id: string) => void worker!.submit(id) } : {}),
        }),
      );
      if (pipeline.localStore) await app.register(filesRoutes({ store: pipeline.localStore }));
      let consoleProjections;
      if (readModel) {
        await app.register(projectionsRoutes({ store, readModel, ...apiToken }));
        const lag = new LagHistory(store, readModel, log);
        lag.start();
        scope.defer(() => lag.stop());
        // A replay writes through a read-model connection of its own, as `wearon replay` does.
        const openReplayReadModel = async () => (await openReadModel(config, log)).value;
        const replays = new Replays({ store, jobs, logger: log, openReadModel: openReplayReadModel });
        consoleProjections = { readModel, replays, lag };
      }
      await app.register(
        adminRoutes({
          store,
          statements,
          ledgerHealth,
          ...apiToken,
          ...(consoleProjections ? { projections: consoleProjections } : {}),
          ...(queue ? { queue } : {}),
        }),
      );
      await app.register(consoleRoutes(apiToken));
      if (config.POSE_ENABLED) {
        const { createSizeRecStack } = await import('./sizeRecommendation.ts');
        const { estimateBodyRoutes } = await import('../http/routes/estimateBody.ts');
        const stack = scope.add(createSizeRecStack(config, log, metrics));
        health.add({ name: 'pose', check: async () => {
          if (!stack.pose.ready()) throw new Error('pose model not loaded');
          return { model: config.POSE_MODEL };
        } });
        void stack.pose.load().catch((err: unknown) => log.error({ err }, 'pose_model_load_failed'));
        await app.register(estimateBodyRoutes({ recommend: stack.recommend }));
      }
      address = await app.listen({ host: config.HOST, port: config.PORT });
      // Closed first on shutdown: no new requests while the worker drains.
      scope.defer(() => app.close());
      log.info({ address }, 'http_listening');
    }
    health.start();
    scope.defer(() => health.stop());
    return { workerId, store, metrics, ...(worker ? { worker } : {}), ...(address ? { address } : {}), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

// Composition root: builds adapters from config, starts what was asked (HTTP, worker, projectors), shuts down cleanly.
// The only place that knows every concrete adapter.
import { hostname } from 'node:os';
import path from 'node:path';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { eventStoreKind, type Config } from './config.ts';
import type { Logger } from './logger.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { AggregateRepository } from './app/aggregates.ts';
import { HealthMonitor } from './app/health.ts';
import type { EventStore } from './app/ports/eventStore.ts';
import type { TaskQueue } from './app/ports/queue.ts';
import { GenerationSaga } from './app/saga.ts';
import { GenerationWorker, type PendingSnapshotStore } from './app/worker.ts';
import type { PendingSnapshot } from './app/pending.ts';
import { Jobs } from './app/jobs.ts';
import { LedgerHealth, type VerifyResult } from './app/ledgerHealth.ts';
import { StatementReader } from './app/statements.ts';
import { openSqliteEventStore } from './adapters/eventstore/sqlite/sqliteEventStore.ts';
import { createRedis, RedisTaskQueue } from './adapters/queue/redisTaskQueue.ts';
import type { RateLimiter } from './app/ports/pipeline.ts';
import { createPipelineAdapters } from './adapters/pipelineAdapters.ts';
import { MemoryRateLimiter } from './adapters/ratelimit/memoryRateLimiter.ts';
import { RedisRateLimiter } from './adapters/ratelimit/redisRateLimiter.ts';
import { createHttpServer } from './http/server.ts';
import { healthRoutes } from './http/routes/health.ts';
import { v1Routes } from './http/routes/v1.ts';
import { filesRoutes } from './http/routes/files.ts';
import { projectionsRoutes } from './http/routes/projections.ts';
import { adminRoutes } from './http/routes/admin.ts';
import { consoleRoutes } from './http/routes/console.ts';
import { browserGuard } from './http/browserGuard.ts';
import { LagHistory } from './projections/lagHistory.ts';
import { Replays } from './projections/replayJob.ts';
import { verifyReadModels } from './projections/verifyReadModels.ts';
import { openReadModel, startProjections, type RunningProjections } from './projections/wiring.ts';

export interface Parts {
  http: boolean;
  worker: boolean;
  projections: boolean;
}

export function workerIdOf(config: Config): string {
  return config.WORKER_ID ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

/** The ledger: Postgres or EventStoreDB by the scheme of EVENTSTORE_URL, else the embedded SQLite file under DATA_DIR. */
export async function openEventStore(config: Config, logger: Logger, metrics?: Metrics): Promise<EventStore> {
  if (eventStoreKind(config) === 'postgres') {
    const { openPgEventStore } = await import('./adapters/eventstore/postgres/pgEventStore.ts');
    return openPgEventStore({ connectionString: config.EVENTSTORE_URL!, schema: config.EVENTSTORE_SCHEMA, logger, ...(metrics ? { metrics } : {}) });
  }
  if (config.EVENTSTORE_URL) {
    const { openEsdbEventStore } = await import('./adapters/eventstore/esdb/esdbEventStore.ts');
    return openEsdbEventStore({ connectionString: config.EVENTSTORE_URL, logger, ...(metrics ? { metrics } : {}) });
  }
  return openSqliteEventStore({ path: path.join(config.DATA_DIR, 'ledger.sqlite'), writer: config.LEDGER_WRITER });
}

export function createRepository(store: EventStore, metrics?: Metrics): AggregateRepository {
  return new AggregateRepository(store, {
    onConflict: () => metrics?.appendConflicts.inc(),
    onAppend: (s) => metrics?.appendSeconds.observe({ store: store.kind }, s),
  });
}

/** The worker's pending index cached in a file (atomic replace), so a restart does not re-read the whole log. */
function pendingSnapshotFile(file: string): PendingSnapshotStore {
  return {
    load: async () => {
      try {
        return JSON.parse(await readFile(file, 'utf8')) as PendingSnapshot;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw err;
      }
    },
    save: async (snapshot) => {
      await mkdir(path.dirname(file), { recursive: true });
      const tmp = `${file}.${process.pid}.tmp`;
      await writeFile(tmp, JSON.stringify(snapshot));
      await rename(tmp, file);
    },
  };
}

/** Exports a verification's result (the periodic one and the console's): metrics for the alerts, and a log line. */
function reportVerify(metrics: Metrics, log: Logger) {
  return ({ violations, summary, drifts }: VerifyResult, trigger: string) => {
    metrics.verifyViolations.set(violations.length);
    metrics.verifyLastRun.set(Date.now() / 1000);
    metrics.openHolds.set(summary.openHolds);
    if (violations.length) log.error({ violations: violations.slice(0, 20), count: violations.length, trigger }, 'ledger_verify_violations');
    else log.info({ events: summary.events, trigger }, 'ledger_verified');
    if (drifts?.length) log.warn({ drifts: drifts.length, trigger }, 'read_model_drift');
  };
}

export interface Service {
  workerId: string;
  store: EventStore;
  metrics: Metrics;
  worker?: GenerationWorker;
  address?: string;
  stop(): Promise<void>;
}

/** Starts the requested parts of the service; `stop()` shuts them down in reverse order. */
export async function startService(config: Config, parts: Parts, logger: Logger): Promise<Service> {
  const metrics = createMetrics();
  const workerId = workerIdOf(config);
  const log = logger.child({ worker_id: workerId });
  const closers: Array<() => Promise<unknown> | unknown> = [];
  const stop = async () => {
    for (const close of closers.reverse()) {
      try {
        await close();
      } catch (err) {
        log.error({ err }, 'shutdown_step_failed');
      }
    }
  };

  try {
    const store = await openEventStore(config, log, metrics);
    closers.push(() => store.close());
    const repo = createRepository(store, metrics);
    const statements = new StatementReader(repo);
    const jobs = new Jobs((kind, err) => log.error({ err, job: kind }, 'job_failed'));
    let projections: RunningProjections | undefined;
    const ledgerHealth = new LedgerHealth({
      store,
      jobs,
      readModelDrifts: async () => (projections ? verifyReadModels(store, projections.readModel, log) : []),
      onResult: reportVerify(metrics, log),
    });
    const health = new HealthMonitor({ metrics });
    health.add({ name: 'ledger', check: async () => (await store.ping(), { store: store.kind }) });

    let redis: Redis | undefined;
    if (config.REDIS_URL) {
      redis = createRedis(config.REDIS_URL, log, { name: 'commands' });
      const r = redis;
      closers.push(() => r.quit().catch(() => r.disconnect()));
      health.add({ name: 'redis', check: async () => void (await r.ping()) });
    } else {
      log.warn('no REDIS_URL: the Redis intake is off and the upstream budget is per process');
    }

    const clock = () => Date.now();
    const rateLimiter: RateLimiter = redis
      ? new RedisRateLimiter({ redis, logger: log, limit: config.OPENAI_RATE_LIMIT_PER_MIN })
      : new MemoryRateLimiter(config.OPENAI_RATE_LIMIT_PER_MIN);
    const pipeline = await createPipelineAdapters(config, { logger: log, metrics, rateLimiter });
    const { generator, resultStore: results, localStore: local } = pipeline;
    const saga = new GenerationSaga({
      repo,
      images: pipeline.inputImages,
      generator,
      results,
      workerId,
      clock,
      logger: log,
      metrics,
      options: {
        leaseMs: config.LEASE_MS,
        maxAttempts: config.MAX_ATTEMPTS,
        max429Retries: config.OPENAI_MAX_429_RETRIES,
        signedUrlTtlSeconds: config.SIGNED_URL_TTL_SECONDS,
      },
    });

    let worker: GenerationWorker | undefined;
    let queue: TaskQueue | undefined;
    if (parts.worker) {
      if (config.REDIS_URL) {
        queue = await RedisTaskQueue.connect(config.REDIS_URL, {
          workerId,
          logger: log,
          queueKey: config.QUEUE_KEY,
          deadLetterMaxEntries: config.DEAD_LETTER_MAX_ENTRIES,
          deadLetterMaxRawBytes: config.DEAD_LETTER_MAX_RAW_BYTES,
        });
        const q = queue;
        closers.push(() => q.close());
      }
      worker = new GenerationWorker({
        saga,
        store,
        snapshots: pendingSnapshotFile(path.join(config.DATA_DIR, 'pending-index.json')),
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
      const w = worker;
      health.add({ name: 'worker', check: async () => {
        if (!w.ready) throw new Error('pending index still catching up with the log');
        return { in_flight: w.inFlight, pending: w.index.size };
      } });
      w.start();
      closers.push(() => w.stop());
      if (config.VERIFY_INTERVAL_MS > 0) {
        // A first pass shortly after start, so the "verify stale" alert has a fresh timestamp after a deploy.
        const verifyNow = () => void ledgerHealth.verify('schedule', { readModels: false });
        const firstVerify = setTimeout(verifyNow, 30_000).unref();
        const verifyTimer = setInterval(verifyNow, config.VERIFY_INTERVAL_MS).unref();
        closers.push(() => (clearTimeout(firstVerify), clearInterval(verifyTimer)));
      }
      log.info({ concurrency: config.WORKER_CONCURRENCY, generator: generator.provider, intake: queue ? 'redis+http' : 'http' }, 'worker_started');
    }

    if (parts.projections) {
      const running = await startProjections(config, store, log, metrics);
      projections = running;
      closers.push(() => running.stop());
      health.add({ name: 'read_model', check: async () => void (await running.readModel.query('SELECT 1 AS ok')) });
      log.info({ read_model: running.readModel.dialect, projectors: running.projectors.length }, 'projections_started');
    }

    closers.push(() => jobs.stop()); // before the store and read models close under a running verify or replay

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
      await app.register(healthRoutes({ health, metrics, startedAt: Date.now() }));
      await app.register(
        v1Routes({
          store,
          repo,
          statements,
          saga,
          results,
          ...(config.API_TOKEN ? { apiToken: config.API_TOKEN } : {}),
          cost: config.GENERATION_COST,
          workerId,
          signedUrlTtlSeconds: config.SIGNED_URL_TTL_SECONDS,
          clock,
          metrics,
          ...(worker ? { submit: (id: string) => void worker!.submit(id) } : {}),
        }),
      );
      if (local) await app.register(filesRoutes({ store: local }));
      let consoleProjections;
      if (projections) {
        await app.register(projectionsRoutes({ store, readModel: projections.readModel, ...apiToken }));
        const lag = new LagHistory(store, projections.readModel, log);
        lag.start();
        closers.push(() => lag.stop());
        const replays = new Replays({ store, jobs, logger: log, openReadModel: () => openReadModel(config, log) });
        consoleProjections = { readModel: projections.readModel, replays, lag };
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
        const { createSizeRecStack } = await import('./adapters/pose/stack.ts');
        const { estimateBodyRoutes } = await import('./http/routes/estimateBody.ts');
        const stack = createSizeRecStack(config, log, metrics);
        health.add({ name: 'pose', check: async () => {
          if (!stack.pose.ready()) throw new Error('pose model not loaded');
          return { model: config.POSE_MODEL };
        } });
        void stack.pose.load().catch((err: unknown) => log.error({ err }, 'pose_model_load_failed'));
        closers.push(() => stack.pose.close());
        await app.register(estimateBodyRoutes({ recommend: stack.recommend }));
      }
      address = await app.listen({ host: config.HOST, port: config.PORT });
      // Closed first on shutdown: no new requests while the worker drains.
      closers.push(() => app.close());
      log.info({ address }, 'http_listening');
    }
    health.start();
    closers.push(() => health.stop());
    return { workerId, store, metrics, ...(worker ? { worker } : {}), ...(address ? { address } : {}), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

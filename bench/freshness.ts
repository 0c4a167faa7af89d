// Freshness (issue 17): the time from an event's append to the commit of the read-model transaction that applied it,
// p50/p99, into the SQLite and into the Postgres read model, while the pipeline runs at a steady 20 generations/s.
// Setup as the pipeline suite (one service: Redis intake, SQLite ledger, local storage, the real OpenAI adapter against
// the instant stand-in), with the projectors of `serve` started beside it on the service's store. Inputs are small
// photographs by default (640x800) so that the image work is not what limits the rate on a small machine;
// FRESHNESS_BENCH_IMAGES=2mp uses the pipeline suite's two 2-megapixel inputs.
// How it is measured: a read model wrapper notes when each transaction that moved a checkpoint returned from COMMIT;
// an event's delay is that time for the first checkpoint at or after it, minus the event's recorded (append) time.
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import pg from 'pg';
import { Redis } from 'ioredis';
import { openPgReadModel } from '../src/adapters/readmodel/postgres/pgReadModel.ts';
import { openSqliteReadModel } from '../src/adapters/readmodel/sqlite/sqliteReadModel.ts';
import { readLog } from '../src/app/log.ts';
import { comparePositions, type EventStore, type Position, type RecordedEvent } from '../src/app/ports/eventStore.ts';
import { decodeRecorded } from '../src/app/recorded.ts';
import { startService } from '../src/compose/service.ts';
import { buildProducerTask, serializeProducerTask } from '../src/contract.ts';
import { silentLogger } from '../src/logger.ts';
import { startProjectors } from '../src/projections/projector.ts';
import { PROJECTIONS, PROJECTION_NAMES } from '../src/projections/projections.ts';
import type { ProjectionLease, ReadModel, ReadModelTx } from '../src/projections/readModel.ts';
import { startFakeOpenAI } from '../tests/support/fakeOpenAI.ts';
import { startImageServer } from '../tests/support/imageServer.ts';
import { noisyJpeg } from '../tests/support/images.ts';
import { DATABASE_URL, deleteKeys, postgresAvailable, REDIS_URL, redisAvailable } from '../tests/support/services.ts';
import { freePort } from '../tests/support/stack.ts';
import { pct, pipelineBenchConfig, twoMegapixel } from './pipeline.ts';
import type { BenchSuite, Figure } from './types.ts';

const BENCH_USER = '00000000-0000-4000-8000-00000000f7e5';
const RATE_PER_S = 20;

interface Commit {
  position: Position;
  at: number;
}

/** The read model, noting when every transaction that moved a projection's checkpoint returned from COMMIT. */
function notingCommits(rm: ReadModel, commits: Map<string, Commit[]>): ReadModel {
  const bind = (o: object, p: string | symbol) => {
    const v = Reflect.get(o, p, o) as unknown;
    return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(o) : v;
  };
  return new Proxy(rm, {
    get(target, prop) {
      if (prop !== 'acquire') return bind(target, prop);
      return async (projection: string, options?: { signal?: AbortSignal; pollMs?: number }): Promise<ProjectionLease> => {
        const lease = await target.acquire(projection, options);
        const list = commits.get(projection) ?? commits.set(projection, []).get(projection)!;
        return {
          projection,
          get held() {
            return lease.held;
          },
          release: () => lease.release(),
          async transaction<T>(fn: (tx: ReadModelTx) => Promise<T>): Promise<T> {
            let moved: Position | null = null;
            const out = await lease.transaction((tx) =>
              fn(
                new Proxy(tx, {
                  get(t, p) {
                    if (p !== 'setCheckpoint') return bind(t, p);
                    return (name: string, position: Position, events: number) => ((moved = position), t.setCheckpoint(name, position, events));
                  },
                }),
              ),
            );
            if (moved) list.push({ position: moved, at: Date.now() });
            return out;
          },
        };
      };
    },
  });
}

/** Append-to-commit delays (ms) of the events a projection applies, appended after `since`. */
function delays(events: readonly RecordedEvent[], commits: readonly Commit[], projection: (typeof PROJECTION_NAMES)[number], since: number): number[] {
  const out: number[] = [];
  let i = 0;
  for (const e of events) {
    if (e.recordedAt.getTime() < since) continue;
    const r = decodeRecorded(e);
    if (!r || PROJECTIONS[projection].keyOf(r) === null) continue;
    while (i < commits.length && comparePositions(commits[i]!.position, e.position) < 0) i++;
    if (i === commits.length) break; // not applied before the projectors stopped (cannot happen: they caught up)
    out.push(commits[i]!.at - e.recordedAt.getTime());
  }
  return out;
}

async function caughtUp(store: EventStore, rm: ReadModel, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const head = await store.headPosition();
    const cps = await rm.checkpoints();
    if (!head || PROJECTION_NAMES.every((n) => { const c = cps.find((x) => x.projection === n); return c && comparePositions(c.position, head) >= 0; })) return;
    if (Date.now() > until) throw new Error('projections did not catch up');
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const freshnessBench: BenchSuite = async (ctx) => {
  if (!(await redisAvailable())) {
    ctx.log('freshness: skipped (Redis not reachable)');
    return [];
  }
  const seconds = Number(process.env.FRESHNESS_BENCH_SECONDS) || (ctx.quick ? 10 : 20);
  const big = process.env.FRESHNESS_BENCH_IMAGES === '2mp';
  const fake = await startFakeOpenAI();
  const images = await startImageServer();
  images.serve('/model.jpg', big ? await twoMegapixel('yogait-man-armsdown-office.jpg', 11) : await noisyJpeg(640, 800, 11), 'image/jpeg');
  images.serve('/outfit.jpg', big ? await twoMegapixel('tfjs-yoga-warrior-beach.jpg', 12) : await noisyJpeg(640, 800, 12), 'image/jpeg');
  const urls = [images.url('/model.jpg'), images.url('/outfit.jpg')];
  const queueKey = `bench:${randomUUID().slice(0, 8)}:fresh`;
  const port = await freePort();
  const config = pipelineBenchConfig({ dataDir: `${ctx.tmpDir}/freshness`, port, queueKey, openaiBaseUrl: fake.baseURL });
  const redis = new Redis(REDIS_URL);
  const service = await startService(config, { http: true, worker: true, projections: false }, silentLogger());
  const base = `http://127.0.0.1:${port}`;
  const completed = () => service.metrics.generations.get().then((m) => m.values.filter((v) => v.labels.outcome === 'completed').reduce((a, v) => a + v.value, 0));
  const task = () => serializeProducerTask(buildProducerTask({ userId: BENCH_USER, imageUrls: urls }));
  const figures: Figure[] = [];
  try {
    await fetch(`${base}/v1/accounts/user:${BENCH_USER}/grants`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ amount: 10_000, reason: 'purchase', reference: 'bench-freshness' }),
    });
    for (let i = 0; i < 12; i++) await redis.lpush(queueKey, task());
    while ((await completed()) < 12) await new Promise((r) => setTimeout(r, 50));

    const readModels: Array<[label: string, open: () => Promise<{ rm: ReadModel; close: () => Promise<void> }>]> = [
      ['sqlite', async () => {
        const rm = openSqliteReadModel({ path: path.join(ctx.tmpDir, 'freshness-readmodels.sqlite') });
        return { rm, close: () => rm.close() };
      }],
    ];
    if (await postgresAvailable().catch(() => false)) {
      readModels.push(['postgres', async () => {
        const schema = `bench_freshness_${process.pid}`;
        const admin = new pg.Client({ connectionString: DATABASE_URL });
        await admin.connect();
        await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE; CREATE SCHEMA ${schema}`);
        const rm = openPgReadModel({ connectionString: DATABASE_URL, schema });
        return {
          rm,
          close: async () => {
            await rm.close();
            await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
            await admin.end();
          },
        };
      }]);
    } else ctx.log('freshness: SKIP Postgres (not reachable)');

    for (const [label, open] of readModels) {
      const { rm, close } = await open();
      const commits = new Map<string, Commit[]>();
      try {
        await rm.migrate();
        const projectors = startProjectors({ store: service.store, readModel: notingCommits(rm, commits), logger: silentLogger(), batchSize: config.PROJECTION_BATCH_SIZE });
        try {
          await caughtUp(service.store, rm);
          ctx.log(`freshness: ${label}: ${seconds} s at ${RATE_PER_S} generations/s`);
          const before = await completed();
          const since = Date.now();
          // A steady rate: each tick pushes the tasks due by now (timers on a busy machine fire late, never early).
          let pushed = 0;
          const total = seconds * RATE_PER_S;
          while (pushed < total) {
            const due = Math.min(total, Math.floor(((Date.now() - since) / 1000) * RATE_PER_S) + 1);
            for (; pushed < due; pushed++) await redis.lpush(queueKey, task());
            await new Promise((r) => setTimeout(r, 1000 / RATE_PER_S));
          }
          const pushSeconds = (Date.now() - since) / 1000;
          while ((await completed()) < before + total) await new Promise((r) => setTimeout(r, 20));
          const doneSeconds = (Date.now() - since) / 1000;
          await caughtUp(service.store, rm);
          const events: RecordedEvent[] = [];
          for await (const page of readLog(service.store)) events.push(...page);
          const all: number[] = [];
          for (const n of PROJECTION_NAMES) {
            const d = delays(events, commits.get(n) ?? [], n, since);
            all.push(...d);
            figures.push({ name: `freshness.${label}.${n.replace('-', '_')}.p99_ms`, value: pct(d, 99), unit: 'ms' });
          }
          const p50 = pct(all, 50);
          const p99 = pct(all, 99);
          ctx.log(`freshness: ${label}: ${all.length} event deliveries, p50 ${p50} ms, p99 ${p99} ms, max ${Math.max(...all)} ms; ${total} generations done in ${doneSeconds.toFixed(1)} s (pushed over ${pushSeconds.toFixed(1)} s)`);
          figures.push(
            { name: `freshness.${label}.generations.per_s`, value: total / doneSeconds, unit: 'gen/s', target: `>= ${RATE_PER_S * 0.95} gen/s (the load held)`, met: total / doneSeconds >= RATE_PER_S * 0.95 },
            { name: `freshness.${label}.p50_ms`, value: p50, unit: 'ms' },
            { name: `freshness.${label}.p99_ms`, value: p99, unit: 'ms', target: '<= 50 ms', met: p99 <= 50 },
          );
        } finally {
          await Promise.all(projectors.map((p) => p.stop()));
        }
      } finally {
        await close();
      }
    }
    return figures;
  } finally {
    await service.stop();
    await deleteKeys(redis, queueKey);
    redis.disconnect();
    await fake.close();
    await images.close();
  }
};

// Freshness (issue 17): the time from an event's append to the commit of the read-model transaction that applied it,
// p50/p99, into the SQLite and into the Postgres read model, while the pipeline runs at a steady 20 generations/s.
// Setup as the pipeline suite (Redis intake, SQLite ledger, local storage, the real OpenAI adapter against the instant
// stand-in), in the two ways it is deployed:
// - `serve`: the projectors in the worker's process, on its store, sharing its event loop with the pipeline;
// - `worker` + `project`: the worker in a child process, the projectors in this one on their own connection to the
//   ledger file, woken by its file watch (as `wearon project` beside `wearon worker` on one box).
// Inputs are small photographs by default (640x800) so that the image work is not what limits the rate on a small
// machine; FRESHNESS_BENCH_IMAGES=2mp uses the pipeline suite's two 2-megapixel inputs.
// How it is measured: a read model wrapper notes when each transaction that moved a checkpoint returned from COMMIT;
// an event's delay is that time for the first checkpoint at or after it, minus the event's recorded (append) time.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { Redis } from 'ioredis';
import { openSqliteEventStore } from '../src/adapters/eventstore/sqlite/sqliteEventStore.ts';
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
import { pct, pipelineBenchEnv, twoMegapixel } from './pipeline.ts';
import { loadConfig } from '../src/config.ts';
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

/** Completed generations as the worker's /metrics counts them. */
async function completedOf(base: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  let n = 0;
  for (const m of text.matchAll(/^wearon_generations_total\{[^}]*outcome="completed"[^}]*\} (\d+)/gm)) n += Number(m[1]);
  return n;
}

/** `wearon worker` in a child process; resolves once /health/live answers. */
async function startWorkerProcess(env: Record<string, string>, base: string): Promise<{ stop: () => Promise<void> }> {
  const child = spawn(process.execPath, [fileURLToPath(new URL('../bin/wearon.mjs', import.meta.url)), 'worker'], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  const until = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`wearon worker exited with ${child.exitCode}`);
    if (await fetch(`${base}/health/live`).then((r) => r.ok, () => false)) return { stop };
    if (Date.now() > until) {
      await stop();
      throw new Error('wearon worker did not start within 60 s');
    }
    await new Promise((r) => setTimeout(r, 100));
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
  const redis = new Redis(REDIS_URL);
  const task = () => serializeProducerTask(buildProducerTask({ userId: BENCH_USER, imageUrls: urls }));

  const readModels: Array<[label: string, open: () => Promise<{ rm: ReadModel; close: () => Promise<void> }>]> = [
    ['sqlite', async () => {
      const rm = openSqliteReadModel({ path: path.join(ctx.tmpDir, `freshness-readmodels-${randomUUID().slice(0, 8)}.sqlite`) });
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

  /** Grants credits and runs a dozen generations (JIT, sharp, SDK) before any clock starts. */
  const warmUp = async (base: string, completed: () => Promise<number>) => {
    await fetch(`${base}/v1/accounts/user:${BENCH_USER}/grants`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ amount: 10_000, reason: 'purchase', reference: `bench-freshness-${base}` }),
    });
    for (let i = 0; i < 12; i++) await redis.lpush(queueKey, task());
    while ((await completed()) < 12) await new Promise((r) => setTimeout(r, 50));
  };

  /** The figures of one deployment (`prefix`) and read model: projectors on `store` while the pipeline runs at 20/s. */
  const measure = async (prefix: string, label: string, store: EventStore, completed: () => Promise<number>, open: () => Promise<{ rm: ReadModel; close: () => Promise<void> }>) => {
    const figures: Figure[] = [];
    const { rm, close } = await open();
    const commits = new Map<string, Commit[]>();
    try {
      await rm.migrate();
      const projectors = startProjectors({ store, readModel: notingCommits(rm, commits), logger: silentLogger() });
      try {
        await caughtUp(store, rm);
        ctx.log(`freshness: ${prefix} ${label}: ${seconds} s at ${RATE_PER_S} generations/s`);
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
        await caughtUp(store, rm);
        const events: RecordedEvent[] = [];
        for await (const page of readLog(store)) events.push(...page);
        const all: number[] = [];
        const name = `freshness.${prefix === 'serve' ? '' : `${prefix}.`}${label}`;
        for (const n of PROJECTION_NAMES) {
          const d = delays(events, commits.get(n) ?? [], n, since);
          all.push(...d);
          figures.push({ name: `${name}.${n.replace('-', '_')}.p99_ms`, value: pct(d, 99), unit: 'ms' });
        }
        const p50 = pct(all, 50);
        const p99 = pct(all, 99);
        ctx.log(`freshness: ${prefix} ${label}: ${all.length} event deliveries, p50 ${p50} ms, p99 ${p99} ms, max ${Math.max(...all)} ms; ${total} generations done in ${doneSeconds.toFixed(1)} s (pushed over ${pushSeconds.toFixed(1)} s)`);
        figures.push(
          { name: `${name}.generations.per_s`, value: total / doneSeconds, unit: 'gen/s', target: `>= ${RATE_PER_S * 0.95} gen/s (the load held)`, met: total / doneSeconds >= RATE_PER_S * 0.95 },
          { name: `${name}.p50_ms`, value: p50, unit: 'ms' },
          { name: `${name}.p99_ms`, value: p99, unit: 'ms', target: '<= 50 ms', met: p99 <= 50 },
        );
      } finally {
        await Promise.all(projectors.map((p) => p.stop()));
      }
    } finally {
      await close();
    }
    return figures;
  };

  const figures: Figure[] = [];
  try {
    // `serve`: the projectors beside the worker, in its process.
    {
      const port = await freePort();
      const base = `http://127.0.0.1:${port}`;
      const config = loadConfig(pipelineBenchEnv({ dataDir: `${ctx.tmpDir}/freshness-serve`, port, queueKey, openaiBaseUrl: fake.baseURL }));
      const service = await startService(config, { http: true, worker: true, projections: false }, silentLogger());
      const completed = () => service.metrics.generations.get().then((m) => m.values.filter((v) => v.labels.outcome === 'completed').reduce((a, v) => a + v.value, 0));
      try {
        await warmUp(base, completed);
        for (const [label, open] of readModels) figures.push(...(await measure('serve', label, service.store, completed, open)));
      } finally {
        await service.stop();
      }
    }
    // `worker` + `project`: the worker in a child process, the projectors here on their own connection to its ledger.
    {
      const port = await freePort();
      const base = `http://127.0.0.1:${port}`;
      const dataDir = `${ctx.tmpDir}/freshness-project`;
      const worker = await startWorkerProcess(pipelineBenchEnv({ dataDir, port, queueKey, openaiBaseUrl: fake.baseURL }), base);
      const store = openSqliteEventStore({ path: path.join(dataDir, 'ledger.sqlite') });
      try {
        await warmUp(base, () => completedOf(base));
        for (const [label, open] of readModels) figures.push(...(await measure('project', label, store, () => completedOf(base), open)));
      } finally {
        await store.close();
        await worker.stop();
      }
    }
    return figures;
  } finally {
    await deleteKeys(redis, queueKey);
    redis.disconnect();
    await fake.close();
    await images.close();
  }
};

// Freshness (issue 17): the time from an event's append to the commit of the read-model transaction that applied it,
// p50/p99, into the SQLite and into the Postgres read model, while the pipeline runs at a steady 20 generations/s.
// Setup as the pipeline suite (Redis intake, SQLite ledger, local storage, the real OpenAI adapter against the instant
// stand-in), every part in a process of its own as deployed: the stand-ins (bench/standins.ts), this process only
// pushing tasks, and the service in one of its two shapes:
// - `serve`: one `wearon serve`, its projectors in a thread of their own (`freshness.<read model>.*`);
// - `serve` with PROJECTIONS_THREAD=false: the projectors share the worker's event loop with the pipeline, as before
//   the thread (`freshness.inline.<read model>.*`, the reference the thread is measured against);
// - `worker` + `project`: `wearon worker` and `wearon project` side by side on one ledger file, woken by its watch
//   (`freshness.project.<read model>.*`).
// Inputs are small photographs by default (640x800) so that the image work is not what limits the rate on a small
// machine; FRESHNESS_BENCH_IMAGES=2mp uses the pipeline suite's two 2-megapixel inputs.
// How it is measured: a trigger on projection_checkpoints notes the database clock each time a projection's checkpoint
// moves (inside the transaction that applied the events, just before its COMMIT); an event's delay is that time for the
// first move at or after it, minus the event's recorded (append) time. The read model and the ledger are on this
// machine, so both times come from one clock.
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import pg from 'pg';
import { Redis } from 'ioredis';
import { openSqliteEventStore } from '../src/adapters/eventstore/sqlite/sqliteEventStore.ts';
import { openPgReadModel } from '../src/adapters/readmodel/postgres/pgReadModel.ts';
import { openSqliteReadModel } from '../src/adapters/readmodel/sqlite/sqliteReadModel.ts';
import { readLog } from '../src/app/log.ts';
import { comparePositions, type EventStore, type RecordedEvent } from '../src/app/ports/eventStore.ts';
import { decodeRecorded } from '../src/app/recorded.ts';
import { buildProducerTask, serializeProducerTask } from '../src/contract.ts';
import { PROJECTIONS, PROJECTION_NAMES } from '../src/projections/projections.ts';
import type { ReadModel } from '../src/projections/readModel.ts';
import { DATABASE_URL, deleteKeys, postgresAvailable, REDIS_URL, redisAvailable } from '../tests/support/services.ts';
import { freePort } from '../tests/support/stack.ts';
import { pct, pipelineBenchEnv } from './pipeline.ts';
import { startStandinsProcess } from './standins.ts';
import { completedOf, startWearon } from './wearonProcess.ts';
import type { BenchSuite, Figure } from './types.ts';

const BENCH_USER = '00000000-0000-4000-8000-00000000f7e5';
type Deployment = 'serve' | 'inline' | 'project';
const RATE_PER_S = 20;

/** A projection's checkpoint moved to `commit` at `at` (ms since the epoch, the database's clock). */
interface Move {
  commit: bigint;
  at: number;
}

/** The table and trigger that note every checkpoint move, per dialect. */
const NOTE_MOVES = {
  sqlite: [
    'CREATE TABLE bench_checkpoint_moves (projection TEXT NOT NULL, commit_position INTEGER NOT NULL, at_ms REAL NOT NULL)',
    `CREATE TRIGGER bench_note_move AFTER UPDATE OF commit_position ON projection_checkpoints
     WHEN NEW.commit_position IS NOT OLD.commit_position
     BEGIN INSERT INTO bench_checkpoint_moves VALUES (NEW.projection, NEW.commit_position, (julianday('now') - 2440587.5) * 86400000.0); END`,
  ],
  postgres: [
    'CREATE TABLE bench_checkpoint_moves (projection text NOT NULL, commit_position bigint NOT NULL, at_ms double precision NOT NULL)',
    `CREATE FUNCTION bench_note_move() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
       INSERT INTO bench_checkpoint_moves VALUES (NEW.projection, NEW.commit_position, extract(epoch FROM clock_timestamp()) * 1000);
       RETURN NEW; END $$`,
    `CREATE TRIGGER bench_note_move AFTER UPDATE OF commit_position ON projection_checkpoints FOR EACH ROW
     WHEN (NEW.commit_position IS DISTINCT FROM OLD.commit_position) EXECUTE FUNCTION bench_note_move()`,
  ],
} as const;

/** Append-to-commit delays (ms) of the events a projection applies, appended after `since`. */
function delays(events: readonly RecordedEvent[], moves: readonly Move[], projection: (typeof PROJECTION_NAMES)[number], since: number): number[] {
  const out: number[] = [];
  let i = 0;
  for (const e of events) {
    if (e.recordedAt.getTime() < since) continue;
    const r = decodeRecorded(e);
    if (!r || PROJECTIONS[projection].keyOf(r) === null) continue;
    while (i < moves.length && moves[i]!.commit < e.position.commit) i++;
    if (i === moves.length) break; // not applied before the measurement ended (cannot happen: the projections caught up)
    out.push(Math.round(moves[i]!.at - e.recordedAt.getTime())); // the append time has whole milliseconds
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
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A read model for one measurement, migrated and noting its checkpoint moves; `env` points the service at it. */
interface BenchReadModel {
  rm: ReadModel;
  env: Record<string, string>;
  moves(projection: string): Promise<Move[]>;
  close(): Promise<void>;
}

const movesIn = (rm: ReadModel) => async (projection: string): Promise<Move[]> =>
  (await rm.query('SELECT commit_position, at_ms FROM bench_checkpoint_moves WHERE projection = ? ORDER BY commit_position', [projection])).map(
    (r) => ({ commit: BigInt(r.commit_position!), at: Number(r.at_ms) }),
  );

async function sqliteReadModel(dataDir: string): Promise<BenchReadModel> {
  const rm = openSqliteReadModel({ path: path.join(dataDir, 'readmodels.sqlite') }); // where the service looks for it
  await rm.migrate();
  for (const sql of NOTE_MOVES.sqlite) await rm.query(sql);
  return {
    rm,
    env: {},
    moves: movesIn(rm),
    close: () => rm.close(),
  };
}

async function postgresReadModel(): Promise<BenchReadModel> {
  const database = `bench_freshness_${process.pid}_${randomUUID().slice(0, 6)}`;
  const admin = new pg.Client({ connectionString: DATABASE_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${database}`);
  const url = new URL(DATABASE_URL);
  url.pathname = `/${database}`;
  const rm = openPgReadModel({ connectionString: url.href });
  await rm.migrate();
  for (const sql of NOTE_MOVES.postgres) await rm.query(sql);
  return {
    rm,
    // The platform bridge's inbox is left off: this database has no bridge installed.
    env: { DATABASE_URL: url.href, BRIDGE_INBOX: 'false' },
    moves: movesIn(rm),
    close: async () => {
      await rm.close();
      await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
      await admin.end();
    },
  };
}

export const freshnessBench: BenchSuite = async (ctx) => {
  if (!(await redisAvailable())) {
    ctx.log('freshness: skipped (Redis not reachable)');
    return [];
  }
  const seconds = Number(process.env.FRESHNESS_BENCH_SECONDS) || (ctx.quick ? 10 : 20);
  const standins = await startStandinsProcess(process.env.FRESHNESS_BENCH_IMAGES === '2mp' ? '2mp' : 'small');
  const queueKey = `bench:${randomUUID().slice(0, 8)}:fresh`;
  const redis = new Redis(REDIS_URL);
  const task = () => serializeProducerTask(buildProducerTask({ userId: BENCH_USER, imageUrls: standins.urls }));

  const readModels: Array<[label: 'sqlite' | 'postgres', open: (dataDir: string) => Promise<BenchReadModel>]> = [['sqlite', sqliteReadModel]];
  if (await postgresAvailable().catch(() => false)) readModels.push(['postgres', () => postgresReadModel()]);
  else ctx.log('freshness: SKIP Postgres (not reachable)');

  /** Grants credits and runs a dozen generations (JIT, sharp, SDK) before any clock starts. */
  const warmUp = async (base: string) => {
    await fetch(`${base}/v1/accounts/user:${BENCH_USER}/grants`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ amount: 10_000, reason: 'purchase', reference: `bench-freshness-${base}` }),
    });
    const before = await completedOf(base);
    for (let i = 0; i < 12; i++) await redis.lpush(queueKey, task());
    while ((await completedOf(base)) < before + 12) await new Promise((r) => setTimeout(r, 50));
  };

  /** The figures of one deployment and read model: the pipeline at 20/s, then the delays the trigger noted. */
  const measure = async (deployment: Deployment, label: 'sqlite' | 'postgres', open: (dataDir: string) => Promise<BenchReadModel>) => {
    const figures: Figure[] = [];
    const dataDir = path.join(ctx.tmpDir, `freshness-${deployment}-${label}`);
    const brm = await open(dataDir);
    let store: EventStore | undefined;
    const stops: Array<() => Promise<void>> = [];
    try {
      const port = await freePort();
      const base = `http://127.0.0.1:${port}`;
      const env = { ...pipelineBenchEnv({ dataDir, port, queueKey, openaiBaseUrl: standins.openaiBaseUrl }), ...brm.env };
      if (deployment === 'serve') stops.push((await startWearon('serve', env, base)).stop);
      else if (deployment === 'inline') stops.push((await startWearon('serve', { ...env, PROJECTIONS_THREAD: 'false' }, base)).stop);
      else {
        stops.push((await startWearon('worker', env, base)).stop);
        const projectPort = await freePort();
        stops.push((await startWearon('project', { ...env, PORT: String(projectPort) }, `http://127.0.0.1:${projectPort}`)).stop);
      }
      store = openSqliteEventStore({ path: path.join(dataDir, 'ledger.sqlite') }); // the service's ledger, to read the log
      await warmUp(base);
      await caughtUp(store, brm.rm);
      ctx.log(`freshness: ${deployment} ${label}: ${seconds} s at ${RATE_PER_S} generations/s`);
      const before = await completedOf(base);
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
      while ((await completedOf(base)) < before + total) await new Promise((r) => setTimeout(r, 100));
      const doneSeconds = (Date.now() - since) / 1000;
      await caughtUp(store, brm.rm);
      const events: RecordedEvent[] = [];
      for await (const page of readLog(store)) events.push(...page);
      const all: number[] = [];
      const name = `freshness.${deployment === 'serve' ? '' : `${deployment}.`}${label}`;
      for (const n of PROJECTION_NAMES) {
        const d = delays(events, await brm.moves(n), n, since);
        all.push(...d);
        figures.push({ name: `${name}.${n.replace('-', '_')}.p99_ms`, value: pct(d, 99), unit: 'ms' });
      }
      const p50 = pct(all, 50);
      const p99 = pct(all, 99);
      ctx.log(`freshness: ${deployment} ${label}: ${all.length} event deliveries, p50 ${p50} ms, p99 ${p99} ms, max ${Math.max(...all)} ms; ${total} generations done in ${doneSeconds.toFixed(1)} s (pushed over ${pushSeconds.toFixed(1)} s)`);
      figures.push(
        { name: `${name}.generations.per_s`, value: total / doneSeconds, unit: 'gen/s', target: `>= ${RATE_PER_S * 0.95} gen/s (the load held)`, met: total / doneSeconds >= RATE_PER_S * 0.95 },
        { name: `${name}.p50_ms`, value: p50, unit: 'ms' },
        { name: `${name}.p99_ms`, value: p99, unit: 'ms', target: '<= 50 ms', met: p99 <= 50 },
      );
    } finally {
      for (const stop of stops.reverse()) await stop();
      await store?.close();
      await brm.close();
    }
    return figures;
  };

  const figures: Figure[] = [];
  try {
    for (const deployment of ['inline', 'serve', 'project'] as const) {
      for (const [label, open] of readModels) figures.push(...(await measure(deployment, label, open)));
    }
    return figures;
  } finally {
    await deleteKeys(redis, queueKey);
    redis.disconnect();
    await standins.stop();
  }
};

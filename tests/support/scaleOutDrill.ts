// The scale-out drill (issue 14): one shared event store (Postgres, or KurrentDB when given), Redis intake, Postgres
// read models, 3 `wearon worker` and 2 `wearon project` processes, all configured by environment variables only, and
// an upstream stand-in answering after a fixed latency (so throughput measures concurrency, not CPU). It measures
// throughput with 1 worker and with 3, then pushes tasks with mixed upstream faults (429, 5xx, moderation, timeouts),
// duplicate deliveries and invalid payloads, SIGKILLs one worker and the active projector mid-run, and checks that
// every task ends terminal or dead-lettered, the standby projector takes over (timed), credits add up and
// `wearon verify --quiescent` (ledger and read models) is clean. Used by `npm run drill:scale-out` (full size) and
// tests/e2e/scale-out.e2e.test.ts (short form).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { readAfter } from '../../src/app/log.ts';
import { comparePositions, parsePosition, type Position } from '../../src/app/ports/eventStore.ts';
import { loadConfig } from '../../src/config.ts';
import { buildProducerTask, serializeProducerTask } from '../../src/contract.ts';
import { sessionIdFromStream } from '../../src/domain/streams.ts';
import { silentLogger } from '../../src/logger.ts';
import { openEventStore } from '../../src/compose/ledger.ts';
import { prng } from './crashScenario.ts';
import { startFakeOpenAI, type FakeStep } from './fakeOpenAI.ts';
import { startImageServer } from './imageServer.ts';
import { noisyJpeg } from './images.ts';
import { deleteKeys, queueBacklog } from './services.ts';
import { freePort, ROOT, run, tempDir, waitFor } from './stack.ts';

export interface DrillOptions {
  redisUrl: string;
  /** Postgres for the read models, and for the event store when `esdbUrl` is absent */
  databaseUrl: string;
  /** a KurrentDB to use as the shared store instead of Postgres (its $all is verified whole) */
  esdbUrl?: string;
  /** tasks of the faulty phase, during which a worker and the active projector are killed */
  tasks: number;
  /** tasks of each throughput phase (1 worker, then 3) */
  throughputTasks: number;
  users: number;
  /** per worker process */
  concurrency: number;
  /** the upstream stand-in's fixed latency */
  latencyMs: number;
  seed: number;
  log: (line: string) => void;
}

export interface DrillReport {
  store: string;
  workers: number;
  projectors: number;
  concurrencyPerWorker: number;
  upstreamLatencyMs: number;
  throughput: {
    tasks: number;
    oneWorkerPerS: number;
    threeWorkersPerS: number;
    ratio: number;
    /** CPU a worker process spent per task (1-worker phase): with the machine's cores, the bound on throughput */
    workerCpuSecondsPerTask: number | null;
    /** 1-minute load average at the end of the throughput phases (the machine is shared) */
    loadAverage: number;
  };
  faulty: {
    pushed: number;
    duplicates: number;
    invalid: number;
    byStatus: Record<string, number>;
    deadLetters: number;
    upstreamCalls: number;
    seconds: number;
    killedAtTerminal: number;
  };
  takeover: { projections: Record<string, number>; maxMs: number; caughtUpMs: number };
  accounts: Array<{ account: string; granted: number; deducted: number; captured: number; refunded: number; balance: number; open: number; completed: number }>;
  events: number | null;
  verify: { exitCode: number; output: string };
  seconds: number;
}

/** The events that end a generation, and the status each leaves. */
const TERMINAL_EVENTS: Record<string, string> = { GenerationCompleted: 'completed', GenerationFailed: 'failed', GenerationRejected: 'rejected' };

interface LogLine {
  at: number;
  msg: string;
  projection?: string;
}

interface Proc {
  name: string;
  base: string;
  child: ChildProcess;
  lines: LogLine[];
  output: () => string;
  stop(): Promise<void>;
  kill(): Promise<number>;
}

/** Starts `node bin/wearon.mjs <command>` on a free port and waits for /health/live. */
async function startProc(name: string, command: 'worker' | 'project', env: Record<string, string>): Promise<Proc> {
  const port = await freePort();
  let out = '';
  const lines: LogLine[] = [];
  let partial = '';
  const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'wearon.mjs'), command], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? os.tmpdir(), NODE_ENV: 'test', HOST: '127.0.0.1', PORT: String(port), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (b: Buffer) => {
    out += b.toString();
    const text = partial + b.toString();
    const parts = text.split('\n');
    partial = parts.pop() ?? '';
    for (const p of parts) {
      try {
        const j = JSON.parse(p) as { time?: string; msg?: string; projection?: string };
        lines.push({ at: j.time ? Date.parse(j.time) : Date.now(), msg: j.msg ?? '', ...(j.projection ? { projection: j.projection } : {}) });
      } catch {
        // not a log line
      }
    }
  });
  child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const alive = () => child.exitCode === null && child.signalCode === null;
  const stop = async () => {
    if (!alive()) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  };
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitFor(`${name} /health/live`, async () => {
      if (!alive()) throw new Error(`${name} exited with ${child.exitCode}:\n${out}`);
      return (await fetch(`${base}/health/live`)).ok;
    }, 120_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    name,
    base,
    child,
    lines,
    output: () => out,
    stop,
    kill: async () => {
      const at = Date.now();
      child.kill('SIGKILL');
      await exited;
      return at;
    },
  };
}

const PROJECTIONS = ['session-status', 'credit-balances'];

/** Upstream faults by call index: 5xx (retried in the adapter), moderation, 429 (retried by the saga), timeouts. */
function faultAt(n: number): FakeStep {
  if (n % 11 === 3) return { kind: 'server_error' };
  if (n % 23 === 5) return { kind: 'moderation' };
  if (n % 17 === 7) return { kind: 'rate_limit', retryAfter: '1' };
  if (n % 29 === 11) return { kind: 'stall_body' };
  return { kind: 'success' };
}

export async function runScaleOutDrill(o: DrillOptions): Promise<DrillReport> {
  const started = Date.now();
  const rand = prng(o.seed);
  const id = randomUUID().slice(0, 8);
  const esSchema = `drill_${id}_events`;
  const rmSchema = `drill_${id}_rm`;
  const admin = new pg.Client({ connectionString: o.databaseUrl });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${rmSchema}`);
  const rmUrl = new URL(o.databaseUrl);
  rmUrl.searchParams.set('options', `-c search_path=${rmSchema}`);
  const fake = await startFakeOpenAI();
  fake.setLatency(o.latencyMs);
  const images = await startImageServer();
  images.serve('/m.jpg', await noisyJpeg(256, 320, 3), 'image/jpeg');
  images.serve('/o.jpg', await noisyJpeg(200, 200, 4), 'image/jpeg');
  const redis = new Redis(o.redisUrl);
  const queueKey = `drill:${id}:tasks`;
  const env: Record<string, string> = {
    EVENTSTORE_URL: o.esdbUrl ?? o.databaseUrl,
    ...(o.esdbUrl ? {} : { EVENTSTORE_SCHEMA: esSchema }),
    DATABASE_URL: rmUrl.toString(),
    REDIS_URL: o.redisUrl,
    QUEUE_KEY: queueKey,
    OPENAI_API_KEY: 'sk-drill',
    OPENAI_BASE_URL: fake.baseURL,
    OPENAI_MAX_RETRIES: '1',
    OPENAI_MAX_429_RETRIES: '1',
    OPENAI_TIMEOUT_MS: String(o.latencyMs + 3_000),
    OPENAI_RATE_LIMIT_PER_MIN: '100000',
    OPENAI_RATE_LIMIT_KEY: `${queueKey}:ratelimit`, // the drill's workers share one budget, as a deployment's do
    IMAGE_FETCH_ALLOW_HOSTS: '127.0.0.1',
    WORKER_CONCURRENCY: String(o.concurrency),
    LEASE_MS: '10000',
    RECOVERY_INTERVAL_MS: '1000',
    SHUTDOWN_GRACE_MS: '5000',
    VERIFY_INTERVAL_MS: '0',
    POSE_ENABLED: 'false',
    LOG_LEVEL: 'warn',
  };
  const procs: Proc[] = [];
  const closers: Array<() => Promise<unknown>> = [];
  const start = async (name: string, command: 'worker' | 'project', extra: Record<string, string> = {}) => {
    const p = await startProc(name, command, { ...env, DATA_DIR: tempDir(`drill-${name}`), ...extra });
    procs.push(p);
    o.log(`drill: ${name} up (${p.base})`);
    return p;
  };
  const users = Array.from({ length: o.users }, () => randomUUID()); // the platform's user ids are UUIDs
  const urls = [images.url('/m.jpg'), images.url('/o.jpg')];

  try {
    // The first projector holds both projections' locks before the second starts, which then stands by.
    const [p1, w1] = await Promise.all([start('projector-1', 'project', { LOG_LEVEL: 'info' }), start('worker-1', 'worker', { WORKER_ID: `drill-${id}-w1` })]);
    await waitFor('projector-1 to hold both projections', async () => PROJECTIONS.every((n) => p1.lines.some((l) => l.msg === 'projection_lock_acquired' && l.projection === n)), 60_000);
    const p2 = await start('projector-2', 'project', { LOG_LEVEL: 'info' });

    const credits = Math.ceil(((o.tasks + 2 * o.throughputTasks) * 1.3) / o.users) + 5;
    for (const u of users) {
      const r = await fetch(`${w1.base}/v1/accounts/user:${u}/grants`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ amount: credits, reason: 'purchase', reference: `drill-${id}-${u}` }),
      });
      if (r.status !== 201) throw new Error(`grant failed: ${r.status} ${await r.text()}`);
    }

    // Outcomes from the shared store itself, following its log (no load on the processes under test): each terminal
    // event with its recorded time, so throughput does not depend on how often this polls.
    const { value: store, close: closeStore } = await openEventStore(loadConfig({ ...env, DATA_DIR: tempDir('drill-reader') }), silentLogger());
    closers.push(closeStore);
    const outcomes = new Map<string, { status: string; at: number }>();
    let after: Position | 'start' = 'start';
    const refresh = async (ids: string[]) => {
      for (;;) {
        const page = await readAfter(store, after, 1000, { eventTypes: Object.keys(TERMINAL_EVENTS) });
        for (const e of page) {
          const session = sessionIdFromStream(e.streamId);
          if (session && !outcomes.has(session)) outcomes.set(session, { status: TERMINAL_EVENTS[e.type]!, at: e.recordedAt.getTime() });
        }
        if (page.length < 1000) break;
        after = page.at(-1)!.position;
      }
      return ids.filter((s) => outcomes.has(s)).length;
    };
    const lastOutcomeAt = (ids: string[]) => Math.max(...ids.map((s) => outcomes.get(s)!.at));
    const push = async (count: number, faulty: boolean) => {
      const sessions: string[] = [];
      let duplicates = 0;
      let invalid = 0;
      for (let i = 0; i < count; i++) {
        const t = buildProducerTask({ userId: users[Math.floor(rand() * users.length)]!, imageUrls: urls });
        sessions.push(t.sessionId);
        const raw = serializeProducerTask(t);
        await redis.lpush(queueKey, raw);
        if (faulty && rand() < 0.1) {
          await redis.lpush(queueKey, raw); // duplicate delivery
          duplicates += 1;
        }
        if (faulty && rand() < 0.03) {
          await redis.lpush(queueKey, JSON.stringify({ ...JSON.parse(raw), session_id: randomUUID(), image_urls: 'nope' }));
          invalid += 1;
        }
      }
      return { sessions, duplicates, invalid };
    };
    const allTerminal = async (label: string, sessions: string[], timeoutMs: number, onProgress?: (done: number) => Promise<void>) => {
      let last = '';
      await waitFor(label, async () => {
        const done = await refresh(sessions);
        // taken: a killed worker's processing list (re-driven when its heartbeat expires) may hold an invalid payload,
        // which no session id tracks; the phase ends when every payload was handled (dead letters counted after it)
        const { waiting, taken } = await queueBacklog(redis, queueKey);
        const line = `drill: ${label}: ${done}/${sessions.length} terminal, ${waiting} waiting in Redis, ${taken} taken`;
        if (line !== last) o.log(line);
        last = line;
        await onProgress?.(done);
        return done === sessions.length && waiting === 0 && taken === 0;
      }, timeoutMs);
    };

    // Throughput: the same number of upstream-bound tasks with 1 worker, then with 3.
    fake.setFallback(() => ({ kind: 'success' }));
    let t = Date.now();
    const cpuBefore = cpuSeconds(w1.child.pid);
    const one = await push(o.throughputTasks, false);
    await allTerminal('throughput, 1 worker', one.sessions, 300_000);
    const oneWorkerSeconds = (lastOutcomeAt(one.sessions) - t) / 1000;
    const cpuPerTask = cpuBefore === null ? null : round(((cpuSeconds(w1.child.pid) ?? cpuBefore) - cpuBefore) / o.throughputTasks);
    const [, w3] = await Promise.all([start('worker-2', 'worker', { WORKER_ID: `drill-${id}-w2` }), start('worker-3', 'worker', { WORKER_ID: `drill-${id}-w3` })]);
    t = Date.now();
    const three = await push(o.throughputTasks, false);
    await allTerminal('throughput, 3 workers', three.sessions, 300_000);
    const threeWorkersSeconds = (lastOutcomeAt(three.sessions) - t) / 1000;
    const throughput = {
      tasks: o.throughputTasks,
      oneWorkerPerS: round(o.throughputTasks / oneWorkerSeconds),
      threeWorkersPerS: round(o.throughputTasks / threeWorkersSeconds),
      ratio: round(oneWorkerSeconds / threeWorkersSeconds),
      workerCpuSecondsPerTask: cpuPerTask,
      loadAverage: round(os.loadavg()[0]!),
    };
    o.log(`drill: throughput ${throughput.oneWorkerPerS}/s with 1 worker, ${throughput.threeWorkersPerS}/s with 3 (${throughput.ratio}x)`);

    // The faulty phase, with a worker and the active projector killed when a third of it is terminal.
    fake.setFallback((n) => faultAt(n));
    const callsBefore = fake.requests.length;
    t = Date.now();
    const faulty = await push(o.tasks, true);
    let killedAt = 0;
    let killedAtTerminal = 0;
    let standbyCaughtUp: Promise<number> | undefined;
    await allTerminal('faulty phase', faulty.sessions, 600_000, async (done) => {
      if (killedAt || done < faulty.sessions.length / 3) return;
      killedAtTerminal = done;
      const [a, b] = await Promise.all([w3.kill(), p1.kill()]);
      killedAt = Math.max(a, b);
      o.log(`drill: SIGKILL worker-3 and projector-1 (active) at ${done}/${faulty.sessions.length} terminal`);
      // Caught up: the standby's checkpoints reach the log's head as it stood at the kill (while tasks keep coming).
      const head = (await store.headPosition())!;
      standbyCaughtUp = waitFor('the standby to catch up with the log as it stood at the kill', async () => {
        const r = await fetch(`${p2.base}/v1/projections`);
        const body = (await r.json()) as { projections: { checkpoint: string | null }[] };
        const ok = body.projections.length > 0 && body.projections.every((p) => p.checkpoint !== null && comparePositions(parsePosition(p.checkpoint), head) >= 0);
        return ok && Date.now() - killedAt;
      }, 120_000);
      standbyCaughtUp.catch(() => undefined); // awaited below; a failure is reported there
    });
    const faultySeconds = (lastOutcomeAt(faulty.sessions) - t) / 1000;
    if (!killedAt) throw new Error('the faulty phase ended before the kill point');
    // Settled: no credit held by any account.
    await waitFor('every hold settled', async () => {
      for (const u of users) {
        const a = (await (await fetch(`${w1.base}/v1/accounts/user:${u}`)).json()) as { open_holds: unknown[] };
        if (a.open_holds.length) return false;
      }
      return true;
    }, 120_000);

    // Takeover: when the standby acquired each projection's lock after the kill, and when it had caught up.
    const acquired: Record<string, number> = {};
    await waitFor('the standby projector to take over', async () => {
      for (const n of PROJECTIONS) {
        const l = p2.lines.find((x) => x.msg === 'projection_lock_acquired' && x.projection === n && x.at >= killedAt - 1000);
        if (l) acquired[n] = Math.max(0, l.at - killedAt);
      }
      return PROJECTIONS.every((n) => n in acquired);
    }, 60_000);
    const caughtUpMs = await standbyCaughtUp!;
    await waitFor('projections caught up on the standby', async () => {
      const r = await fetch(`${p2.base}/v1/projections`);
      const body = (await r.json()) as { projections: { lag: number }[] };
      return r.ok && body.projections.length > 0 && body.projections.every((p) => p.lag === 0);
    }, 120_000);

    const accounts: DrillReport['accounts'] = [];
    for (const u of users) {
      const a = (await (await fetch(`${w1.base}/v1/accounts/user:${u}`)).json()) as DrillReport['accounts'][number] & { open_holds: unknown[] };
      accounts.push({ account: a.account, granted: a.granted, deducted: a.deducted, captured: a.captured, refunded: a.refunded, balance: a.balance, open: a.open_holds.length, completed: 0 });
    }
    const everySession = [...one.sessions, ...three.sessions, ...faulty.sessions];
    for (const s of everySession) {
      const r = (await (await fetch(`${w1.base}/v1/generations/${s}`)).json()) as { account: string; ledger_status: string };
      if (r.ledger_status !== outcomes.get(s)?.status) throw new Error(`${s}: the ledger says ${r.ledger_status}, its log ${outcomes.get(s)?.status}`);
      if (r.ledger_status === 'completed') accounts.find((a) => a.account === r.account)!.completed += 1;
    }
    const byStatus: Record<string, number> = {};
    for (const s of faulty.sessions) byStatus[outcomes.get(s)!.status] = (byStatus[outcomes.get(s)!.status] ?? 0) + 1;
    const deadLetters = await redis.llen(`${queueKey}:dead`);
    const events = o.esdbUrl ? null : Number((await admin.query(`SELECT count(*) AS n FROM ${esSchema}.events`)).rows[0].n);

    for (const p of procs) await p.stop();
    await store.close();
    o.log('drill: processes stopped; wearon verify --quiescent');
    const verify = await run(process.execPath, [path.join(ROOT, 'bin', 'wearon.mjs'), 'verify', '--quiescent'], {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? os.tmpdir(), ...env, DATA_DIR: tempDir('drill-verify') },
    });
    return {
      store: o.esdbUrl ? 'esdb' : 'postgres',
      workers: 3,
      projectors: 2,
      concurrencyPerWorker: o.concurrency,
      upstreamLatencyMs: o.latencyMs,
      throughput,
      faulty: {
        pushed: faulty.sessions.length,
        duplicates: faulty.duplicates,
        invalid: faulty.invalid,
        byStatus,
        deadLetters,
        upstreamCalls: fake.requests.length - callsBefore,
        seconds: round(faultySeconds),
        killedAtTerminal,
      },
      takeover: { projections: acquired, maxMs: Math.max(...Object.values(acquired)), caughtUpMs },
      accounts,
      events,
      verify: { exitCode: verify.code, output: verify.out },
      seconds: Math.round((Date.now() - started) / 1000),
    };
  } finally {
    for (const p of procs) await p.stop().catch(() => undefined);
    for (const c of closers) await c().catch(() => undefined);
    await deleteKeys(redis, `drill:${id}:`).catch(() => undefined);
    redis.disconnect();
    await fake.close();
    await images.close();
    await admin.query(`DROP SCHEMA IF EXISTS ${rmSchema} CASCADE`).catch(() => undefined);
    await admin.query(`DROP SCHEMA IF EXISTS ${esSchema} CASCADE`).catch(() => undefined);
    await admin.end();
  }
}

/** CPU seconds (user + system) a process has used, from /proc (Linux); null elsewhere. */
function cpuSeconds(pid: number | undefined): number | null {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return null;
  }
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

/** What must hold for the drill to pass (the script's exit code, and the e2e test). */
export function drillProblems(r: DrillReport): string[] {
  const problems: string[] = [];
  const terminal = (r.faulty.byStatus.completed ?? 0) + (r.faulty.byStatus.failed ?? 0) + (r.faulty.byStatus.rejected ?? 0);
  if (terminal !== r.faulty.pushed) problems.push(`${r.faulty.pushed - terminal} task(s) not terminal`);
  if (r.faulty.deadLetters !== r.faulty.invalid) problems.push(`${r.faulty.deadLetters} dead letters for ${r.faulty.invalid} invalid payloads`);
  if (r.verify.exitCode !== 0) problems.push(`wearon verify exited ${r.verify.exitCode}`);
  for (const a of r.accounts) {
    if (a.captured !== a.completed || a.deducted !== a.captured + a.refunded || a.open !== 0 || a.balance !== a.granted - a.captured) {
      problems.push(`${a.account}: credits do not add up ${JSON.stringify(a)}`);
    }
  }
  return problems;
}

/** The report's figures as a table. */
export function drillTable(r: DrillReport): string {
  const rows: Array<[string, string]> = [
    ['store', `${r.store} (${r.events ?? '?'} events)`],
    ['processes', `${r.workers} workers x ${r.concurrencyPerWorker}, ${r.projectors} projectors`],
    ['upstream latency', `${r.upstreamLatencyMs} ms`],
    ['throughput, 1 worker', `${r.throughput.oneWorkerPerS} tasks/s`],
    ['throughput, 3 workers', `${r.throughput.threeWorkersPerS} tasks/s (${r.throughput.ratio}x)`],
    ['worker CPU per task', `${r.throughput.workerCpuSecondsPerTask ?? '?'} s (load average ${r.throughput.loadAverage} on ${os.cpus().length} cores)`],
    ['faulty phase', `${r.faulty.pushed} tasks (+${r.faulty.duplicates} duplicates, ${r.faulty.invalid} invalid) in ${r.faulty.seconds} s`],
    ['outcomes', Object.entries(r.faulty.byStatus).map(([k, v]) => `${k} ${v}`).join(', ')],
    ['dead letters', String(r.faulty.deadLetters)],
    ['upstream calls', String(r.faulty.upstreamCalls)],
    ['killed', `worker-3 and projector-1 at ${r.faulty.killedAtTerminal}/${r.faulty.pushed} terminal`],
    ['standby takeover', `${Object.entries(r.takeover.projections).map(([k, v]) => `${k} ${v} ms`).join(', ')}; caught up with the log at the kill after ${r.takeover.caughtUpMs} ms`],
    ['verify --quiescent', r.verify.exitCode === 0 ? 'clean' : `exit ${r.verify.exitCode}`],
    ['duration', `${r.seconds} s`],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n');
}

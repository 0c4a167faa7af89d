// The crash scenario (issue: "Crash test"): the real service process with Redis intake and the OpenAI stand-in,
// hundreds of producer tasks with upstream faults mixed in, SIGKILL at random moments, restarts on the same ledger,
// then quiescence and the ledger's own checks. Used by tests/e2e/crash.e2e.test.ts and `npm run crash-test`.
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { buildProducerTask, serializeProducerTask } from '../../src/contract.ts';
import { startFakeOpenAI, type FakeStep } from './fakeOpenAI.ts';
import { deleteKeys, queueBacklog } from './services.ts';
import { startImageServer } from './imageServer.ts';
import { noisyJpeg } from './images.ts';
import { freePort, projectionsCaughtUp, ROOT, startService, tempDir, waitFor } from './stack.ts';

const run = promisify(execFile);

export interface CrashOptions {
  redisUrl: string;
  tasks: number;
  kills: number;
  users: number;
  creditsPerUser: number;
  seed?: number;
  log?: (line: string) => void;
}

export interface CrashReport {
  pushed: number;
  duplicates: number;
  invalid: number;
  kills: number;
  byStatus: Record<string, number>;
  deadLetters: number;
  verifyExitCode: number;
  verifyOutput: string;
  accounts: Array<{ account: string; granted: number; deducted: number; captured: number; refunded: number; balance: number; open: number; completed: number }>;
  seconds: number;
}

/** Small deterministic PRNG so a failing run can be repeated with its seed. */
export function prng(seed: number) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
}

export async function runCrashScenario(o: CrashOptions): Promise<CrashReport> {
  const started = Date.now();
  const log = o.log ?? (() => {});
  const rand = prng(o.seed ?? Date.now());
  const fake = await startFakeOpenAI();
  // Faults by call index: 5xx (retried in the adapter), moderation, 429 (RetryScheduled then retried), slow answers.
  fake.setFallback((n): FakeStep => {
    if (n % 11 === 3) return { kind: 'server_error' };
    if (n % 23 === 5) return { kind: 'moderation' };
    if (n % 31 === 7) return { kind: 'rate_limit', retryAfter: '1' };
    if (n % 7 === 2) return { kind: 'slow_headers', delayMs: 400 };
    return { kind: 'success' };
  });
  const images = await startImageServer();
  images.serve('/m.jpg', await noisyJpeg(640, 800, 3), 'image/jpeg');
  images.serve('/o.jpg', await noisyJpeg(400, 400, 4), 'image/jpeg');
  const redis = new Redis(o.redisUrl);
  const queueKey = `crash:${randomUUID().slice(0, 8)}:tasks`;
  const dataDir = tempDir('crash');
  const port = await freePort();
  const env = {
    REDIS_URL: o.redisUrl,
    QUEUE_KEY: queueKey,
    OPENAI_API_KEY: 'sk-crash',
    OPENAI_BASE_URL: fake.baseURL,
    OPENAI_MAX_RETRIES: '1',
    IMAGE_FETCH_ALLOW_HOSTS: '127.0.0.1',
    // A stable worker id, as a container keeps across restarts: its processing list is reclaimed at start.
    WORKER_ID: 'crash-worker',
    WORKER_CONCURRENCY: '8',
    LEASE_MS: '6000',
    RECOVERY_INTERVAL_MS: '300',
    SHUTDOWN_GRACE_MS: '2000',
    LOG_LEVEL: 'warn',
  };
  let service = await startService(env, { dataDir, port });
  const base = `http://127.0.0.1:${port}`;
  const users = Array.from({ length: o.users }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`); // platform ids are UUIDs
  try {
    for (const u of users) {
      const r = await fetch(`${base}/v1/accounts/user:${u}/grants`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ amount: o.creditsPerUser, reason: 'purchase', reference: `crash-${u}` }),
      });
      if (r.status !== 201) throw new Error(`grant failed: ${r.status}`);
    }
    const urls = [images.url('/m.jpg'), images.url('/o.jpg')];
    const sessions: string[] = [];
    let duplicates = 0;
    let invalid = 0;
    const push = async (count: number) => {
      for (let i = 0; i < count; i++) {
        const t = buildProducerTask({ userId: users[Math.floor(rand() * users.length)]!, imageUrls: urls });
        sessions.push(t.sessionId);
        const raw = serializeProducerTask(t);
        await redis.lpush(queueKey, raw);
        if (rand() < 0.1) {
          await redis.lpush(queueKey, raw); // duplicate delivery
          duplicates += 1;
        }
        if (rand() < 0.03) {
          await redis.lpush(queueKey, JSON.stringify({ ...JSON.parse(raw), session_id: randomUUID(), image_urls: 'nope' }));
          invalid += 1;
        }
      }
    };

    const perRound = Math.ceil(o.tasks / (o.kills + 1));
    for (let k = 0; k < o.kills; k++) {
      await push(perRound);
      await new Promise((r) => setTimeout(r, 200 + rand() * 1500));
      log(`crash: SIGKILL ${k + 1}/${o.kills} with ${await redis.llen(queueKey)} waiting`);
      service.child.kill('SIGKILL');
      await new Promise((r) => service.child.once('exit', r));
      await push(Math.floor(perRound / 4)); // the producer keeps pushing while the worker is down
      service = await startService(env, { dataDir, port });
    }
    await push(Math.max(0, o.tasks - sessions.length));
    log(`crash: ${sessions.length} tasks pushed (${duplicates} duplicates, ${invalid} invalid); waiting for quiescence`);

    const statusOf = async (id: string) => {
      const r = await fetch(`${base}/v1/generations/${id}`);
      return r.status === 200 ? ((await r.json()) as { ledger_status: string }).ledger_status : 'missing';
    };
    const byStatus: Record<string, number> = {};
    let lastProgress = '';
    await waitFor(
      'every task terminal and every hold settled',
      async () => {
        const statuses = await Promise.all(sessions.map(statusOf));
        const open = statuses.filter((s) => !['completed', 'failed', 'rejected'].includes(s)).length;
        // taken: an invalid payload is dead-lettered after the queue looks empty, from the worker's processing list
        const { waiting, taken } = await queueBacklog(redis, queueKey);
        const progress = `crash: ${sessions.length - open}/${sessions.length} terminal, ${waiting} waiting in Redis, ${taken} taken`;
        if (progress !== lastProgress) log(progress);
        lastProgress = progress;
        if (open > 0 || waiting > 0 || taken > 0) return false;
        for (const u of users) {
          const a = (await (await fetch(`${base}/v1/accounts/user:${u}`)).json()) as { open_holds: unknown[] };
          if (a.open_holds.length) return false;
        }
        for (const s of statuses) byStatus[s] = (byStatus[s] ?? 0) + 1;
        return true;
      },
      180_000,
    );
    const accounts = [];
    for (const u of users) {
      const a = (await (await fetch(`${base}/v1/accounts/user:${u}`)).json()) as CrashReport['accounts'][number] & { open_holds: unknown[] };
      accounts.push({ account: a.account, granted: a.granted, deducted: a.deducted, captured: a.captured, refunded: a.refunded, balance: a.balance, open: a.open_holds.length, completed: 0 });
    }
    for (const id of sessions) {
      const r = (await (await fetch(`${base}/v1/generations/${id}`)).json()) as { ledger_status: string; account: string };
      if (r.ledger_status === 'completed') accounts.find((a) => a.account === r.account)!.completed += 1;
    }
    const deadLetters = await redis.llen(`${queueKey}:dead`);
    await projectionsCaughtUp(base);
    await service.stop();
    const verify = await run(process.execPath, [path.join(ROOT, 'bin', 'wearon.mjs'), 'verify', '--quiescent'], {
      cwd: ROOT,
      env: { ...process.env, DATA_DIR: dataDir },
    }).then(
      (r) => ({ code: 0, out: r.stdout }),
      (e: { code: number; stdout: string }) => ({ code: e.code, out: e.stdout }),
    );
    return {
      pushed: sessions.length,
      duplicates,
      invalid,
      kills: o.kills,
      byStatus,
      deadLetters,
      verifyExitCode: verify.code,
      verifyOutput: verify.out,
      accounts,
      seconds: Math.round((Date.now() - started) / 1000),
    };
  } finally {
    await service.stop();
    await deleteKeys(redis, queueKey);
    redis.disconnect();
    await fake.close();
    await images.close();
  }
}

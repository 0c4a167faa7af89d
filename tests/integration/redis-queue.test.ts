// The Redis intake against a real Redis (db 15), every test under its own key prefix.
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RedisTaskQueue, createRedis, queueKeys } from '../../src/adapters/queue/redisTaskQueue.ts';
import { silentLogger } from '../../src/logger.ts';
import { REDIS_URL, redisAvailable } from '../support/services.ts';
import { scaled, waitFor } from '../support/deadlines.ts';

const ok = await redisAvailable();
const logger = silentLogger();

describe.skipIf(!ok)('RedisTaskQueue (real Redis)', () => {
  let admin: Redis;
  let prefix: string;
  const open: RedisTaskQueue[] = [];

  beforeAll(() => {
    admin = new Redis(REDIS_URL);
  });
  afterAll(async () => {
    await admin.quit();
  });
  afterEach(async () => {
    for (const q of open.splice(0)) await q.close();
    const keys = await admin.keys(`${prefix}*`);
    if (keys.length) await admin.del(...keys);
  });

  /** A fresh queue key per test; workers in one test share it. */
  const newQueueKey = () => {
    prefix = `test:${randomUUID()}:`;
    return `${prefix}wearon:tasks:generation`;
  };
  const worker = (queueKey: string, workerId: string, heartbeatTtlMs = 30_000) => {
    const q = RedisTaskQueue.connect(REDIS_URL, { workerId, logger, queueKey, heartbeatTtlMs });
    open.push(q);
    return q;
  };
  /** A worker whose connections the test can cut without close(): a crash as far as Redis can tell. */
  const crashable = (queueKey: string, workerId: string, heartbeatTtlMs: number) => {
    const redis = createRedis(REDIS_URL, logger);
    const blocking = createRedis(REDIS_URL, logger, { blocking: true });
    const q = new RedisTaskQueue({ redis, blocking, workerId, logger, queueKey, heartbeatTtlMs, autoHeartbeat: false });
    return { q, crash: () => (redis.disconnect(), blocking.disconnect()) };
  };
  const waitForExpiry = (key: string) => waitFor(`${key} to expire`, async () => (await admin.exists(key)) === 0, 10_000);

  it('delivers in FIFO order (producer LPUSH, consumer takes from the right)', async () => {
    const qk = newQueueKey();
    const q = worker(qk, 'w1');
    for (const raw of ['a', 'b', 'c']) await admin.lpush(qk, raw); // exactly the producer's command
    const got = [await q.take(1000), await q.take(1000), await q.take(1000)].map((t) => t?.raw);
    expect(got).toEqual(['a', 'b', 'c']);
    expect(await q.take(0)).toBeNull();
  });

  it('keeps a taken task in the worker processing list until ack', async () => {
    const qk = newQueueKey();
    const q = worker(qk, 'w1');
    await q.push('{"task":1}');
    const t = await q.take(1000);
    expect(t?.raw).toBe('{"task":1}');
    expect(await admin.lrange(queueKeys(qk, 'w1').processing, 0, -1)).toEqual(['{"task":1}']);
    expect(await admin.exists(queueKeys(qk, 'w1').heartbeat)).toBe(1);
    expect(await q.depth()).toEqual({ waiting: 0, processing: 1, deadLetter: 0 });
    await q.ack(t!);
    expect(await admin.llen(queueKeys(qk, 'w1').processing)).toBe(0);
    expect(await q.depth()).toEqual({ waiting: 0, processing: 0, deadLetter: 0 });
  });

  it('returns null when nothing arrives within the timeout, and a task pushed while blocked', async () => {
    const qk = newQueueKey();
    const q = worker(qk, 'w1');
    expect(await q.take(200)).toBeNull();
    const pending = q.take(5_000);
    await admin.lpush(qk, 'late');
    expect((await pending)?.raw).toBe('late');
  });

  it('re-drives the list of a crashed worker once its heartbeat expired, and not before', async () => {
    const qk = newQueueKey();
    const a = crashable(qk, 'wa', 600);
    const b = worker(qk, 'wb');
    for (const raw of ['t1', 't2', 't3']) await b.push(raw);
    expect((await a.q.take(1000))?.raw).toBe('t1');
    expect((await a.q.take(1000))?.raw).toBe('t2');
    a.crash(); // before ack

    expect(await b.redriveOrphans()).toBe(0); // heartbeat still alive
    expect(await admin.lrange(queueKeys(qk, 'wa').processing, 0, -1)).toEqual(['t2', 't1']);
    expect(await b.depth()).toEqual({ waiting: 1, processing: 2, deadLetter: 0 });

    await waitForExpiry(queueKeys(qk, 'wa').heartbeat);
    expect(await b.redriveOrphans()).toBe(2);
    expect(await admin.exists(queueKeys(qk, 'wa').processing)).toBe(0);
    // the re-driven tasks are taken next, in their original order
    const order = [await b.take(1000), await b.take(1000), await b.take(1000)].map((t) => t?.raw);
    expect(order).toEqual(['t1', 't2', 't3']);
    expect(await b.redriveOrphans()).toBe(0);
  });

  it('keeps the heartbeat of a live worker alive on its own, so its list is never re-driven', async () => {
    const qk = newQueueKey();
    const ttl = scaled(600);
    const live = worker(qk, 'live', ttl);
    const other = worker(qk, 'other');
    await live.push('busy');
    expect((await live.take(1000))?.raw).toBe('busy');
    // Observed, not slept: the worker's own timer (no explicit heartbeat call) refreshed the key three times and two
    // TTLs have passed, so without those refreshes the key would be gone.
    const heartbeat = queueKeys(qk, 'live').heartbeat;
    const since = Date.now();
    let last = Number.POSITIVE_INFINITY;
    let refreshes = 0;
    await waitFor('the worker to keep its heartbeat alive past its TTL', async () => {
      const left = await admin.pttl(heartbeat);
      if (left > last) refreshes++;
      last = left;
      return refreshes >= 3 && Date.now() - since > 2 * ttl;
    }, 15_000);
    expect(await other.redriveOrphans()).toBe(0);
    expect(await admin.lrange(queueKeys(qk, 'live').processing, 0, -1)).toEqual(['busy']);
  });

  it('a restarted worker with the same id reclaims its own strays', async () => {
    const qk = newQueueKey();
    const first = crashable(qk, 'same', 30_000);
    await admin.lpush(qk, 'x');
    expect((await first.q.take(1000))?.raw).toBe('x');
    first.crash();
    const again = worker(qk, 'same');
    await again.heartbeat(); // its heartbeat is alive, so only the stray rule can return the task
    expect(await again.redriveOrphans()).toBe(1);
    expect((await again.take(1000))?.raw).toBe('x');
    expect(await again.redriveOrphans()).toBe(0); // handed out now: not a stray
  });

  it('dead-letters atomically with reason, raw, worker id and time', async () => {
    const qk = newQueueKey();
    const q = worker(qk, 'w-dead');
    await q.push('{not json');
    const t = await q.take(1000);
    await q.deadLetter(t!, 'invalid JSON: Unexpected token');
    expect(await admin.llen(queueKeys(qk, 'w-dead').processing)).toBe(0);
    const [record] = await admin.lrange(`${qk}:dead`, 0, -1);
    const parsed = JSON.parse(record!);
    expect(Object.keys(parsed).sort()).toEqual(['failed_at', 'raw', 'raw_bytes', 'raw_sha256', 'reason', 'worker_id']);
    expect(parsed).toMatchObject({ reason: 'invalid JSON: Unexpected token', raw: '{not json', raw_bytes: 9, worker_id: 'w-dead' });
    expect(new Date(parsed.failed_at).toISOString()).toBe(parsed.failed_at);
    expect(await q.deadLetters()).toEqual([parsed]);
    expect(await q.depth()).toEqual({ waiting: 0, processing: 0, deadLetter: 1 });
  });

  it('lists dead letters newest first with stable ids and re-drives one, atomically and once', async () => {
    const qk = newQueueKey();
    const q = worker(qk, 'w-redrive');
    for (const raw of ['{"n":1}', '{"n":2}', '{"n":3}']) {
      await q.push(raw);
      await q.deadLetter((await q.take(1000))!, `refused ${raw}`);
    }
    await admin.lpush(`${qk}:dead`, 'pushed by hand'); // not a record: listed, never re-driven
    const page = await q.listDeadLetters({ offset: 0, limit: 3 });
    expect(page.total).toBe(4);
    expect(page.items.map((d) => d.raw)).toEqual(['pushed by hand', '{"n":3}', '{"n":2}']);
    expect(page.items[0]!.reason).toMatch(/not a dead-letter record/);
    expect(page.items[1]).toMatchObject({ reason: 'refused {"n":3}', worker_id: 'w-redrive' });
    expect((await q.listDeadLetters({ offset: 3, limit: 3 })).items.map((d) => d.raw)).toEqual(['{"n":1}']);
    expect((await q.listDeadLetters({ offset: 0, limit: 4 })).items.map((d) => d.id)).toEqual([...page.items.map((d) => d.id), expect.any(String)]);

    const two = page.items[2]!;
    // Two operators clicking at once: exactly one re-drive happens.
    const results = await Promise.all([q.redriveDeadLetter(two.id), q.redriveDeadLetter(two.id)]);
    expect(results.sort()).toEqual([false, true]);
    expect(await admin.lrange(qk, 0, -1)).toEqual(['{"n":2}']); // the raw text, as the producer pushed it
    expect((await q.listDeadLetters({ offset: 0, limit: 10 })).items.map((d) => d.raw)).toEqual(['pushed by hand', '{"n":3}', '{"n":1}']);
    expect((await q.take(1000))?.raw).toBe('{"n":2}');
    await expect(q.redriveDeadLetter(page.items[0]!.id)).rejects.toThrow(/no raw task text/);
    // a record whose payload was cut at dead-lettering (retention limit): listed as truncated, never re-driven
    await admin.lpush(`${qk}:dead`, JSON.stringify({ reason: 'too big', raw: '{"session_id":"s', raw_truncated: true, worker_id: 'w', failed_at: new Date().toISOString() }));
    const [cut] = (await q.listDeadLetters({ offset: 0, limit: 1 })).items;
    expect(cut).toMatchObject({ truncated: true, reason: 'too big' });
    await expect(q.redriveDeadLetter(cut!.id)).rejects.toThrow(/truncated/);
    expect(await admin.llen(`${qk}:dead`)).toBe(4);
    expect(await admin.llen(qk)).toBe(0);
  });

  it('never hands the same task to two concurrent takers (2 workers x 5 loops)', async () => {
    const qk = newQueueKey();
    const workers = [worker(qk, 'c1'), worker(qk, 'c2')];
    const total = 300;
    const taken: string[] = [];
    const loops = workers.flatMap((w) =>
      Array.from({ length: 5 }, async () => {
        for (;;) {
          const t = await w.take(300);
          if (!t) return;
          taken.push(t.raw);
          await w.ack(t);
        }
      }),
    );
    const pipeline = admin.pipeline();
    for (let i = 0; i < total; i++) pipeline.lpush(qk, JSON.stringify({ i }));
    await pipeline.exec();
    await Promise.all(loops);
    expect(taken).toHaveLength(total);
    expect(new Set(taken).size).toBe(total);
    expect(await workers[0]!.depth()).toEqual({ waiting: 0, processing: 0, deadLetter: 0 });
  });

  it('counts waiting, processing across workers and dead letters', async () => {
    const qk = newQueueKey();
    const [a, b] = [worker(qk, 'd1'), worker(qk, 'd2')];
    for (let i = 0; i < 6; i++) await a.push(`t${i}`);
    await a.take(1000);
    await b.take(1000);
    const dead = await b.take(1000);
    await b.deadLetter(dead!, 'invalid payload');
    expect(await a.depth()).toEqual({ waiting: 3, processing: 2, deadLetter: 1 });
  });

  it('close() cuts a pending take and returns unacked tasks to the queue', async () => {
    const qk = newQueueKey();
    const q = RedisTaskQueue.connect(REDIS_URL, { workerId: 'closing', logger, queueKey: qk });
    await q.push('held');
    expect((await q.take(1000))?.raw).toBe('held');
    const pending = q.take(20_000);
    await q.close();
    expect(await pending).toBeNull();
    expect(await admin.lrange(qk, 0, -1)).toEqual(['held']);
    expect(await admin.exists(queueKeys(qk, 'closing').heartbeat)).toBe(0);
    expect(await admin.exists(queueKeys(qk, 'closing').processing)).toBe(0);
  });
});

// The shared upstream budget against a real Redis (db 15): several limiter instances (workers) never exceed the
// budget in any window, checked on the recorded grant times (Redis server clock), not on speed.
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedis } from '../../src/adapters/queue/redisTaskQueue.ts';
import { RedisRateLimiter } from '../../src/adapters/ratelimit/redisRateLimiter.ts';
import { createRateLimiter } from '../../src/compose/pipeline.ts';
import { loadConfig } from '../../src/config.ts';
import { silentLogger } from '../../src/logger.ts';
import { REDIS_URL, redisAvailable } from '../support/services.ts';

const ok = await redisAvailable();
const logger = silentLogger();

/** Most grants inside any window of `windowMs` (half-open: a grant exactly windowMs later is in the next window). */
function maxInAnyWindow(times: number[], windowMs: number): number {
  const t = [...times].sort((a, b) => a - b);
  let best = 0;
  let lo = 0;
  for (let hi = 0; hi < t.length; hi++) {
    while (t[hi]! - t[lo]! >= windowMs) lo++;
    best = Math.max(best, hi - lo + 1);
  }
  return best;
}

describe.skipIf(!ok)('RedisRateLimiter (real Redis)', () => {
  const conns: Redis[] = [];
  const connect = () => {
    const r = createRedis(REDIS_URL, logger);
    conns.push(r);
    return r;
  };
  let admin: Redis;
  beforeAll(() => {
    admin = connect();
  });
  afterAll(async () => {
    for (const c of conns) await c.quit();
  });

  it('4 workers x 2 concurrent callers never exceed 5 grants per 1000 ms window', async () => {
    const key = `test:${randomUUID()}:ratelimit`;
    const limit = 5;
    const windowMs = 1000;
    const workers = Array.from({ length: 4 }, () => new RedisRateLimiter({ redis: connect(), logger, limit, windowMs, key }));
    const grants: number[] = [];
    const waits: number[] = [];
    await Promise.all(
      workers.flatMap((w) =>
        [0, 1].map(async () => {
          for (let i = 0; i < 3; i++) {
            const g = await w.acquireSlot();
            grants.push(g.grantedAtMs);
            waits.push(g.waitedMs);
          }
        }),
      ),
    );
    expect(grants).toHaveLength(24);
    expect(maxInAnyWindow(grants, windowMs)).toBe(limit);
    // 24 grants at 5 per window: the budget forced someone to wait
    expect(Math.max(...waits)).toBeGreaterThan(0);
    await admin.del(key);
  });

  it('acquire honours an AbortSignal while waiting, and a pre-aborted signal takes no slot', async () => {
    const key = `test:${randomUUID()}:ratelimit`;
    const limiter = new RedisRateLimiter({ redis: connect(), logger, limit: 1, windowMs: 60_000, key });
    expect(await limiter.acquire()).toBeGreaterThanOrEqual(0);
    const ac = new AbortController();
    const pending = limiter.acquire(ac.signal);
    setTimeout(() => ac.abort(), 50);
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
    await expect(limiter.acquire(AbortSignal.abort())).rejects.toMatchObject({ name: 'AbortError' });
    expect(await admin.zcard(key)).toBe(1);
    await admin.del(key);
  });

  it('OPENAI_RATE_LIMIT_KEY names the budget: a spent budget under another key holds nobody else up', async () => {
    // A bench or a staging worker on the same Redis spends its own budget; it once starved the suite's services, which
    // all used the one default key (a run waited a minute for a slot).
    const [spent, own] = [`test:${randomUUID()}:ratelimit`, `test:${randomUUID()}:ratelimit`];
    const limiterFor = (key: string) =>
      createRateLimiter(loadConfig({ OPENAI_RATE_LIMIT_PER_MIN: '1', OPENAI_RATE_LIMIT_KEY: key }), logger, connect());
    expect(loadConfig({}).OPENAI_RATE_LIMIT_KEY).toBe('wearon:ratelimit:openai');
    expect(await limiterFor(spent).acquire()).toBeGreaterThanOrEqual(0);
    const waiting = new AbortController();
    const blocked = limiterFor(spent).acquire(waiting.signal); // the budget under `spent` is used up for a minute
    expect(await limiterFor(own).acquire()).toBeGreaterThanOrEqual(0); // granted without waiting for `spent`
    expect(await admin.zcard(own)).toBe(1);
    waiting.abort();
    await expect(blocked).rejects.toMatchObject({ name: 'AbortError' });
    await admin.del(spent, own);
  });

  it('falls back to the in-process budget when Redis is unreachable', async () => {
    const dead = createRedis('redis://127.0.0.1:1/15', logger, { commandTimeoutMs: 300 });
    dead.disconnect(); // no reconnect attempts: every command fails at once
    const limiter = new RedisRateLimiter({ redis: dead, logger, limit: 2, windowMs: 60_000, key: 'unused' });
    expect(await limiter.acquire()).toBeGreaterThanOrEqual(0);
    expect(await limiter.acquire()).toBeGreaterThanOrEqual(0);
    const ac = new AbortController();
    const third = limiter.acquire(ac.signal);
    setTimeout(() => ac.abort(), 50);
    await expect(third).rejects.toMatchObject({ name: 'AbortError' }); // the local budget of 2 is spent
  });
});

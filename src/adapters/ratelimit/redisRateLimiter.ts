// The global upstream request budget (OPENAI_RATE_LIMIT_PER_MIN) shared by every worker through Redis: a sliding-window
// log in one sorted set, checked and appended by a Lua script that reads the Redis server clock (one clock for all
// workers, no skew). Guarantee: at most `limit` grants in any window of `windowMs` of server time.
// If Redis fails, this process falls back to an in-process limiter with the full budget (logged): generations keep
// going, bounded per process, and an upstream 429 is still handled by the saga.
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from '../../logger.ts';
import { MemoryRateLimiter, SlotRateLimiter, abortableSleep, type RateLimitGrant } from './memoryRateLimiter.ts';

// KEYS[1] = zset of grants (score = server ms); ARGV = limit, windowMs, unique member suffix.
// Returns {1, now} when granted, {0, msUntilASlotFrees, now} otherwise.
const ACQUIRE_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, now .. ':' .. ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return {1, now}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, tonumber(oldest[2]) + window - now, now}`;

export interface RedisRateLimiterOptions {
  redis: Redis;
  logger: Logger;
  limit: number;
  windowMs?: number;
  /** the sorted set every worker sharing the budget uses (OPENAI_RATE_LIMIT_KEY) */
  key: string;
  /** upper bound of one sleep between attempts, so a freed slot (budget change, key deleted) is noticed */
  maxSleepMs?: number;
}

export class RedisRateLimiter extends SlotRateLimiter {
  readonly limit: number;
  readonly windowMs: number;
  readonly key: string;
  private readonly redis: Redis;
  private readonly logger: Logger;
  private readonly maxSleepMs: number;
  private readonly fallback: MemoryRateLimiter;
  private lastWarn = 0;

  constructor(o: RedisRateLimiterOptions) {
    super();
    if (!Number.isInteger(o.limit) || o.limit < 1) throw new RangeError('limit must be a positive integer');
    this.redis = o.redis;
    this.logger = o.logger;
    this.limit = o.limit;
    this.windowMs = o.windowMs ?? 60_000;
    this.key = o.key;
    this.maxSleepMs = o.maxSleepMs ?? 5_000;
    this.fallback = new MemoryRateLimiter(this.limit, this.windowMs);
  }

  async acquireSlot(signal?: AbortSignal): Promise<RateLimitGrant> {
    const start = performance.now();
    for (;;) {
      signal?.throwIfAborted();
      let reply: number[];
      try {
        const member = randomBytes(8).toString('hex');
        reply = (await this.redis.eval(ACQUIRE_LUA, 1, this.key, this.limit, this.windowMs, member)) as number[];
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        this.warnFallback(err as Error);
        const g = await this.fallback.acquireSlot(signal);
        return { waitedMs: Math.round(performance.now() - start), grantedAtMs: g.grantedAtMs };
      }
      if (reply[0] === 1) return { waitedMs: Math.round(performance.now() - start), grantedAtMs: Number(reply[1]) };
      // Jitter spreads the waiters of several workers that all see the same oldest grant.
      const wait = Math.min(this.maxSleepMs, Number(reply[1]) + Math.floor(Math.random() * 25));
      await abortableSleep(Math.max(1, wait), signal);
    }
  }

  private warnFallback(err: Error): void {
    const now = Date.now();
    if (now - this.lastWarn < 30_000) return;
    this.lastWarn = now;
    this.logger.warn({ err: { message: err.message } }, 'rate limiter: Redis unavailable, using the in-process budget');
  }
}

import { describe, expect, it } from 'vitest';
import { MemoryRateLimiter } from '../../src/adapters/ratelimit/memoryRateLimiter.ts';

describe('MemoryRateLimiter', () => {
  it('never grants more than `limit` in any window (recorded grant times)', async () => {
    const limit = 3;
    const windowMs = 200;
    const limiter = new MemoryRateLimiter(limit, windowMs);
    const grants: number[] = [];
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let i = 0; i < 3; i++) grants.push((await limiter.acquireSlot()).grantedAtMs);
      }),
    );
    grants.sort((a, b) => a - b);
    expect(grants).toHaveLength(12);
    // any limit+1 consecutive grants span at least one window (1 µs slack for float rounding of epoch ms)
    for (let k = 0; k + limit < grants.length; k++) expect(grants[k + limit]! - grants[k]!).toBeGreaterThanOrEqual(windowMs - 0.001);
  });

  it('rejects with AbortError while waiting and when aborted before', async () => {
    const limiter = new MemoryRateLimiter(1, 60_000);
    await limiter.acquire();
    const ac = new AbortController();
    const pending = limiter.acquire(ac.signal);
    setTimeout(() => ac.abort(), 20);
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
    await expect(limiter.acquire(AbortSignal.abort())).rejects.toMatchObject({ name: 'AbortError' });
  });

  it('refuses a non-positive budget', () => {
    expect(() => new MemoryRateLimiter(0)).toThrow(RangeError);
  });
});

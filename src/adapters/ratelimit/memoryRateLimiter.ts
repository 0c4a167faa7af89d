// In-process request budget (no Redis): a sliding-window log with the same semantics as the Redis limiter: at most
// `limit` grants in any window of `windowMs`; acquire waits for the oldest grant to leave the window.
import type { RateLimiter } from '../../app/ports/pipeline.ts';

export interface RateLimitGrant {
  /** how long acquire waited for the slot */
  waitedMs: number;
  /** when the slot was granted, ms since epoch (in-process: monotonic clock; Redis: the server clock) */
  grantedAtMs: number;
}

/** Sleeps `ms`, rejecting with the signal's reason as soon as it aborts. */
export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** A limiter that grants slots: the port's `acquire` is the wait of one slot. */
export abstract class SlotRateLimiter implements RateLimiter {
  abstract acquireSlot(signal?: AbortSignal): Promise<RateLimitGrant>;

  async acquire(signal?: AbortSignal): Promise<number> {
    return (await this.acquireSlot(signal)).waitedMs;
  }
}

export class MemoryRateLimiter extends SlotRateLimiter {
  /** grant times (monotonic ms), oldest first */
  private readonly grants: number[] = [];

  constructor(
    readonly limit: number,
    readonly windowMs = 60_000,
  ) {
    super();
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError('limit must be a positive integer');
    if (!(windowMs > 0)) throw new RangeError('windowMs must be positive');
  }

  async acquireSlot(signal?: AbortSignal): Promise<RateLimitGrant> {
    const start = performance.now();
    for (;;) {
      signal?.throwIfAborted();
      const r = this.tryGrant();
      if ('at' in r) return { waitedMs: Math.round(r.at - start), grantedAtMs: performance.timeOrigin + r.at };
      await abortableSleep(r.waitMs, signal);
    }
  }

  /** Grants a slot now or says how long until the oldest grant leaves the window. Synchronous, so atomic. */
  private tryGrant(): { at: number } | { waitMs: number } {
    const now = performance.now();
    while (this.grants.length > 0 && this.grants[0]! <= now - this.windowMs) this.grants.shift();
    if (this.grants.length < this.limit) {
      this.grants.push(now);
      return { at: now };
    }
    return { waitMs: Math.max(1, Math.ceil(this.grants[0]! + this.windowMs - now)) };
  }
}

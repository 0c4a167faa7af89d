// Waiting in tests: deadlines on observed state, never sleeps, and every deadline scales with TEST_TIME_SCALE.
// A busy or slow machine (CI next to other jobs, a 2-core box running several suites) sets TEST_TIME_SCALE=3 and
// every wait, plus vitest's testTimeout/hookTimeout (vitest.config.ts), gets three times as long; nothing gets faster.

/** The slow-machine factor: TEST_TIME_SCALE (a number >= 1), default 1. */
export const TIME_SCALE = timeScale(process.env.TEST_TIME_SCALE);

export function timeScale(raw: string | undefined): number {
  if (raw === undefined || raw === '') return 1;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 1) throw new Error(`TEST_TIME_SCALE must be a number >= 1, got ${JSON.stringify(raw)}`);
  return n;
}

/** A deadline in milliseconds, scaled for this machine. */
export function scaled(ms: number): number {
  return Math.round(ms * TIME_SCALE);
}

/** How often `waitFor` looks again. A poll interval, not a wait for anything: it only bounds the checking cost. */
const POLL_MS = 50;

/**
 * Resolves with the first truthy value `fn` returns; `fn` throwing counts as "not yet" (the last error is reported).
 * Rejects when `timeoutMs` (scaled) passes without one, naming `what` was awaited.
 */
export async function waitFor<T>(what: string, fn: () => T | undefined | null | false | Promise<T | undefined | null | false>, timeoutMs = 30_000): Promise<T> {
  const limit = scaled(timeoutMs);
  const until = Date.now() + limit;
  let last: unknown;
  for (let delay = 5; ; delay = Math.min(POLL_MS, delay * 2)) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until) throw new Error(`timed out after ${limit} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, delay));
  }
}

/** Races `p` against a scaled deadline; the rejection names what was awaited. */
export function within<T>(what: string, p: Promise<T>, timeoutMs: number): Promise<T> {
  return before(what, p, Date.now() + scaled(timeoutMs));
}

/** Races `p` against an absolute deadline (epoch ms, from `Date.now() + scaled(...)`), for loops that share one. */
export async function before<T>(what: string, p: Promise<T>, deadlineAt: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), Math.max(0, deadlineAt - Date.now())))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

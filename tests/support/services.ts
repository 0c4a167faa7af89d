// Finds the real services integration tests need. Absent service: the suite skips with a printed reason, except
// under CI=true, where absence fails the run (a green CI must mean the tests ran).
import net from 'node:net';
import type { Redis } from 'ioredis';

export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/15';
export const DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

function reachable(url: string, defaultPort: number): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: u.hostname, port: Number(u.port || defaultPort) });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

async function availability(name: string, url: string, port: number): Promise<boolean> {
  if (await reachable(url, port)) return true;
  const reason = `${name} not reachable at ${url}`;
  if (process.env.CI === 'true') throw new Error(`${reason}; CI=true requires it (.ci/run starts it)`);
  console.warn(`SKIP: ${reason}; start it or set the TEST_* URL to run these tests`);
  return false;
}

export const redisAvailable = () => availability('Redis', REDIS_URL, 6379);
export const postgresAvailable = () => availability('PostgreSQL', DATABASE_URL, 5432);

/** A fixture directory that lives outside the project (never copied in). */
export function fixturesDir(): string | null {
  return process.env.WEARON_FIXTURES_DIR ?? new URL('../../../shared/fixtures/people/', import.meta.url).pathname;
}

/** Removes every key a test or bench created under its unique prefix. */
export async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length) await redis.del(...keys);
}

// Finds the real services integration tests need. Absent service: the suite skips with a printed reason, except
// under CI=true, where absence fails the run (a green CI must mean the tests ran).
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { RedisTaskQueue } from '../../src/adapters/queue/redisTaskQueue.ts';
import { silentLogger } from '../../src/logger.ts';
import { scaled } from './deadlines.ts';

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
    socket.setTimeout(scaled(1000), () => done(false));
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

/** The CC0 and MIT photos of people, committed with their licences (tests/fixtures/people/LICENSES.md). */
export const COMMITTED_PEOPLE_DIR = fileURLToPath(new URL('../fixtures/people/', import.meta.url));

/** Where the other photos of people live, outside the repository (read in place, never copied in). */
export function sharedPeopleDir(): string {
  return process.env.WEARON_FIXTURES_DIR ?? fileURLToPath(new URL('../../../shared/fixtures/people/', import.meta.url));
}

/** A photo of people by file name: the committed copy first, else the shared folder's; null when neither has it. */
export function peoplePhoto(name: string): string | null {
  for (const dir of [COMMITTED_PEOPLE_DIR, sharedPeopleDir()]) {
    const file = path.join(dir, name);
    if (existsSync(file)) return file;
  }
  return null;
}

/** Removes every key a test or bench created under its unique prefix. */
export async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length) await redis.del(...keys);
}

/**
 * What a queue still holds: tasks waiting, and tasks a worker has taken but not yet acked or dead-lettered (its
 * processing list; a killed worker's stays there until its heartbeat expires and it is re-driven). Both zero: every
 * pushed payload has been handled, an invalid one included (it is dead-lettered from the processing list).
 */
export async function queueBacklog(redis: Redis, queueKey: string): Promise<{ waiting: number; taken: number }> {
  // the queue's own count (what wearon_queue_depth reports); an observer only: it takes nothing, so never blocks
  const queue = new RedisTaskQueue({ redis, blocking: redis, workerId: 'test-observer', logger: silentLogger(), queueKey });
  const depth = await queue.depth();
  return { waiting: depth.waiting, taken: depth.processing };
}

// Redis: a command connection (rate limiter, health, `wearon enqueue`) and the task queue (the worker's intake only).
import type { Redis } from 'ioredis';
import { createRedis, RedisTaskQueue } from '../adapters/queue/redisTaskQueue.ts';
import type { TaskQueue } from '../app/ports/queue.ts';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import type { Resource } from './scope.ts';

export function openRedis(url: string, logger: Logger, name: string): Resource<Redis> {
  const redis = createRedis(url, logger, { name });
  return { value: redis, close: () => redis.quit().then(() => undefined, () => redis.disconnect()) };
}

/** The queue the producer pushes to: only the worker's intake opens it, and taking from it moves tasks. */
export function openTaskQueue(
  config: Pick<Config, 'QUEUE_KEY' | 'DEAD_LETTER_MAX_ENTRIES' | 'DEAD_LETTER_MAX_RAW_BYTES'> & { REDIS_URL: string },
  workerId: string,
  logger: Logger,
): Resource<TaskQueue> {
  const queue = RedisTaskQueue.connect(config.REDIS_URL, {
    workerId,
    logger,
    queueKey: config.QUEUE_KEY,
    deadLetterMaxEntries: config.DEAD_LETTER_MAX_ENTRIES,
    deadLetterMaxRawBytes: config.DEAD_LETTER_MAX_RAW_BYTES,
  });
  return { value: queue, close: () => queue.close() };
}

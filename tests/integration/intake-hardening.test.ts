// The Redis intake under the probe's payloads (issue 11), against the real service composition: a real Redis queue
// (unique QUEUE_KEY), the SQLite ledger, the worker, and the service's own pino logger writing to a captured stream.
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AggregateRepository } from '../../src/app/aggregates.ts';
import { grantCredits } from '../../src/app/credits.ts';
import { loadConfig } from '../../src/config.ts';
import { buildProducerTask, serializeProducerTask } from '../../src/contract.ts';
import { accountStream, generationStream } from '../../src/domain/streams.ts';
import { createLogger } from '../../src/logger.ts';
import { startService, type Service } from '../../src/main.ts';
import { deleteKeys, REDIS_URL, redisAvailable } from '../support/services.ts';
import { tempDir } from '../support/stack.ts';

const hasRedis = await redisAvailable();

/** Polls `fn` until it returns a value, or fails at the deadline. */
async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

interface Running {
  service: Service;
  redis: Redis;
  queueKey: string;
  logs: string[];
  stop(): Promise<void>;
}

async function startIntake(env: Record<string, string> = {}): Promise<Running> {
  const queueKey = `test:${randomUUID()}:wearon:tasks:generation`;
  const logs: string[] = [];
  const logger = createLogger({ level: 'trace', stream: new Writable({ write: (c, _e, cb) => (logs.push(String(c)), cb()) }) });
  const config = loadConfig({
    DATA_DIR: tempDir('intake'),
    REDIS_URL,
    QUEUE_KEY: queueKey,
    POSE_ENABLED: 'false',
    RECOVERY_INTERVAL_MS: '200',
    VERIFY_INTERVAL_MS: '0',
    ...env,
  });
  const service = await startService(config, { http: false, worker: true, projections: false }, logger);
  const redis = new Redis(REDIS_URL);
  return {
    service,
    redis,
    queueKey,
    logs,
    async stop() {
      await service.stop();
      await deleteKeys(redis, queueKey);
      redis.disconnect();
    },
  };
}

const deadLetters = async (r: Running) => (await r.redis.lrange(`${r.queueKey}:dead`, 0, -1)).map((s) => JSON.parse(s) as Record<string, unknown>);

describe.skipIf(!hasRedis)('item 8: non-UUID owner ids at the Redis intake', () => {
  let r: Running;
  beforeAll(async () => {
    r = await startIntake();
  });
  afterAll(() => r?.stop());

  it('dead-letters a payload whose user_id or store_id is not a UUID, naming the field, and charges nothing', async () => {
    const repo = new AggregateRepository(r.service.store);
    const ctx = { requestId: 't', workerId: 't' };
    // Credits where the probe's payloads would have been charged before this check existed.
    await grantCredits(repo, 'user:u-1', { amount: 5, reason: 'purchase', reference: 'g' }, ctx);
    await grantCredits(repo, 'store:store-1', { amount: 5, reason: 'purchase', reference: 'g' }, ctx);
    const urls = ['https://a.example/m.jpg'];
    const tasks = [buildProducerTask({ userId: 'u-1', imageUrls: urls }), buildProducerTask({ storeId: 'store-1', imageUrls: urls })];
    for (const t of tasks) await r.redis.lpush(r.queueKey, serializeProducerTask(t));
    const dead = await waitFor('two dead letters', async () => {
      const d = await deadLetters(r);
      return d.length === 2 && d;
    });
    expect(dead.map((d) => d.reason).sort()).toEqual([
      'invalid payload: store_id: must be a UUID in lowercase canonical form (the platform id)',
      'invalid payload: user_id: must be a UUID in lowercase canonical form (the platform id)',
    ]);
    for (const account of ['user:u-1', 'store:store-1']) {
      const events = await r.service.store.readStream(accountStream(account), { maxCount: 100 });
      expect(events.map((e) => e.type), account).toEqual(['CreditsGranted']);
    }
    // The web app still sees each session fail (GenerationRejected invalid_request), with no account named.
    for (const t of tasks) {
      const events = await waitFor('the rejection', async () => {
        const e = await r.service.store.readStream(generationStream(t.sessionId), { maxCount: 10 });
        return e.length > 0 && e;
      });
      expect(events.map((e) => [e.type, (e.data as { code?: string }).code])).toEqual([['GenerationRejected', 'invalid_request']]);
      expect((events[0]!.data as { account?: string }).account).toBeUndefined();
    }
  });
});

// `wearon recover` is an ops command: it drives what is due in the ledger and never starts intake. With REDIS_URL set
// (real Redis, a unique QUEUE_KEY), the producer's queue is exactly as it was, and no processing list or heartbeat of
// a worker appears.
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { grantCredits } from '../../src/app/credits.ts';
import { requestFromTask } from '../../src/app/intake.ts';
import { recoverCommand } from '../../src/cli/commands/ledger.ts';
import { createGeneration } from '../../src/compose/generation.ts';
import { openEventStore } from '../../src/compose/ledger.ts';
import { withScope } from '../../src/compose/scope.ts';
import { loadConfig } from '../../src/config.ts';
import { buildProducerTask, parseTaskPayload, serializeProducerTask } from '../../src/contract.ts';
import { silentLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';
import { startImageServer, type ImageServer } from '../support/imageServer.ts';
import { deleteKeys, REDIS_URL, redisAvailable } from '../support/services.ts';
import { tempDir } from '../support/stack.ts';

const ok = await redisAvailable();

describe.skipIf(!ok)('wearon recover with REDIS_URL set (real Redis)', () => {
  const prefix = `test:${randomUUID()}:`;
  const queueKey = `${prefix}wearon:tasks:generation`;
  const dataDir = tempDir('recover');
  const logger = silentLogger();
  let admin: Redis;
  let images: ImageServer;
  beforeAll(async () => {
    admin = new Redis(REDIS_URL);
    images = await startImageServer();
    // The input download of the due generation takes a while (then fails): time in which a worker would take tasks.
    images.route('/slow.jpg', (_req, res) => void setTimeout(() => res.writeHead(404).end(), 1500));
  });
  afterAll(async () => {
    await deleteKeys(admin, prefix);
    await admin.quit();
    await images.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('drives the due generation and leaves the queue untouched', async () => {
    const config = loadConfig({
      DATA_DIR: dataDir, REDIS_URL, QUEUE_KEY: queueKey, OPENAI_RATE_LIMIT_KEY: `${queueKey}:ratelimit`, POSE_ENABLED: 'false', WORKER_ID: 'recover-test', IMAGE_FETCH_ALLOW_HOSTS: '127.0.0.1',
    });
    // One generation in the ledger, due: requested (never charged) on an account with a credit.
    const parsed = parseTaskPayload(serializeProducerTask(buildProducerTask({ userId: randomUUID(), imageUrls: [images.url('/slow.jpg')] })));
    if (!parsed.ok) throw new Error(parsed.reason);
    const due = parsed.task;
    await withScope(logger, async (scope) => {
      const store = scope.add(await openEventStore(config, logger));
      const { saga, repo } = await createGeneration(config, { store, workerId: 'producer', logger, metrics: createMetrics({ defaults: false }) });
      await grantCredits(repo, 'user:recover-u1', { amount: 1, reason: 'purchase', reference: 'recover-test' }, { requestId: 'r', workerId: 'test' });
      await saga.request(requestFromTask(due, config.GENERATION_COST, Date.now()));
    });
    // Tasks waiting in the producer's queue: recovery is not intake, they must stay where they are.
    const waiting = Array.from({ length: 5 }, () => serializeProducerTask(buildProducerTask({ userId: randomUUID(), imageUrls: ['https://images.example/m.jpg'] })));
    await admin.lpush(queueKey, ...waiting);
    const before = await admin.lrange(queueKey, 0, -1);

    const err: string[] = [];
    const code = await recoverCommand.run([], { config, logger, out: () => {}, err: (l) => err.push(l) });

    expect(code).toBe(0);
    expect(err).toContain('recover: 1 generation(s) due of 1 unfinished');
    expect(err).toContain(`recover: [1/1] ${due.session_id}: settled`); // charged, run, failed on the download, refunded
    expect(await admin.lrange(queueKey, 0, -1)).toEqual(before);
    expect((await admin.keys(`${prefix}*`)).sort()).toEqual([queueKey]);
  });
});

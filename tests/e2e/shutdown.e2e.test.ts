// SIGTERM: intake stops, in-flight work finishes within the grace period, what cannot finish is released (not failed,
// not refunded) and completes after a restart; the process exits 0.
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildProducerTask, serializeProducerTask } from '../../src/contract.ts';
import { startFakeOpenAI, type FakeOpenAI } from '../support/fakeOpenAI.ts';
import { startImageServer, type ImageServer } from '../support/imageServer.ts';
import { noisyJpeg } from '../support/images.ts';
import { deleteKeys, REDIS_URL, redisAvailable } from '../support/services.ts';
import { freePort, startService, tempDir, waitFor } from '../support/stack.ts';
import { scaled } from '../support/deadlines.ts';

const hasRedis = await redisAvailable();
const USER = randomUUID(); // the platform's ids are UUIDs

describe.skipIf(!hasRedis)('graceful shutdown', () => {
  let fake: FakeOpenAI;
  let images: ImageServer;
  let redis: Redis;
  const queueKey = `shutdown:${randomUUID().slice(0, 8)}:tasks`;

  beforeAll(async () => {
    fake = await startFakeOpenAI();
    images = await startImageServer();
    images.serve('/m.jpg', await noisyJpeg(400, 500, 5), 'image/jpeg');
    redis = new Redis(REDIS_URL);
  });
  afterAll(async () => {
    await deleteKeys(redis, queueKey);
    redis.disconnect();
    await fake.close();
    await images.close();
  });

  const envFor = (graceMs: number) => ({
    REDIS_URL,
    QUEUE_KEY: queueKey,
    OPENAI_API_KEY: 'sk-shutdown',
    OPENAI_BASE_URL: fake.baseURL,
    IMAGE_FETCH_ALLOW_HOSTS: '127.0.0.1',
    WORKER_ID: 'shutdown-worker',
    SHUTDOWN_GRACE_MS: String(graceMs),
    RECOVERY_INTERVAL_MS: '300',
  });

  it('finishes in-flight work within the grace period, releases the rest, and resumes it after a restart', async () => {
    const dataDir = tempDir('shutdown');
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const status = async (id: string) => ((await (await fetch(`${base}/v1/generations/${id}`)).json()) as { ledger_status: string; timeline: { type: string }[] });

    // Ordering across processes: each SIGTERM is sent only after the service's ledger shows the generation started
    // (observed over HTTP), so the call is in flight; the upstream stand-in holds its answer for a scripted time that
    // is well inside (1.5 s of a scaled 60 s grace: the process exits as soon as the run ends, and the rest of the run
    // may take seconds on a busy machine) or well outside (10 s against 300 ms) the grace period.
    // 1. A slow upstream call (1.5 s) and a long grace: the generation completes, then the process exits 0.
    let service = await startService(envFor(scaled(60_000)), { dataDir, port });
    await fetch(`${base}/v1/accounts/user:${USER}/grants`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ amount: 2, reason: 'purchase', reference: 'sd' }),
    });
    fake.script({ kind: 'slow_headers', delayMs: 1500 });
    const first = buildProducerTask({ userId: USER, imageUrls: [images.url('/m.jpg')] });
    await redis.lpush(queueKey, serializeProducerTask(first));
    await waitFor('the first generation to start', async () => (await status(first.sessionId)).ledger_status === 'started');
    service.child.kill('SIGTERM');
    const code1 = await new Promise<number | null>((r) => service.child.once('exit', (c) => r(c)));
    const firstLog = service.output();
    expect(code1, firstLog).toBe(0);

    // 2. A 10 s upstream call and a 300 ms grace: the run is released, neither failed nor refunded.
    service = await startService(envFor(300), { dataDir, port });
    expect((await status(first.sessionId)).ledger_status, `the first service's log:\n${firstLog}`).toBe('completed');
    fake.script({ kind: 'slow_headers', delayMs: 10_000 });
    const second = buildProducerTask({ userId: USER, imageUrls: [images.url('/m.jpg')] });
    await redis.lpush(queueKey, serializeProducerTask(second));
    await waitFor('the second generation to start', async () => (await status(second.sessionId)).ledger_status === 'started');
    service.child.kill('SIGTERM');
    const code2 = await new Promise<number | null>((r) => service.child.once('exit', (c) => r(c)));
    expect(code2).toBe(0);

    // 3. After a restart the released generation is claimed again and completes; one credit each, nothing refunded.
    service = await startService(envFor(5000), { dataDir, port });
    const types = (await status(second.sessionId)).timeline.map((e) => e.type);
    expect(types).toContain('GenerationReleased');
    expect(types).not.toContain('GenerationFailed');
    await waitFor('the released generation to complete', async () => (await status(second.sessionId)).ledger_status === 'completed', 30_000);
    const account = (await (await fetch(`${base}/v1/accounts/user:${USER}`)).json()) as { balance: number; captured: number; refunded: number };
    expect(account).toMatchObject({ balance: 0, captured: 2, refunded: 0 });
    await service.stop();
  }, scaled(90_000));
});

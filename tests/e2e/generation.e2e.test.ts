// End to end, black box: the service started as a user would (`node bin/wearon.mjs serve`), real Redis, the real
// OpenAI SDK against the images-API stand-in, images from a local server. Tasks go in as the producer pushes them
// (LPUSH of snake_case JSON); we read results only through HTTP, the CLI and Redis.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildProducerTask, serializeProducerTask } from '../../src/contract.ts';
import { startFakeOpenAI, type FakeOpenAI } from '../support/fakeOpenAI.ts';
import { startImageServer, type ImageServer } from '../support/imageServer.ts';
import { noisyJpeg } from '../support/images.ts';
import { deleteKeys, REDIS_URL, redisAvailable } from '../support/services.ts';
import { projectionsCaughtUp, ROOT, startService, waitFor, type RunningService } from '../support/stack.ts';

const run = promisify(execFile);
// The platform's ids are UUIDs (the contract refuses others).
const USER = '5a1e7c3d-0b6f-4e2a-9c8d-1f2e3d4c5b6a';
const HTTP_USER = '6b2f8d4e-1c7a-4f3b-8d9e-2a3b4c5d6e7f';
const STORE = '7c3a9e5f-2d8b-4a4c-9e0f-3b4c5d6e7f8a';
const POOR_STORE = '8d4b0f6a-3e9c-4b5d-8f1a-4c5d6e7f8a9b';
const hasRedis = await redisAvailable();

describe.skipIf(!hasRedis)('generation end to end (service process, Redis intake, OpenAI stand-in)', () => {
  let fake: FakeOpenAI;
  let images: ImageServer;
  let service: RunningService & { dataDir: string };
  let redis: Redis;
  const queueKey = `e2e:${randomUUID().slice(0, 8)}:tasks`;
  let base: string;
  const env = () => ({
    REDIS_URL,
    QUEUE_KEY: queueKey,
    OPENAI_API_KEY: 'sk-test-e2e',
    OPENAI_BASE_URL: fake.baseURL,
    IMAGE_FETCH_ALLOW_HOSTS: '127.0.0.1',
    RECOVERY_INTERVAL_MS: '500',
    LOG_LEVEL: 'info',
  });
  const cli = (...args: string[]) =>
    run(process.execPath, [path.join(ROOT, 'bin', 'wearon.mjs'), ...args], { cwd: ROOT, env: { ...process.env, DATA_DIR: service.dataDir, LOG_LEVEL: 'warn' } });
  const getJson = async (p: string) => {
    const r = await fetch(`${base}${p}`);
    return { status: r.status, body: (await r.json()) as Record<string, any> };
  };
  const terminal = (sessionId: string) =>
    waitFor(`session ${sessionId} to finish`, async () => {
      const r = await getJson(`/v1/generations/${sessionId}`);
      return r.status === 200 && (r.body.status === 'completed' || r.body.status === 'failed') ? r.body : undefined;
    }, 30_000);

  beforeAll(async () => {
    fake = await startFakeOpenAI();
    images = await startImageServer();
    images.serve('/model.jpg', await noisyJpeg(1200, 1600, 1), 'image/jpeg');
    images.serve('/outfit.jpg', await noisyJpeg(800, 800, 2), 'image/jpeg');
    images.serve('/page.jpg', Buffer.from('<html>not an image</html>'), 'image/jpeg');
    redis = new Redis(REDIS_URL);
    service = await startService(env());
    base = `http://127.0.0.1:${service.port}`;
  });

  afterAll(async () => {
    await service?.stop();
    await deleteKeys(redis, queueKey);
    redis?.disconnect();
    await fake?.close();
    await images?.close();
  });

  it('runs producer tasks to completion, rejects and refunds correctly, and keeps the ledger verifiable', async () => {
    const grant = async (account: string, amount: number, reference: string) => {
      const r = await fetch(`${base}/v1/accounts/${encodeURIComponent(account)}/grants`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ amount, reason: 'purchase', reference }),
      });
      expect([200, 201]).toContain(r.status);
    };
    await grant(`user:${USER}`, 3, 'order-1');
    await grant(`user:${USER}`, 3, 'order-1'); // same reference: no second grant
    await grant(`shopper:${STORE}:Alice@Example.com`, 1, 'shopify-1');
    const urls = [images.url('/model.jpg'), images.url('/outfit.jpg')];

    const ok1 = buildProducerTask({ userId: USER, imageUrls: urls, prompt: 'Dress the model' });
    const ok2 = buildProducerTask({ userId: USER, imageUrls: urls });
    const badImage = buildProducerTask({ userId: USER, imageUrls: [images.url('/page.jpg')] });
    const poorStore = buildProducerTask({ storeId: POOR_STORE, imageUrls: urls });
    const shopper = buildProducerTask({ storeId: STORE, shopperEmail: 'alice@example.com', imageUrls: urls });
    const invalid = { session_id: randomUUID(), channel: 'b2c', user_id: USER, image_urls: [], task_id: 't', request_id: 'req_bad' };
    // LPUSH exactly as the producer does; one duplicate delivery of ok1.
    for (const t of [ok1, ok2, badImage, poorStore, shopper, ok1]) await redis.lpush(queueKey, serializeProducerTask(t));
    await redis.lpush(queueKey, JSON.stringify(invalid));
    await redis.lpush(queueKey, '{not json');

    const done1 = await terminal(ok1.sessionId);
    expect(done1.status).toBe('completed');
    expect(done1.provider).toBe('openai');
    expect(done1.error).toBeNull();
    expect(done1.timeline.map((e: { type: string }) => e.type)).toEqual([
      'GenerationRequested',
      'GenerationCharged',
      'GenerationStarted',
      'GenerationCompleted',
    ]);
    expect((await terminal(ok2.sessionId)).status).toBe('completed');
    const failedImage = await terminal(badImage.sessionId);
    expect(failedImage.status).toBe('failed');
    expect(failedImage.error.code).toBe('image_invalid');
    const rejected = await terminal(poorStore.sessionId);
    expect(rejected.ledger_status).toBe('rejected');
    expect(rejected.error.code).toBe('insufficient_credits');
    expect((await terminal(shopper.sessionId)).status).toBe('completed');
    const invalidRead = await terminal(invalid.session_id);
    expect(invalidRead.error.code).toBe('invalid_request');

    // The result is a JPEG behind a signed URL.
    const img = await fetch(done1.result_url);
    expect(img.status).toBe(200);
    expect((await sharp(Buffer.from(await img.arrayBuffer())).metadata()).format).toBe('jpeg');
    // OpenAI got both inputs as image[] parts, resized JPEGs, with the explicit output format.
    const call = fake.requests.find((r) => r.fields.prompt === 'Dress the model')!;
    expect(call.files.map((f) => f.filename)).toEqual(['model.jpg', 'image_1.jpg']);
    expect(call.fields.output_format).toBe('jpeg');
    const sent = await sharp(call.files[0]!.bytes).metadata();
    expect(Math.max(sent.width!, sent.height!)).toBe(1024); // 1200x1600 in, longest side 1024 out

    // Moderation: fails with the user-facing message and refunds.
    fake.script({ kind: 'moderation' });
    const flagged = buildProducerTask({ userId: USER, imageUrls: urls });
    await redis.lpush(queueKey, serializeProducerTask(flagged));
    const flaggedRead = await terminal(flagged.sessionId);
    expect(flaggedRead.error.code).toBe('moderation_blocked');
    expect(flaggedRead.error.message).toMatch(/safety filter/);

    // Credits: 3 granted, 2 captured (ok1, ok2), bad image and moderation refunded; the duplicate charged nothing.
    await waitFor('holds to settle', async () => {
      const acct = await getJson(`/v1/accounts/${encodeURIComponent(`user:${USER}`)}`);
      return acct.body.open_holds?.length === 0 && acct.body;
    });
    const acct = await getJson(`/v1/accounts/${encodeURIComponent(`user:${USER}`)}`);
    expect(acct.body).toMatchObject({ balance: 1, granted: 3, deducted: 4, captured: 2, refunded: 2 });
    const shopperAcct = await getJson(`/v1/accounts/${encodeURIComponent(`shopper:${STORE}:alice@example.com`)}`);
    expect(shopperAcct.body).toMatchObject({ balance: 0, captured: 1 });
    expect(shopperAcct.body.account).not.toContain('alice');

    // Dead letters: the invalid payload and the bad JSON, with their reasons and raw text.
    const dead = (await redis.lrange(`${queueKey}:dead`, 0, -1)).map((r) => JSON.parse(r) as { reason: string; raw: string });
    expect(dead).toHaveLength(2);
    expect(dead.map((d) => d.reason).join('\n')).toMatch(/invalid JSON/);
    expect(dead.map((d) => d.reason).join('\n')).toMatch(/image_urls/);
    expect(await redis.llen(queueKey)).toBe(0);

    // Finance: the statement (CSV) and a clean verify from the CLI, while the service runs.
    const csv = await fetch(`${base}/v1/accounts/${encodeURIComponent(`user:${USER}`)}/statement?format=csv`).then((r) => r.text());
    const rows = csv.trim().split('\n');
    expect(rows[0]).toMatch(/^revision,occurred_at,type,amount,balance,generation_id/);
    expect(rows).toHaveLength(1 + 1 + 4 + 2 + 2); // header, grant, 4 deductions, 2 captures, 2 refunds
    expect(rows.at(-1)).toMatch(/,1,/);
    await projectionsCaughtUp(base);
    const verify = await cli('verify', '--quiescent').catch((e: { stdout: string; stderr: string }) => {
      throw new Error(`verify failed:\n${e.stdout}\n${e.stderr}`);
    });
    expect(verify.stdout).toMatch(/ledger OK/);
    expect(verify.stdout).toMatch(/read models OK/);

    // Metrics saw the outcomes.
    const metrics = await fetch(`${base}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/wearon_generations_total\{outcome="completed",channel="b2c",provider="openai",error_code="none"\} 2/);
    expect(metrics).toMatch(/wearon_generation_stage_seconds_count\{stage="queue_to_done"\} [1-9]/);
  });

  it('accepts the same payload over HTTP, idempotent on session_id, with 402 and 400 answers', async () => {
    const urls = [images.url('/model.jpg')];
    const post = (body: unknown) =>
      fetch(`${base}/v1/generations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const task = JSON.parse(serializeProducerTask(buildProducerTask({ userId: HTTP_USER, imageUrls: urls })));
    expect((await post(task)).status).toBe(402);
    const grant = await fetch(`${base}/v1/accounts/user:${HTTP_USER}/grants`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ amount: 1, reason: 'purchase', reference: 'o-http' }),
    });
    expect(grant.status).toBe(201);
    const fresh = JSON.parse(serializeProducerTask(buildProducerTask({ userId: HTTP_USER, imageUrls: urls })));
    const first = await post(fresh);
    expect(first.status).toBe(202);
    const again = await post(fresh);
    expect(again.status).toBe(202);
    expect(((await again.json()) as { duplicate: boolean }).duplicate).toBe(true);
    expect((await terminal(fresh.session_id)).status).toBe('completed');
    const bad = await post({ ...fresh, channel: 'b2x' });
    expect(bad.status).toBe(400);
    const body = (await bad.json()) as { error: { code: string; details: { fields: { path: string }[] } }; request_id: string };
    expect(body.error.code).toBe('invalid_request');
    expect(body.error.details.fields.map((f) => f.path)).toContain('channel');
    expect(body.request_id).toMatch(/^req_/);
  });
});

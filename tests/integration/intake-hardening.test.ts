// The Redis intake under the probe's payloads (issue 11), against the real service composition: a real Redis queue
// (unique QUEUE_KEY), the SQLite ledger, the worker, and the service's own pino logger writing to a captured stream.
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AggregateRepository } from '../../src/app/aggregates.ts';
import { grantCredits } from '../../src/app/credits.ts';
import { loadConfig } from '../../src/config.ts';
import { createHash } from 'node:crypto';
import { buildProducerTask, serializeProducerTask } from '../../src/contract.ts';
import { accountStream, generationStream, hashShopperEmail } from '../../src/domain/streams.ts';
import { createLogger, EMAIL_MASK } from '../../src/logger.ts';
import { startService, type Service } from '../../src/compose/service.ts';
import { deleteKeys, REDIS_URL, redisAvailable } from '../support/services.ts';
import { noisyJpeg } from '../support/images.ts';
import { startImageServer, type ImageServer } from '../support/imageServer.ts';
import { freePort, tempDir } from '../support/stack.ts';
import { scaled, waitFor } from '../support/deadlines.ts';

const hasRedis = await redisAvailable();

interface Running {
  service: Service;
  redis: Redis;
  queueKey: string;
  logs: string[];
  stop(): Promise<void>;
}

async function startIntake(env: Record<string, string> = {}, http = false): Promise<Running> {
  const queueKey = `test:${randomUUID()}:wearon:tasks:generation`;
  const logs: string[] = [];
  const logger = createLogger({ level: 'trace', stream: new Writable({ write: (c, _e, cb) => (logs.push(String(c)), cb()) }) });
  const config = loadConfig({
    DATA_DIR: tempDir('intake'),
    REDIS_URL,
    QUEUE_KEY: queueKey,
    OPENAI_RATE_LIMIT_KEY: `${queueKey}:ratelimit`,
    POSE_ENABLED: 'false',
    RECOVERY_INTERVAL_MS: '200',
    VERIFY_INTERVAL_MS: '0',
    HOST: '127.0.0.1',
    PORT: String(http ? await freePort() : 0),
    ...env,
  });
  const service = await startService(config, { http, worker: true, projections: false }, logger);
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

describe.skipIf(!hasRedis)('item 2: no log line carries an email; dead letters keep the raw payload, within bounds', () => {
  let r: Running;
  let images: ImageServer;
  beforeAll(async () => {
    images = await startImageServer();
    images.serve('/m.jpg', await noisyJpeg(640, 800, 3), 'image/jpeg');
    r = await startIntake({ IMAGE_FETCH_ALLOW_HOSTS: '127.0.0.1' }, true);
  });
  afterAll(async () => {
    await r?.stop();
    await images?.close();
  });

  it('pushes every invalid payload shape with an email in it through the Redis intake, and greps the logs', async () => {
    const store = randomUUID();
    const user = randomUUID();
    const marker = (tag: string) => `leak.${tag}.${randomUUID().slice(0, 8)}@probe-mail.example`;
    const valid = () => JSON.parse(serializeProducerTask(buildProducerTask({ storeId: store, shopperEmail: marker('valid'), imageUrls: ['https://a.example/m.jpg'] })));
    const emails: string[] = [];
    const m = (tag: string) => {
      const e = marker(tag);
      emails.push(e);
      return e;
    };
    const obj = (o: Record<string, unknown>) => JSON.stringify(o);
    const { created_at: _, ...noCreatedAt } = valid();
    const payloads: string[] = [
      // the probe's case: a resell payload without created_at (the email is the 4th key, well within 200 characters)
      obj({ ...noCreatedAt, shopper_email: m('resell-no-created-at') }),
      `{"shopper_email":"${m('truncated-json')}",`,
      `{"a":"${m('json-error-near')}" oops}`,
      JSON.stringify(m('json-string')),
      JSON.stringify([m('json-array')]),
      obj({ shopper_email: m('no-session') }),
      obj({ ...valid(), channel: m('channel') }),
      obj({ ...valid(), channel: 'b2c', store_id: undefined, shopper_email: undefined, user_id: m('user-id') }),
      obj({ ...valid(), store_id: m('store-id') }),
      obj({ ...valid(), session_id: m('session-id') }),
      obj({ ...valid(), request_id: m('request-id'), image_urls: [] }),
      obj({ ...valid(), task_id: m('task-id'), created_at: 'soon' }),
      obj({ ...valid(), shopper_email: `bad ${m('malformed-email')}` }),
      obj({ ...valid(), channel: 'b2c', store_id: undefined, user_id: user, shopper_email: m('b2c-shopper') }),
      obj({ ...valid(), shopper_email: m('version'), version: 2 }),
      obj({ ...valid(), version: m('version-string') }),
      obj({ ...valid(), shopper_email: m('long-prompt'), prompt: `${'p'.repeat(32_001)} ${m('in-prompt')}` }),
      obj({ ...valid(), image_urls: [`mailto:${m('image-url')}`] }),
      obj({ ...valid(), image_urls: Array.from({ length: 40 }, (_, i) => `not-a-url-${i} ${m(`many-${i}`)}`) }),
      obj({ [m('as-key')]: 1, ...valid(), created_at: 'x' }),
      obj({ ...valid(), created_at: undefined, padding: 'x'.repeat(300), shopper_email: m('after-200-chars') }),
      obj({ ...valid(), shopper_email: m('percent').replace('@', '%40'), created_at: 'x' }),
    ];
    for (const p of payloads) await r.redis.lpush(r.queueKey, p);

    // A valid resell task runs to the end (intake, charge, download, generation, capture), and HTTP sees emails too.
    const shopperEmail = m('valid-resell');
    const repo = new AggregateRepository(r.service.store);
    await grantCredits(repo, `shopper:${store}:${shopperEmail}`, { amount: 2, reason: 'purchase', reference: 'g' }, { requestId: 't', workerId: 't' });
    const ok = buildProducerTask({ storeId: store, shopperEmail, imageUrls: [images.url('/m.jpg')] });
    await r.redis.lpush(r.queueKey, serializeProducerTask(ok));
    const base = `http://127.0.0.1:${new URL(r.service.address!).port}`;
    const post = (body: string) => fetch(`${base}/v1/generations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect((await post(obj({ ...noCreatedAt, shopper_email: m('http-invalid') }))).status).toBe(400);
    expect((await post(`{"shopper_email":"${m('http-json')}"`)).status).toBe(400);
    const acct = `shopper:${store}:${m('http-grant')}`;
    expect((await fetch(`${base}/v1/accounts/${encodeURIComponent(acct)}/grants`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: obj({ amount: 1, reason: 'purchase', reference: m('reference') }) })).status).toBe(201);

    // ~2.5 s on a quiet machine; 22 payloads (one of 32 KB) through intake and the log scrubber took over 30 s at load 20.
    const dead = await waitFor(`${payloads.length} dead letters`, async () => {
      const d = await deadLetters(r);
      return d.length === payloads.length && d;
    }, 90_000);
    await waitFor('the valid resell task to complete', async () => {
      const e = await r.service.store.readStream(generationStream(ok.sessionId), { maxCount: 20 });
      return e.some((x) => x.type === 'GenerationCompleted');
    });
    await waitFor('its capture', async () => {
      const e = await r.service.store.readStream(accountStream(`shopper:${store}.${hashShopperEmail(shopperEmail)}`), { maxCount: 20 });
      return e.some((x) => x.type === 'CreditCaptured');
    });

    const out = r.logs.join('');
    const lines = r.logs.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.filter((l) => l.msg === 'task_dead_lettered')).toHaveLength(payloads.length);
    expect(lines.some((l) => l.msg === 'task_received')).toBe(true);
    // Not one of the emails, nor its local part or its domain, in any line; nothing email-shaped at all.
    for (const e of emails) {
      const [local, domain] = e.split('@') as [string, string];
      expect(out, e).not.toContain(local);
      expect(out, e).not.toContain(domain);
    }
    expect(out).not.toMatch(/[A-Za-z0-9._%+-]+(@|%40)[A-Za-z0-9.-]+\.[A-Za-z]{2,}/i);
    expect(out).toContain(EMAIL_MASK); // the safeguard did fire (the reason of an unknown channel quotes the value)
    // Each dead-letter line names its payload by size, digest and keys instead of showing it.
    const first = lines.find((l) => l.msg === 'task_dead_lettered' && l.raw_sha256 === dead.at(-1)!.raw_sha256);
    expect(first).toMatchObject({ raw_bytes: Buffer.byteLength(payloads[0]!), keys: expect.arrayContaining(['shopper_email', 'session_id']) });
    expect(first).not.toHaveProperty('raw');
    // The dead-letter records keep each raw payload exactly (that is where an operator reads it).
    expect(dead.map((d) => d.raw).sort()).toEqual([...payloads].sort());
    for (const d of dead) expect(d.raw_sha256).toBe(createHash('sha256').update(d.raw as string).digest('hex'));
  }, scaled(180_000));
});

describe.skipIf(!hasRedis)('item 2: dead-letter retention is bounded in count and bytes', () => {
  let r: Running;
  beforeAll(async () => {
    r = await startIntake({ DEAD_LETTER_MAX_ENTRIES: '5', DEAD_LETTER_MAX_RAW_BYTES: '4096' });
  });
  afterAll(() => r?.stop());

  it('keeps the newest DEAD_LETTER_MAX_ENTRIES records, each raw payload cut to DEAD_LETTER_MAX_RAW_BYTES', async () => {
    const big = `{"prompt":"${'é'.repeat(2_000_000)}`; // 4 MB of two-byte characters, invalid JSON
    const small = (i: number) => `{"n":${i}`;
    const pushed = [small(1), small(2), big, small(3), small(4), small(5), small(6)];
    for (const p of pushed) await r.redis.lpush(r.queueKey, p);
    await waitFor('every payload dead-lettered', async () => (await r.redis.llen(r.queueKey)) === 0 && (await r.redis.llen(`${r.queueKey}:processing:${r.service.workerId}`)) === 0);
    const dead = await deadLetters(r);
    expect(dead).toHaveLength(5);
    // newest first: the two oldest went
    expect(dead.map((d) => (d.raw_truncated ? 'big' : d.raw))).toEqual([small(6), small(5), small(4), small(3), 'big']);
    const cut = dead[4]!;
    expect(cut).toMatchObject({ raw_truncated: true, raw_bytes: Buffer.byteLength(big), raw_sha256: createHash('sha256').update(big).digest('hex') });
    expect(big.startsWith(cut.raw as string)).toBe(true);
    expect(Buffer.byteLength(cut.raw as string)).toBeLessThanOrEqual(4096);
    expect(Buffer.byteLength(cut.raw as string)).toBeGreaterThan(4090);
    for (const d of dead) expect(Buffer.byteLength(JSON.stringify(d))).toBeLessThan(4096 + 1024);
    expect(r.logs.some((l) => l.includes('"dead_letters_trimmed"'))).toBe(true);
  }, scaled(60_000));
});

// Adoption inside the platform (issue 16) on the platform-schema fixture with real Postgres and Redis: the platform's
// own code paths (PlatformDriver) run unchanged against its database with the bridge installed, and the worker is the
// only writer of credits. The cut-over is done as docs/platform-adoption.md says (migrate, import-balances, install
// the bridge, start the worker); every scenario ends with `wearon verify` clean, the inbox drained included.
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CliCommand } from '../../src/cli/command.ts';
import { importBalancesCommand } from '../../src/cli/commands/import-balances.ts';
import { verifyCommand } from '../../src/cli/commands/ledger.ts';
import { migrateCommand } from '../../src/cli/commands/migrate.ts';
import { startService, type Service } from '../../src/compose/service.ts';
import { loadConfig, type Config } from '../../src/config.ts';
import { silentLogger } from '../../src/logger.ts';
import { startFakeOpenAI, type FakeOpenAI } from '../support/fakeOpenAI.ts';
import { startImageServer, type ImageServer } from '../support/imageServer.ts';
import { noisyJpeg } from '../support/images.ts';
import { createPlatformDatabase, type PlatformDatabase } from '../support/platform/database.ts';
import { PlatformDriver } from '../support/platform/driver.ts';
import { seedStore, shopperCredits, storeCredits, storeUploadUrl, userCredits, type CreditRow, type SeededStore } from '../support/platform/seed.ts';
import { deleteKeys, postgresAvailable, redisAvailable, REDIS_URL } from '../support/services.ts';
import { tempDir, waitFor } from '../support/stack.ts';

const pgOk = await postgresAvailable();
const ready = pgOk && (await redisAvailable());
const logger = silentLogger();
const email = () => `u-${randomUUID().slice(0, 8)}@example.com`;
const CREDIT_PRODUCT = '7001';

describe.skipIf(!ready)('platform adoption through the bridge (platform fixture, real Postgres and Redis)', () => {
  let db: PlatformDatabase;
  let redis: Redis;
  let fake: FakeOpenAI;
  let images: ImageServer;
  let driver: PlatformDriver;
  let config: Config;
  let service: Service | undefined;
  let oldUser: string;
  let inFlightSession: string;
  let inFlightB2b: string;
  let resell: SeededStore;
  let absorb: SeededStore;
  const queueKey = `test:${randomUUID()}:wearon:tasks:generation`;

  const cli = async (command: CliCommand, args: string[] = []) => {
    const out: string[] = [];
    const code = await command.run(args, { config, logger, out: (l) => out.push(l), err: () => undefined });
    return { code, out: out.join('\n') };
  };
  const model = () => images.url('/model.jpg');
  const sessionStatus = async (id: string) =>
    (await db.pool.query<{ status: string; error_message: string | null }>('SELECT status, error_message FROM generation_sessions WHERE id = $1', [id])).rows[0];
  const untilStatus = (id: string, status: string, timeoutMs = 30_000) =>
    waitFor(`session ${id} ${status}`, async () => (await sessionStatus(id))?.status === status, timeoutMs);
  const untilCredits = (what: string, read: () => Promise<CreditRow | null>, expected: CreditRow) =>
    waitFor(`${what} = ${JSON.stringify(expected)}`, async () => JSON.stringify(await read()) === JSON.stringify(expected), 20_000).catch(async (err) => {
      expect(await read(), what).toEqual(expected); // names the difference
      throw err;
    });
  const inbox = async () =>
    (await db.pool.query<{ id: string; type: string; payload: Record<string, unknown>; outcome: string | null; reason: string | null }>(
      'SELECT id::text AS id, type, payload, outcome, reason FROM wearon.credit_inbox ORDER BY id',
    )).rows;
  /** The inbox drained, the projectors caught up with the log, then `wearon verify` finds nothing. */
  const expectVerifyClean = async (flags: string[] = []) => {
    await waitFor('inbox drained', async () => (await inbox()).every((c) => c.outcome !== null));
    const r = await waitFor('verify clean', async () => {
      const v = await cli(verifyCommand, ['--json', ...flags]);
      return v.code === 0 ? v : undefined;
    }, 20_000).catch(async () => cli(verifyCommand, ['--json', ...flags]));
    const report = JSON.parse(r.out) as { ok: boolean; violations: unknown[]; drifts: unknown[] };
    expect({ violations: report.violations, drifts: report.drifts }).toEqual({ violations: [], drifts: [] });
    expect(report.ok).toBe(true);
  };

  beforeAll(async () => {
    db = await createPlatformDatabase();
    redis = new Redis(REDIS_URL);
    driver = new PlatformDriver({ pool: db.pool, redis, queueKey });
    fake = await startFakeOpenAI();
    images = await startImageServer();
    images.serve('/model.jpg', await noisyJpeg(600, 800, 1), 'image/jpeg');
    config = loadConfig({
      DATA_DIR: tempDir('adoption'),
      DATABASE_URL: db.url,
      REDIS_URL,
      QUEUE_KEY: queueKey,
      OPENAI_RATE_LIMIT_KEY: `${queueKey}:ratelimit`,
      OPENAI_API_KEY: 'sk-test-adoption',
      OPENAI_BASE_URL: fake.baseURL,
      IMAGE_FETCH_ALLOW_HOSTS: '127.0.0.1',
      RECOVERY_INTERVAL_MS: '300',
      BRIDGE_POLL_MS: '200',
      VERIFY_INTERVAL_MS: '0',
      POSE_ENABLED: 'false',
    });

    // Before the cut-over: the platform as it runs today. A user with a paid generation still queued (the platform
    // deducted it: 9/10/1) and two stores.
    oldUser = (await driver.signUp({ email: email() })).userId;
    const pre = await driver.b2c.create(oldUser, { modelImageUrl: model(), ageVerified: true });
    if (!pre.ok) throw new Error(pre.message);
    inFlightSession = pre.value.sessionId;
    expect(await userCredits(db.pool, oldUser)).toEqual({ balance: 9, total_in: 10, total_spent: 1 });
    resell = await seedStore(db.pool, { credits: 20, billingMode: 'resell_mode', shopifyProductId: CREDIT_PRODUCT });
    absorb = await seedStore(db.pool, { credits: 5 });
    // ... and a B2B generation of the absorb store, deducted by the platform and queued (4/5/1).
    const b2bImage = storeUploadUrl(absorb.storeId, { origin: new URL(model()).origin, name: 'pre.jpg' });
    images.serve(new URL(b2bImage).pathname, await noisyJpeg(600, 800, 4), 'image/jpeg');
    const b2b = await driver.b2b.createGeneration({ apiKey: absorb.apiKey, body: { image_urls: [b2bImage], age_verified: true } });
    expect(b2b.status).toBe(201);
    inFlightB2b = (b2b.body as { data: { session_id: string } }).data.session_id;
    expect(await storeCredits(db.pool, absorb.storeId)).toEqual({ balance: 4, total_in: 5, total_spent: 1 });

    // The cut-over (credit writes frozen): read-model tables, opening balances, the bridge, the worker.
    expect((await cli(migrateCommand)).code).toBe(0);
    const imported = await cli(importBalancesCommand);
    expect(imported.code).toBe(0);
    expect(JSON.parse(imported.out)).toMatchObject({ imported: 3, sessionsTakenOver: 2, failed: 0 });
    expect(await cli(migrateCommand, ['--install-bridge'])).toEqual({ code: 0, out: 'bridge installed' });
    service = await startService(config, { http: false, worker: true, projections: true }, logger);
  }, 120_000);

  afterAll(async () => {
    await service?.stop();
    await deleteKeys(redis, queueKey);
    redis?.disconnect();
    await fake?.close();
    await images?.close();
    await db?.cleanup();
  });

  it('takes over the paid sessions in flight at the cut-over (B2C, B2B): each runs once, charged once, totals continuous', async () => {
    await untilStatus(inFlightSession, 'completed');
    await untilCredits('old user', () => userCredits(db.pool, oldUser), { balance: 9, total_in: 10, total_spent: 1 });
    await waitFor('the B2B session completed', async () =>
      (await db.pool.query('SELECT status FROM store_generation_sessions WHERE id = $1', [inFlightB2b])).rows[0]?.status === 'completed');
    await untilCredits('absorb store', () => storeCredits(db.pool, absorb.storeId), { balance: 4, total_in: 5, total_spent: 1 });
    await expectVerifyClean();
  });

  it('signup after the cut-over: the balance row exists at once, the bonus reaches the ledger, the first generation runs', async () => {
    const { userId } = await driver.signUp({ email: email() });
    expect(await userCredits(db.pool, userId)).toEqual({ balance: 10, total_in: 10, total_spent: 0 }); // the pending grant
    // The first generation right away (the worker may take it before the bonus command: intake drains the inbox first).
    const r = await driver.b2c.create(userId, { modelImageUrl: model(), ageVerified: true });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    await untilStatus(r.value.sessionId, 'completed');
    await untilCredits('new user', () => userCredits(db.pool, userId), { balance: 9, total_in: 10, total_spent: 1 });
    const grant = (await inbox()).find((c) => c.type === 'grant' && c.payload.account === `user:${userId}`);
    expect(grant).toMatchObject({ outcome: 'applied', payload: { amount: 10, reason: 'signup_bonus', reference: `signup:${userId}` } });
    await expectVerifyClean();
  });

  it('a Paddle top-up grants once per (store, request id, type), even when add_store_credits is called again', async () => {
    const event = { event_id: `evt_${randomUUID()}`, event_type: 'transaction.completed', data: { custom_data: { purchase_type: 'payg', credits: 10, store_id: absorb.storeId } } };
    expect((await driver.paddle.handle(event, { requestId: 'req_topup_1' })).status).toBe(200);
    // A second delivery the webhook's event-id check misses (BUG: concurrent or audit-failed) calls the RPC again.
    await db.pool.query(`SELECT public.add_store_credits($1, 10, 'purchase', 'req_topup_1', 'Paddle PAYG purchase (10 credits)')`, [absorb.storeId]);
    await untilCredits('absorb store', () => storeCredits(db.pool, absorb.storeId), { balance: 14, total_in: 15, total_spent: 1 });
    const grants = (await inbox()).filter((c) => c.type === 'grant' && c.payload.account === `store:${absorb.storeId}`);
    expect(grants.map((g) => [g.payload.reference, g.outcome])).toEqual([['paddle:purchase:req_topup_1', 'applied']]);
    await expectVerifyClean();
  });

  it('a Shopify shopper purchase moves store -> shopper once; a duplicate order and an order above the pool move nothing', async () => {
    const order = (id: number, quantity: number) => ({
      shopDomain: resell.shopDomain,
      payload: { id, email: 'Carol@Example.com', currency: 'USD', line_items: [{ product_id: Number(CREDIT_PRODUCT), quantity, price: '1.50' }] },
    });
    const first = await driver.shopify.orderCreated(order(9001, 5));
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ data: { purchase: { status: 'processed', credits_purchased: 5 } } });
    expect((await driver.shopify.orderCreated(order(9001, 5))).body).toMatchObject({ data: { duplicate: true } });
    // The platform's webhook answers a duplicate itself; the RPC's own answer when called again:
    const again = await db.pool.query(`SELECT status FROM public.process_store_shopper_purchase($1, 'carol@example.com', '9001', 5, 7.5)`, [resell.storeId]);
    expect(again.rows).toEqual([{ status: 'duplicate' }]);
    expect((await driver.shopify.orderCreated(order(9002, 100))).body).toMatchObject({ data: { insufficient_credits: true } });

    await untilCredits('resell store', () => storeCredits(db.pool, resell.storeId), { balance: 15, total_in: 20, total_spent: 5 });
    // Lower-cased: the pool every generation lookup finds (the platform stored the email as given).
    await untilCredits('shopper', () => shopperCredits(db.pool, resell.storeId, 'carol@example.com'), { balance: 5, total_in: 5, total_spent: 0 });
    const transfers = (await inbox()).filter((c) => c.type === 'transfer');
    expect(transfers.map((t) => [t.payload.transferId, t.payload.amount, t.outcome])).toEqual([['9001', 5, 'applied']]);
    expect(JSON.stringify(transfers)).not.toContain('carol@'); // the inbox carries the shopper's hash only
    await expectVerifyClean();
  });

  it('B2C failure: the ledger refunds the hold; nothing else moves credits', async () => {
    const { userId } = await driver.signUp({ email: email() });
    fake.script({ kind: 'moderation' });
    const r = await driver.b2c.create(userId, { modelImageUrl: model(), ageVerified: true });
    if (!r.ok) throw new Error(r.message);
    await untilStatus(r.value.sessionId, 'failed');
    await untilCredits('user after a failure', () => userCredits(db.pool, userId), { balance: 10, total_in: 10, total_spent: 0 });
    await expectVerifyClean();
  });

  it('the cron firing during a slow generation: its refund moves nothing, its status is not applied, the session ends completed', async () => {
    const { userId } = await driver.signUp({ email: email() });
    fake.script({ kind: 'slow_headers', delayMs: 2500 });
    const r = await driver.b2c.create(userId, { modelImageUrl: model(), ageVerified: true });
    if (!r.ok) throw new Error(r.message);
    const sessionId = r.value.sessionId;
    await untilStatus(sessionId, 'processing');
    const cron = await driver.cron.recoverStuckJobs({ now: new Date(Date.now() + 11 * 60_000) });
    expect(cron).toMatchObject({ recoveredCount: 1, refundedCount: 1 }); // it picked the session and called refund_credits
    expect(await sessionStatus(sessionId)).toEqual({ status: 'processing', error_message: null }); // the ledger owns it
    const ignored = (await inbox()).filter((c) => c.type === 'refund_ignored' && c.payload.account === `user:${userId}`);
    expect(ignored.map((c) => c.outcome)).toEqual(['ignored']);
    await untilStatus(sessionId, 'completed');
    await untilCredits('user after the cron', () => userCredits(db.pool, userId), { balance: 9, total_in: 10, total_spent: 1 });
    await expectVerifyClean();
  });

  // A queued generation of an uninstalled store ends failed with its hold returned (billing-modes.test.ts); one already
  // running finishes, as the platform leaves processing sessions alone too.
  it('a store uninstalled while its generation runs: the platform\'s "failed" does not stick, the session ends in the ledger\'s state, charged once', async () => {
    const shop = await seedStore(db.pool, { credits: 3 });
    await untilCredits('seeded store', () => storeCredits(db.pool, shop.storeId), { balance: 3, total_in: 3, total_spent: 0 }); // seeded through the bridge
    const image = storeUploadUrl(shop.storeId, { origin: new URL(model()).origin, name: 'm.jpg' });
    images.serve(new URL(image).pathname, await noisyJpeg(600, 800, 3), 'image/jpeg');
    fake.script({ kind: 'slow_headers', delayMs: 5000 }); // the generation is still running when the store goes
    const created = await driver.b2b.createGeneration({ apiKey: shop.apiKey, body: { image_urls: [image], age_verified: true } });
    expect(created.status).toBe(201);
    const sessionId = (created.body as { data: { session_id: string } }).data.session_id;
    await waitFor('the generation to run', async () => (await db.pool.query(`SELECT 1 FROM projected_sessions WHERE session_id = $1 AND status = 'processing'`, [sessionId])).rowCount === 1);
    expect((await driver.shopify.appUninstalled({ shopDomain: shop.shopDomain })).status).toBe(200);
    const status = async () => (await db.pool.query('SELECT status FROM store_generation_sessions WHERE id = $1', [sessionId])).rows[0]?.status;
    expect(await status()).not.toBe('failed');
    await waitFor('the session completed', async () => (await status()) === 'completed', 30_000);
    await untilCredits('uninstalled store', () => storeCredits(db.pool, shop.storeId), { balance: 2, total_in: 3, total_spent: 1 });
    await expectVerifyClean();
  });

  it('the old deducting producer: its check answers from the ledger, and its refund after a failed push moves nothing', async () => {
    const { userId } = await driver.signUp({ email: email() });
    await untilCredits('signed up', () => userCredits(db.pool, userId), { balance: 10, total_in: 10, total_spent: 0 });
    const failed = await driver.b2c.create(userId, { modelImageUrl: model(), ageVerified: true }, { queuePush: true });
    expect(failed).toMatchObject({ ok: false, code: 'TIMEOUT' });
    expect((await inbox()).filter((c) => c.type === 'refund_ignored' && c.payload.account === `user:${userId}`)).toHaveLength(1);
    expect(await userCredits(db.pool, userId)).toEqual({ balance: 10, total_in: 10, total_spent: 0 });
    // deduct_credits is a check: it answers false for more than the balance and moves nothing.
    const check = await db.pool.query(`SELECT public.deduct_credits($1, 11) AS ok, public.deduct_credits($1, 10) AS ok10`, [userId]);
    expect(check.rows[0]).toEqual({ ok: false, ok10: true });
    expect(await userCredits(db.pool, userId)).toEqual({ balance: 10, total_in: 10, total_spent: 0 });
    await expectVerifyClean();
  });

  it('ends quiescent: every hold settled, every transfer finished, verify --quiescent clean', async () => {
    await expectVerifyClean(['--quiescent']);
    const summary = JSON.parse((await cli(verifyCommand, ['--json', '--quiescent'])).out).summary as { transfers: Record<string, number>; openHolds: number };
    expect(summary).toMatchObject({ openHolds: 0, transfers: { completed: 1 } });
  });
});

// Billing modes (issue 13) against the platform as it is: the platform-schema fixture on real Postgres drives the
// platform's own code paths (B2B create in resell and absorb mode, overage through Paddle, billing-mode switch, Shopify
// uninstall); the tasks it pushes onto real Redis go through this worker's contract, intake and saga into a Postgres
// event store in the platform's database. After each scenario `verifyLedger` (what `wearon verify` runs) is clean.
//
// The platform's facts reach the ledger through the store commands (app/stores.ts) that the bridge's inbox handlers
// call; `bridgeOf` below records, from the platform's rows, what the bridge's triggers record (billing facts from
// `stores`, the pool of each session insert, the overage row, the uninstall).
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPgEventStore, type PgEventStore } from '../../src/adapters/eventstore/postgres/pgEventStore.ts';
import { AggregateRepository } from '../../src/app/aggregates.ts';
import { accountView, grantCredits, statement } from '../../src/app/credits.ts';
import { requestFromTask } from '../../src/app/intake.ts';
import { GenerationSaga } from '../../src/app/saga.ts';
import { recordBillingIntent, recordStoreBilling, storeView, uninstallStore } from '../../src/app/stores.ts';
import { verifyLedger } from '../../src/app/verify.ts';
import { parseTaskPayload } from '../../src/contract.ts';
import { foldGeneration } from '../../src/domain/generation.ts';
import { decodeGenerationEvent } from '../../src/domain/decode.ts';
import { billingModeOf } from '../../src/domain/store.ts';
import { SUBSCRIPTION_TIERS, type SubscriptionTier } from '../../src/domain/events.ts';
import { accountIdOf, generationStream, parseAccountId } from '../../src/domain/streams.ts';
import { silentLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';
import { sagaMetrics } from '../../src/app/sagaMetrics.ts';
import { openPgReadModel } from '../../src/adapters/readmodel/postgres/pgReadModel.ts';
import { PendingIndex } from '../../src/app/pending.ts';
import { InboxConsumer } from '../../src/bridge/consumer.ts';
import { applyBridge } from '../../src/bridge/install.ts';
import { createPlatformDatabase, type PlatformDatabase } from '../support/platform/database.ts';
import { PlatformDriver } from '../support/platform/driver.ts';
import { seedStore, storeUploadUrl } from '../support/platform/seed.ts';
import { MemoryResultStore, ScriptedGenerator, StaticInputImages, type UpstreamOutcome } from '../support/pipelineDoubles.ts';
import { REDIS_URL, deleteKeys, postgresAvailable, redisAvailable } from '../support/services.ts';

const pgOk = await postgresAvailable();
const redisOk = pgOk && (await redisAvailable());
if (!redisOk && process.env.CI !== 'true') console.warn('SKIP billing-modes: PostgreSQL or Redis not reachable');

const OPTIONS = { leaseMs: 60_000, maxAttempts: 2, max429Retries: 1, signedUrlTtlSeconds: 300, leaseMarginMs: 1000 };
const ctx = { requestId: 'test', workerId: 'bridge' };

describe.skipIf(!redisOk && process.env.CI !== 'true')('billing modes on the platform fixture (real Postgres, real Redis)', () => {
  let db: PlatformDatabase;
  let redis: Redis;
  let store: PgEventStore;
  let repo: AggregateRepository;
  let saga: GenerationSaga;
  let driver: PlatformDriver;
  const prefix = `test:billing:${randomUUID()}`;
  const generator = new ScriptedGenerator({ advancePastLease: () => {}, requestShutdown: () => {} });
  const metrics = createMetrics({ defaults: false });

  beforeAll(async () => {
    db = await createPlatformDatabase();
    redis = new Redis(REDIS_URL);
    store = await openPgEventStore({ connectionString: db.url, schema: 'wearon_ledger', logger: silentLogger() });
    repo = new AggregateRepository(store);
    saga = new GenerationSaga({
      repo,
      images: new StaticInputImages(),
      generator,
      results: new MemoryResultStore(),
      workerId: 'w1',
      clock: () => Date.now(),
      logger: silentLogger(),
      observer: sagaMetrics(metrics),
      options: OPTIONS,
    });
    driver = new PlatformDriver({ pool: db.pool, redis, queueKey: `${prefix}:wearon:tasks:generation` });
  }, 60_000);

  afterAll(async () => {
    await store?.close();
    if (redis) {
      await deleteKeys(redis, prefix);
      redis.disconnect();
    }
    await db?.cleanup();
  });

  // ---- what the bridge records, read from the platform's rows ------------------------------------------------------

  const bridgeOf = {
    /** the trigger on `stores`: billing mode, subscription, and an uninstall when status turns inactive */
    async storeRow(storeId: string) {
      const { rows } = await db.pool.query(
        'SELECT billing_mode, subscription_tier, subscription_status, subscription_id, status FROM public.stores WHERE id = $1',
        [storeId],
      );
      const r = rows[0]!;
      const tier = SUBSCRIPTION_TIERS.includes(r.subscription_tier) ? (r.subscription_tier as SubscriptionTier) : null;
      await recordStoreBilling(
        repo,
        storeId,
        { billingMode: billingModeOf(r.billing_mode), subscriptionTier: tier, subscriptionStatus: r.subscription_status, subscriptionId: r.subscription_id },
        ctx,
      );
      if (r.status === 'inactive') return uninstallStore({ repo, store, saga }, storeId, `stores:${storeId}:inactive`, ctx);
      return null;
    },
    /** the trigger on the session insert (pool by the mode at that moment) and on the `overage` history row */
    async request(storeId: string, requestId: string) {
      const { rows: sessions } = await db.pool.query(
        `SELECT s.shopper_email, st.billing_mode FROM public.store_generation_sessions s JOIN public.stores st ON st.id = s.store_id
         WHERE s.store_id = $1 AND s.request_id = $2`,
        [storeId, requestId],
      );
      const s = sessions[0]!;
      const resell = s.billing_mode === 'resell_mode' && s.shopper_email;
      await recordBillingIntent(repo, storeId, { requestId, pool: resell ? 'shopper' : 'store', shopperEmail: resell ? s.shopper_email : null }, ctx);
      const { rows: overage } = await db.pool.query(
        `SELECT description FROM public.store_credit_transactions WHERE store_id = $1 AND request_id = $2 AND type = 'overage'`,
        [storeId, requestId],
      );
      if (overage[0]) {
        const paddleReference = /via Paddle charge (\S+)/.exec(overage[0].description)?.[1] ?? null;
        await recordBillingIntent(repo, storeId, { requestId, pool: 'overage', paddleReference }, ctx);
      }
    },
  };

  // ---- the worker's side ---------------------------------------------------------------------------------------------

  /** Takes the task the platform pushed, as intake does: the contract, then the saga's request; returns the session. */
  async function intake(pushed: string | undefined): Promise<string> {
    const parsed = parseTaskPayload(pushed!);
    if (!parsed.ok) throw new Error(parsed.reason);
    await saga.request(requestFromTask(parsed.task, 1, Date.now()));
    return parsed.task.session_id;
  }

  async function generation(sessionId: string) {
    const recorded = await store.readStream(generationStream(sessionId), { maxCount: 100 });
    const events = recorded.map(decodeGenerationEvent);
    return { state: foldGeneration(events), events };
  }

  const balance = async (account: string) => (await accountView(repo, account)).balance;
  const storeAccount = (storeId: string) => `store:${storeId}`;
  const shopperAccount = (storeId: string, email: string) => accountIdOf(parseAccountId(`shopper:${storeId}:${email}`));

  async function expectVerifyClean() {
    const { violations, summary } = await verifyLedger(store, { quiescent: true });
    expect(violations).toEqual([]);
    return summary;
  }

  /** A B2B create as the platform's route runs it; the prompt keys the generator's script. */
  async function create(apiKey: string, o: { shopperEmail?: string; script?: UpstreamOutcome[]; storeId: string; fail?: { overageCharge?: boolean } }) {
    const prompt = `p-${randomUUID()}`;
    generator.script(prompt, o.script ?? ['ok']);
    const requestId = `req_${randomUUID()}`;
    const r = await driver.b2b.createGeneration({
      apiKey,
      requestId,
      ...(o.shopperEmail ? { shopperEmail: o.shopperEmail } : {}),
      body: { image_urls: [storeUploadUrl(o.storeId)], prompt, age_verified: true },
      ...(o.fail ? { fail: o.fail } : {}),
    });
    return { ...r, requestId };
  }

  /** Seeds a store and mirrors its pool into the ledger (the opening balance `import-balances` records). */
  async function storeWith(o: Parameters<typeof seedStore>[1] & { ledgerCredits?: number; shoppers?: Record<string, number> }) {
    const seeded = await seedStore(db.pool, o);
    if (o.ledgerCredits) await grantCredits(repo, storeAccount(seeded.storeId), { amount: o.ledgerCredits, reason: 'opening_balance', reference: 'import' }, ctx);
    for (const [email, amount] of Object.entries(o.shoppers ?? {})) {
      await grantCredits(repo, shopperAccount(seeded.storeId, email), { amount, reason: 'opening_balance', reference: 'import' }, ctx);
    }
    await bridgeOf.storeRow(seeded.storeId);
    return seeded;
  }

  it('resell, shopper named by the platform (its current payload has no shopper field): the shopper pays, once; the store pool is untouched', async () => {
    const email = 'carol@example.com';
    const s = await storeWith({ billingMode: 'resell_mode', ledgerCredits: 5, shoppers: { [email]: 3 } });
    // the platform's shopper pool, so its own check passes
    await db.pool.query('INSERT INTO public.store_shopper_credits (store_id, shopper_email, balance, total_purchased) VALUES ($1, $2, 3, 3)', [s.storeId, email]);
    const r = await create(s.apiKey, { storeId: s.storeId, shopperEmail: email });
    expect(r.status).toBe(201);
    expect(JSON.parse(r.pushed!)).not.toHaveProperty('shopper_email');
    await bridgeOf.request(s.storeId, r.requestId);
    const sessionId = await intake(r.pushed);
    expect(await saga.drive(sessionId)).toEqual({ kind: 'settled', status: 'completed' });
    expect(await balance(shopperAccount(s.storeId, email))).toBe(2);
    expect(await balance(storeAccount(s.storeId))).toBe(5);
    // a duplicate delivery of the same task charges nothing more
    await intake(r.pushed);
    await saga.drive(sessionId);
    expect(await balance(shopperAccount(s.storeId, email))).toBe(2);
    await expectVerifyClean();
  });

  it('resell, task names the shopper (shopper_email, the contract field): the shopper pays', async () => {
    const email = 'dan@example.com';
    const s = await storeWith({ billingMode: 'resell_mode', ledgerCredits: 5, shoppers: { [email]: 1 } });
    const task = { task_id: randomUUID(), channel: 'b2b', store_id: s.storeId, shopper_email: email, session_id: randomUUID(), image_urls: ['https://x.test/m.jpg'], prompt: 'p', request_id: `req_${randomUUID()}`, version: 1, created_at: new Date().toISOString() };
    const sessionId = await intake(JSON.stringify(task));
    expect((await saga.drive(sessionId)).kind).toBe('settled');
    expect(await balance(shopperAccount(s.storeId, email))).toBe(0);
    expect(await balance(storeAccount(s.storeId))).toBe(5);
    await expectVerifyClean();
  });

  it('resell without a shopper identity (no shopper_email, no intent): rejected with the reason, nothing charged, never the store pool', async () => {
    const s = await storeWith({ billingMode: 'resell_mode', ledgerCredits: 5 });
    const task = { task_id: randomUUID(), channel: 'b2b', store_id: s.storeId, session_id: randomUUID(), image_urls: ['https://x.test/m.jpg'], prompt: 'p', request_id: `req_${randomUUID()}`, version: 1, created_at: new Date().toISOString() };
    const sessionId = await intake(JSON.stringify(task));
    expect(await saga.drive(sessionId)).toEqual({ kind: 'settled', status: 'rejected' });
    const { events } = await generation(sessionId);
    expect(events.at(-1)).toMatchObject({ type: 'GenerationRejected', data: { code: 'shopper_required', message: expect.stringContaining('resell mode') } });
    expect(await balance(storeAccount(s.storeId))).toBe(5);
    expect((await statement(store, storeAccount(s.storeId))).lines.map((l) => l.type)).toEqual(['CreditsGranted']);
    await expectVerifyClean();
  });

  it('overage billed by the platform (empty pool, active growth plan), success: the charge is recorded with the Paddle reference, no credit moves', async () => {
    const s = await storeWith({ subscriptionTier: 'growth', subscriptionId: `sub_${randomUUID().slice(0, 8)}`, subscriptionStatus: 'active' });
    const r = await create(s.apiKey, { storeId: s.storeId });
    expect(r.status).toBe(201);
    await bridgeOf.request(s.storeId, r.requestId);
    const sessionId = await intake(r.pushed);
    expect(await saga.drive(sessionId)).toEqual({ kind: 'settled', status: 'completed' });
    const lines = (await statement(store, storeAccount(s.storeId))).lines;
    expect(lines.map((l) => [l.type, l.amount, l.balance, l.reference])).toEqual([
      ['OverageCharged', 0, 0, driver.paddleCalls.at(-1) ? expect.any(String) : null],
      ['OverageCaptured', 0, 0, null],
    ]);
    const view = await accountView(repo, storeAccount(s.storeId));
    expect([view.balance, view.granted, view.captured]).toEqual([0, 0, 0]);
    const summary = await expectVerifyClean();
    expect(summary.overage_charged).toBeGreaterThanOrEqual(1);
  });

  it('overage generation that fails: a refund due with the Paddle reference, which finance sees on the statement', async () => {
    const sub = `sub_${randomUUID().slice(0, 8)}`;
    const s = await storeWith({ subscriptionTier: 'scale', subscriptionId: sub, subscriptionStatus: 'trialing' });
    const r = await create(s.apiKey, { storeId: s.storeId, script: ['moderation'] });
    await bridgeOf.request(s.storeId, r.requestId);
    const sessionId = await intake(r.pushed);
    expect(await saga.drive(sessionId)).toEqual({ kind: 'settled', status: 'failed' });
    const lines = (await statement(store, storeAccount(s.storeId))).lines;
    expect(lines.map((l) => [l.type, l.amount, l.reason, l.generation_id])).toEqual([
      ['OverageCharged', 0, null, sessionId],
      ['OverageRefundDue', 0, 'generation_failed', sessionId],
    ]);
    expect(lines[1]!.reference).toBe(sub); // Paddle answers a charge with the subscription (fixture README)
    expect(await balance(storeAccount(s.storeId))).toBe(0);
    // the metric finance's alert (WearonOverageRefundDue) watches
    expect(await metrics.registry.getSingleMetricAsString('wearon_overage_generations_total')).toMatch(/outcome="refund_due"} 1\b/);
    await expectVerifyClean();
  });

  it('overage from the store facts alone (no intent: a producer that does not bill Paddle itself): empty pool + subscription -> overage; no subscription -> insufficient', async () => {
    const subscribed = await storeWith({ subscriptionTier: 'starter', subscriptionId: 'sub_s', subscriptionStatus: 'active' });
    const bare = await storeWith({});
    const task = (storeId: string) => JSON.stringify({ task_id: randomUUID(), channel: 'b2b', store_id: storeId, session_id: randomUUID(), image_urls: ['https://x.test/m.jpg'], prompt: 'p', request_id: `req_${randomUUID()}`, version: 1, created_at: new Date().toISOString() });
    const a = await intake(task(subscribed.storeId));
    const b = await intake(task(bare.storeId));
    expect(await saga.drive(a)).toEqual({ kind: 'settled', status: 'completed' });
    expect(await saga.drive(b)).toEqual({ kind: 'settled', status: 'rejected' });
    expect((await generation(b)).events.at(-1)).toMatchObject({ data: { code: 'insufficient_credits' } });
    expect((await statement(store, storeAccount(subscribed.storeId))).lines.map((l) => l.type)).toEqual(['OverageCharged', 'OverageCaptured']);
    await expectVerifyClean();
  });

  it('mode switch mid-flight: a generation accepted under one mode keeps its pool; the next follows the new mode', async () => {
    const email = 'erin@example.com';
    const s = await storeWith({ billingMode: 'absorb_mode', credits: 3, ledgerCredits: 3, shoppers: { [email]: 3 } });
    await db.pool.query('INSERT INTO public.store_shopper_credits (store_id, shopper_email, balance, total_purchased) VALUES ($1, $2, 3, 3)', [s.storeId, email]);
    // absorb: queued, not yet driven
    const first = await create(s.apiKey, { storeId: s.storeId, shopperEmail: email });
    await bridgeOf.request(s.storeId, first.requestId);
    const firstSession = await intake(first.pushed);
    await saga.charge(firstSession);
    // the merchant switches to resell while the first is in flight
    await driver.merchant.updateStoreConfig(s.storeId, 'resell_mode', 2);
    await bridgeOf.storeRow(s.storeId);
    const second = await create(s.apiKey, { storeId: s.storeId, shopperEmail: email });
    await bridgeOf.request(s.storeId, second.requestId);
    const secondSession = await intake(second.pushed);
    expect((await saga.drive(firstSession)).kind).toBe('settled');
    expect((await saga.drive(secondSession)).kind).toBe('settled');
    expect(await balance(storeAccount(s.storeId))).toBe(2); // the first, charged under absorb
    expect(await balance(shopperAccount(s.storeId, email))).toBe(2); // the second, under resell
    // and a task accepted under absorb but charged after the switch still charges the store, never the shopper
    expect((await generation(firstSession)).state.request!.account).toBe(storeAccount(s.storeId));
    await expectVerifyClean();
  });

  it('uninstall with queued work: queued generations end failed, holds back to the pool that paid; later tasks rejected with the reason', async () => {
    const email = 'finn@example.com';
    const s = await storeWith({ billingMode: 'absorb_mode', credits: 4, ledgerCredits: 4, shoppers: { [email]: 2 } });
    const absorb = await create(s.apiKey, { storeId: s.storeId });
    await bridgeOf.request(s.storeId, absorb.requestId);
    const queuedStore = await intake(absorb.pushed);
    await saga.charge(queuedStore);
    const resellTask = { task_id: randomUUID(), channel: 'b2b', store_id: s.storeId, shopper_email: email, session_id: randomUUID(), image_urls: ['https://x.test/m.jpg'], prompt: 'p', request_id: `req_${randomUUID()}`, version: 1, created_at: new Date().toISOString() };
    const queuedShopper = await intake(JSON.stringify(resellTask));
    await saga.charge(queuedShopper);
    expect([await balance(storeAccount(s.storeId)), await balance(shopperAccount(s.storeId, email))]).toEqual([3, 1]);

    const reply = await driver.shopify.appUninstalled({ shopDomain: s.shopDomain });
    expect(reply.status).toBe(200);
    const { rows } = await db.pool.query(`SELECT status FROM public.store_generation_sessions WHERE store_id = $1`, [s.storeId]);
    expect(rows.map((r) => r.status)).toEqual(['failed']); // the platform's own marking (no refund there)
    const uninstall = await bridgeOf.storeRow(s.storeId);
    expect(uninstall?.ended).toEqual({ [queuedStore]: 'failed', [queuedShopper]: 'failed' });
    expect((await generation(queuedStore)).events.at(-1)).toMatchObject({ type: 'GenerationFailed', data: { code: 'store_uninstalled' } });
    expect([await balance(storeAccount(s.storeId)), await balance(shopperAccount(s.storeId, email))]).toEqual([4, 2]);

    const later = await intake(JSON.stringify({ ...resellTask, session_id: randomUUID(), task_id: randomUUID() }));
    expect(await saga.drive(later)).toEqual({ kind: 'settled', status: 'rejected' });
    expect((await generation(later)).events.at(-1)).toMatchObject({ data: { code: 'store_uninstalled', message: expect.stringContaining('uninstalled') } });
    expect((await storeView(repo, s.storeId)).uninstalled_at).not.toBeNull();
    await expectVerifyClean();
  });

  it("the platform's current producer during the transition: a resell generation is charged once, to the shopper, whatever the order of intent and task", async () => {
    const email = 'gus@example.com';
    const s = await storeWith({ billingMode: 'resell_mode', ledgerCredits: 5, shoppers: { [email]: 5 } });
    await db.pool.query('INSERT INTO public.store_shopper_credits (store_id, shopper_email, balance, total_purchased) VALUES ($1, $2, 5, 5)', [s.storeId, email]);
    const sessions: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await create(s.apiKey, { storeId: s.storeId, shopperEmail: email });
      await bridgeOf.request(s.storeId, r.requestId);
      const sessionId = await intake(r.pushed);
      await intake(r.pushed); // re-driven delivery
      sessions.push(sessionId);
    }
    for (const id of sessions) expect((await saga.drive(id)).kind).toBe('settled');
    expect(await balance(shopperAccount(s.storeId, email))).toBe(2);
    expect(await balance(storeAccount(s.storeId))).toBe(5);
    const deductions = (await statement(store, shopperAccount(s.storeId, email))).lines.filter((l) => l.type === 'CreditDeducted');
    expect(deductions.map((l) => l.generation_id).sort()).toEqual([...sessions].sort());
    await expectVerifyClean();
  });
});

// ---- the same through the bridge: the platform's triggers record facts and intents in the inbox, the worker applies them

describe.skipIf(!redisOk && process.env.CI !== 'true')('billing modes through the bridge (platform fixture with the bridge installed)', () => {
  let db: PlatformDatabase;
  let redis: Redis;
  let store: PgEventStore;
  let repo: AggregateRepository;
  let saga: GenerationSaga;
  let driver: PlatformDriver;
  let inbox: InboxConsumer;
  const prefix = `test:billing-bridge:${randomUUID()}`;
  const generator = new ScriptedGenerator({ advancePastLease: () => {}, requestShutdown: () => {} });
  const ctx = { requestId: 'test', workerId: 'import' };

  beforeAll(async () => {
    db = await createPlatformDatabase();
    const readModel = openPgReadModel({ connectionString: db.url });
    await readModel.migrate();
    await readModel.close();
    await applyBridge(db.url, 'up');
    redis = new Redis(REDIS_URL);
    store = await openPgEventStore({ connectionString: db.url, schema: 'wearon_ledger', logger: silentLogger() });
    repo = new AggregateRepository(store);
    inbox = new InboxConsumer({ connectionString: db.url, deps: { repo, workerId: 'w1', clock: () => Date.now(), logger: silentLogger() }, logger: silentLogger() });
    saga = new GenerationSaga({
      repo,
      images: new StaticInputImages(),
      generator,
      results: new MemoryResultStore(),
      workerId: 'w1',
      clock: () => Date.now(),
      logger: silentLogger(),
      options: OPTIONS,
      // as the service wires it (compose/service.ts)
      pendingCredits: async () => (await inbox.drainNow()).applied > 0,
    });
    driver = new PlatformDriver({ pool: db.pool, redis, queueKey: `${prefix}:wearon:tasks:generation` });
  }, 60_000);

  afterAll(async () => {
    await inbox?.stop();
    await store?.close();
    if (redis) {
      await deleteKeys(redis, prefix);
      redis.disconnect();
    }
    await db?.cleanup();
  });

  const balance = async (account: string) => (await accountView(repo, account)).balance;
  const shopperAccount = (storeId: string, email: string) => accountIdOf(parseAccountId(`shopper:${storeId}:${email}`));

  async function intake(pushed: string | undefined): Promise<string> {
    const parsed = parseTaskPayload(pushed!);
    if (!parsed.ok) throw new Error(parsed.reason);
    await saga.request(requestFromTask(parsed.task, 1, Date.now()));
    return parsed.task.session_id;
  }

  /** `wearon verify`'s ledger part, and every inbox command applied (none rejected, none left pending). */
  async function expectClean() {
    await inbox.drainNow();
    expect((await verifyLedger(store, { quiescent: true })).violations).toEqual([]);
    const { rows } = await db.pool.query(`SELECT type, outcome, reason FROM wearon.credit_inbox WHERE outcome IS DISTINCT FROM 'applied' AND outcome IS DISTINCT FROM 'ignored'`);
    expect(rows).toEqual([]);
  }

  /** A store as after import-balances: the platform's published pools and the ledger's opening balances agree. */
  async function storeWith(o: Parameters<typeof seedStore>[1] & { pool?: number; shoppers?: Record<string, number> }) {
    const s = await seedStore(db.pool, o);
    if (o.pool) {
      await db.pool.query('UPDATE public.store_credits SET balance = $2, total_purchased = $2 WHERE store_id = $1', [s.storeId, o.pool]);
      await grantCredits(repo, `store:${s.storeId}`, { amount: o.pool, reason: 'opening_balance', reference: 'import' }, ctx);
    }
    for (const [email, amount] of Object.entries(o.shoppers ?? {})) {
      await db.pool.query('INSERT INTO public.store_shopper_credits (store_id, shopper_email, balance, total_purchased) VALUES ($1, $2, $3, $3)', [s.storeId, email, amount]);
      await grantCredits(repo, shopperAccount(s.storeId, email), { amount, reason: 'opening_balance', reference: 'import' }, ctx);
    }
    return s;
  }

  async function create(s: { apiKey: string; storeId: string }, o: { shopperEmail?: string; script?: UpstreamOutcome[] } = {}) {
    const prompt = `p-${randomUUID()}`;
    generator.script(prompt, o.script ?? ['ok']);
    const r = await driver.b2b.createGeneration({
      apiKey: s.apiKey,
      ...(o.shopperEmail ? { shopperEmail: o.shopperEmail } : {}),
      body: { image_urls: [storeUploadUrl(s.storeId)], prompt, age_verified: true },
    });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    return r;
  }

  it("resell from the platform's current producer: its deduction is a check, the ledger charges the shopper once; no double charge", async () => {
    const email = 'hana@example.com';
    const s = await storeWith({ billingMode: 'resell_mode', pool: 5, shoppers: { [email]: 3 } });
    const r = await create(s, { shopperEmail: email });
    const sessionId = await intake(r.pushed); // the intent arrives through the inbox, drained at intake
    expect(await saga.drive(sessionId)).toEqual({ kind: 'settled', status: 'completed' });
    expect(await balance(shopperAccount(s.storeId, email))).toBe(2);
    expect(await balance(`store:${s.storeId}`)).toBe(5);
    // the platform moved nothing itself (the projection, not running here, publishes the ledger's balances)
    const { rows } = await db.pool.query('SELECT balance FROM public.store_shopper_credits WHERE store_id = $1', [s.storeId]);
    expect(rows).toEqual([{ balance: 3 }]);
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM public.store_credit_transactions WHERE store_id = $1 AND type = 'deduction'`, [s.storeId])).rows[0].n).toBe(0);
    await expectClean();
  });

  it('resell task with no shopper and no intent (a producer outside the route): rejected shopper_required, nothing charged', async () => {
    const s = await storeWith({ billingMode: 'resell_mode', pool: 5 });
    const task = { task_id: randomUUID(), channel: 'b2b', store_id: s.storeId, session_id: randomUUID(), image_urls: ['https://x.test/m.jpg'], prompt: 'p', request_id: `req_${randomUUID()}`, version: 1, created_at: new Date().toISOString() };
    const sessionId = await intake(JSON.stringify(task));
    expect(await saga.drive(sessionId)).toEqual({ kind: 'settled', status: 'rejected' });
    expect(await balance(`store:${s.storeId}`)).toBe(5);
    await expectClean();
  });

  it('overage billed through Paddle by the route: the overage row becomes the intent; success captured, failure owes a refund', async () => {
    const sub = `sub_${randomUUID().slice(0, 8)}`;
    const s = await storeWith({ subscriptionTier: 'growth', subscriptionId: sub, subscriptionStatus: 'active' });
    const ok = await intake((await create(s)).pushed);
    const failed = await intake((await create(s, { script: ['5xx'] })).pushed);
    expect(await saga.drive(ok)).toEqual({ kind: 'settled', status: 'completed' });
    expect(await saga.drive(failed)).toEqual({ kind: 'settled', status: 'failed' });
    const lines = (await statement(store, `store:${s.storeId}`)).lines;
    expect(lines.map((l) => [l.type, l.generation_id, l.reference, l.amount])).toEqual([
      ['OverageCharged', ok, sub, 0],
      ['OverageCaptured', ok, null, 0],
      ['OverageCharged', failed, sub, 0],
      ['OverageRefundDue', failed, sub, 0],
    ]);
    await expectClean();
  });

  it('mode switch mid-flight (merchant updateStoreConfig): in-flight work keeps its pool, the next request follows the new mode', async () => {
    const email = 'ida@example.com';
    const s = await storeWith({ billingMode: 'absorb_mode', pool: 3, shoppers: { [email]: 3 } });
    const first = await intake((await create(s, { shopperEmail: email })).pushed);
    await saga.charge(first);
    await driver.merchant.updateStoreConfig(s.storeId, 'resell_mode', 2);
    const second = await intake((await create(s, { shopperEmail: email })).pushed);
    for (const id of [first, second]) expect((await saga.drive(id)).kind).toBe('settled');
    expect([await balance(`store:${s.storeId}`), await balance(shopperAccount(s.storeId, email))]).toEqual([2, 2]);
    await expectClean();
  });

  it("Shopify uninstall (cleanupStore) with queued work: the worker's recovery ends them failed and returns the holds; later tasks rejected", async () => {
    const s = await storeWith({ billingMode: 'absorb_mode', pool: 4 });
    const queued = [await intake((await create(s)).pushed), await intake((await create(s)).pushed)];
    for (const id of queued) await saga.charge(id);
    expect(await balance(`store:${s.storeId}`)).toBe(2);
    const reply = await driver.shopify.appUninstalled({ shopDomain: s.shopDomain });
    expect(reply.status).toBe(200);
    await inbox.drainNow();
    // the worker's recovery pass: the pending index made the store's queued generations due at once
    const due = (await PendingIndex.fromLog(store)).due(Date.now(), false);
    expect(due).toEqual(expect.arrayContaining(queued));
    for (const id of due) await saga.drive(id);
    expect(await balance(`store:${s.storeId}`)).toBe(4);
    const later = { task_id: randomUUID(), channel: 'b2b', store_id: s.storeId, session_id: randomUUID(), image_urls: ['https://x.test/m.jpg'], prompt: 'p', request_id: `req_${randomUUID()}`, version: 1, created_at: new Date().toISOString() };
    const laterId = await intake(JSON.stringify(later));
    expect(await saga.drive(laterId)).toEqual({ kind: 'settled', status: 'rejected' });
    expect(await balance(`store:${s.storeId}`)).toBe(4);
    await expectClean();
  });

  it('a store that existed before the install has its facts recorded by the install', async () => {
    await applyBridge(db.url, 'down').catch(async () => {
      await inbox.drainNow();
      await applyBridge(db.url, 'down');
    });
    const s = await seedStore(db.pool, { billingMode: 'resell_mode' }); // no bridge: nothing recorded
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM wearon.credit_inbox WHERE payload ->> 'store_id' = $1`, [s.storeId])).rows[0].n).toBe(0);
    await applyBridge(db.url, 'up');
    await inbox.drainNow();
    expect((await storeView(repo, s.storeId)).billing).toMatchObject({ billingMode: 'resell' });
    await applyBridge(db.url, 'up'); // a re-install records the same facts again: applied, no new event
    await inbox.drainNow();
    expect((await storeView(repo, s.storeId)).revision).toBe(0);
    await expectClean();
  });

  it('the bridge migration installs and removes the billing triggers with the rest', async () => {
    const triggers = async () =>
      (await db.pool.query(`SELECT tgname FROM pg_trigger WHERE tgname IN ('wearon_store_billing', 'wearon_session_intent', 'wearon_overage_intent') ORDER BY 1`)).rows.map((r) => r.tgname);
    expect(await triggers()).toEqual(['wearon_overage_intent', 'wearon_session_intent', 'wearon_store_billing']);
    await inbox.drainNow();
    await applyBridge(db.url, 'down');
    expect(await triggers()).toEqual([]);
    await applyBridge(db.url, 'up');
    expect(await triggers()).toHaveLength(3);
  });
});

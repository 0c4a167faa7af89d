// The platform-schema fixture (tests/support/platform) against real Postgres and Redis: its schema, RPCs, RLS and
// triggers behave as the facts in original-system.md say, and its driver runs the platform's code paths (the
// producer's payload parses with this project's contract). Issues 13 and 16 build their tests on it.
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accountOfTask, parseTaskPayload } from '../../src/contract.ts';
import { createPlatformDatabase, type PlatformDatabase } from '../support/platform/database.ts';
import { PlatformDriver } from '../support/platform/driver.ts';
import { PostgrestStandIn, SERVICE_ROLE, asUser } from '../support/platform/rest.ts';
import { seedStore, shopperCredits, storeCredits, storeHistory, storeUploadUrl, userCredits, userHistory } from '../support/platform/seed.ts';
import { REDIS_URL, deleteKeys, postgresAvailable, redisAvailable } from '../support/services.ts';
import { waitFor } from '../support/deadlines.ts';

const pgOk = await postgresAvailable();
const redisOk = pgOk && (await redisAvailable());

const email = () => `u-${randomUUID().slice(0, 8)}@example.com`;
const sqlError = (e: unknown) => (e instanceof pg.DatabaseError ? { code: e.code, message: e.message } : { code: undefined, message: String(e) });

/** Runs fn and returns the Postgres error it raised (fails the test if it did not raise). */
async function raises(fn: () => Promise<unknown>): Promise<{ code: string | undefined; message: string }> {
  try {
    await fn();
  } catch (e) {
    return sqlError(e);
  }
  throw new Error('expected a database error');
}

describe.skipIf(!pgOk)('platform fixture: schema, RPCs, RLS (real Postgres)', () => {
  let db: PlatformDatabase;
  beforeAll(async () => {
    db = await createPlatformDatabase();
  });
  afterAll(async () => {
    await db?.cleanup();
  });

  const signUp = async (address = email()) => (await new PlatformDriver({ pool: db.pool }).signUp({ email: address, displayName: 'Ada' })).userId;

  it('signup (insert into auth.users) creates the profile, 10/10/0 credits, one signup_bonus row, the user role and analytics', async () => {
    const address = email();
    const userId = await signUp(address);
    expect(await userCredits(db.pool, userId)).toEqual({ balance: 10, total_in: 10, total_spent: 0 });
    expect(await userHistory(db.pool, userId)).toEqual([{ amount: 10, type: 'signup_bonus', description: 'Welcome bonus: 10 free credits' }]);
    const { rows: users } = await db.pool.query('SELECT email, display_name FROM public.users WHERE id = $1', [userId]);
    expect(users).toEqual([{ email: address, display_name: 'Ada' }]);
    const { rows: roles } = await db.pool.query('SELECT public.user_has_role($1, $2) AS is_user, public.user_has_role($1, $3) AS is_admin', [
      userId,
      'user',
      'admin',
    ]);
    expect(roles).toEqual([{ is_user: true, is_admin: false }]);
    const { rows: events } = await db.pool.query('SELECT event_type, metadata FROM public.analytics_events WHERE user_id = $1', [userId]);
    expect(events).toEqual([{ event_type: 'user_signup', metadata: { email: address } }]);
  });

  it('deduct_credits answers false when short and writes nothing; true deducts and logs a generation row', async () => {
    const userId = await signUp();
    const call = (amount: number) => db.pool.query('SELECT public.deduct_credits($1, $2) AS ok', [userId, amount]).then((r) => r.rows[0].ok);
    expect(await call(11)).toBe(false);
    expect(await userCredits(db.pool, userId)).toEqual({ balance: 10, total_in: 10, total_spent: 0 });
    expect(await userHistory(db.pool, userId)).toHaveLength(1);
    expect(await call(3)).toBe(true);
    expect(await userCredits(db.pool, userId)).toEqual({ balance: 7, total_in: 10, total_spent: 3 });
    expect((await userHistory(db.pool, userId)).at(-1)).toEqual({ amount: -3, type: 'generation', description: 'Image generation' });
    expect(await raises(() => db.pool.query('SELECT public.deduct_credits($1, 1)', [randomUUID()]))).toMatchObject({
      message: 'User credits not found',
    });
  });

  it('refund_credits mints: no check that anything was deducted, no idempotency', async () => {
    const userId = await signUp();
    for (let i = 0; i < 2; i++) await db.pool.query(`SELECT public.refund_credits($1, 1, 'Queue error - refund')`, [userId]);
    expect(await userCredits(db.pool, userId)).toEqual({ balance: 12, total_in: 10, total_spent: -2 });
    expect((await userHistory(db.pool, userId)).filter((r) => r.type === 'refund')).toHaveLength(2);
    // No user_credits row: the update touches nothing and no error is raised until the history FK refuses the row.
    expect(await raises(() => db.pool.query('SELECT public.refund_credits($1, 1)', [randomUUID()]))).toMatchObject({ code: '23503' });
  });

  it('deduct_store_credits: false when short; a repeated request id raises unique_violation and rolls the call back', async () => {
    const { storeId } = await seedStore(db.pool, { credits: 2 });
    const deduct = (requestId: string, amount = 1) =>
      db.pool.query(`SELECT public.deduct_store_credits($1, $2, $3, 'B2B generation') AS ok`, [storeId, amount, requestId]).then((r) => r.rows[0].ok);
    expect(await deduct('req_a')).toBe(true);
    expect(await raises(() => deduct('req_a'))).toMatchObject({
      code: '23505',
      message: expect.stringContaining('unique_credit_transaction_request'),
    });
    expect(await storeCredits(db.pool, storeId)).toEqual({ balance: 1, total_in: 2, total_spent: 1 });
    expect(await deduct('req_b', 5)).toBe(false);
    expect(await storeCredits(db.pool, storeId)).toEqual({ balance: 1, total_in: 2, total_spent: 1 });
    expect((await storeHistory(db.pool, storeId)).map((r) => [r.amount, r.type, r.request_id])).toEqual([
      [2, 'purchase', expect.stringMatching(/^seed:/)],
      [-1, 'deduction', 'req_a'],
    ]);
    expect(await raises(() => deduct('req_c', 0))).toMatchObject({ message: 'Amount must be a positive integer, got: 0' });
  });

  it('add_store_credits is idempotent by (store, request_id, type); a NULL request id is never deduplicated', async () => {
    const { storeId } = await seedStore(db.pool);
    const add = (type: string, requestId: string | null, amount = 10) =>
      db.pool.query('SELECT public.add_store_credits($1, $2, $3, $4)', [storeId, amount, type, requestId]);
    await add('purchase', 'txn_1');
    await add('purchase', 'txn_1');
    expect(await storeCredits(db.pool, storeId)).toEqual({ balance: 10, total_in: 10, total_spent: 0 });
    await add('subscription', 'txn_1'); // another type: another grant
    await add('purchase', null);
    await add('purchase', null);
    expect(await storeCredits(db.pool, storeId)).toEqual({ balance: 40, total_in: 40, total_spent: 0 });
    expect(await raises(() => add('refund', 'txn_2'))).toMatchObject({ message: 'Unsupported credit transaction type: refund' });
    expect(await raises(() => add('purchase', 'txn_3', 0))).toMatchObject({ message: 'Credit amount must be positive' });
  });

  it('process_store_shopper_purchase: processed moves credits store -> shopper, duplicate and insufficient move nothing', async () => {
    const { storeId } = await seedStore(db.pool, { billingMode: 'resell_mode', credits: 10 });
    const buy = (order: string, credits: number, requestId: string | null = null) =>
      db.pool
        .query('SELECT status, shopper_email, credits_purchased FROM public.process_store_shopper_purchase($1, $2, $3, $4, $5, $6, $7)', [
          storeId,
          'Carol@Example.com',
          order,
          credits,
          9.99,
          null,
          requestId,
        ])
        .then((r) => r.rows);
    expect(await buy('1001', 4)).toEqual([{ status: 'processed', shopper_email: 'Carol@Example.com', credits_purchased: 4 }]);
    expect(await buy('1001', 4)).toEqual([{ status: 'duplicate', shopper_email: 'Carol@Example.com', credits_purchased: 4 }]);
    expect(await buy('1002', 40, 'req_big')).toEqual([{ status: 'insufficient', shopper_email: 'Carol@Example.com', credits_purchased: 40 }]);
    expect(await storeCredits(db.pool, storeId)).toEqual({ balance: 6, total_in: 10, total_spent: 4 });
    // Stored as given: the 016 generation RPCs look the shopper up by lower(trim(email)) and will not find this row.
    expect(await shopperCredits(db.pool, storeId, 'Carol@Example.com')).toEqual({ balance: 4, total_in: 4, total_spent: 0 });
    expect(await shopperCredits(db.pool, storeId, 'carol@example.com')).toBeNull();
    expect((await storeHistory(db.pool, storeId)).slice(1)).toEqual([
      { amount: -4, type: 'deduction', request_id: '1001', description: 'Shopper credit purchase for order 1001' },
    ]);
    const { rows } = await db.pool.query('SELECT count(*)::int AS n FROM public.store_shopper_purchases WHERE store_id = $1', [storeId]);
    expect(rows[0].n).toBe(1);
  });

  it('process_store_shopper_purchase: of two concurrent calls for one order, one is processed and the other refunds its deduction', async () => {
    const { storeId } = await seedStore(db.pool, { billingMode: 'resell_mode', credits: 10 });
    const a = new pg.Client({ connectionString: db.url });
    const b = new pg.Client({ connectionString: db.url });
    await a.connect();
    await b.connect();
    try {
      const call = (c: pg.Client, requestId: string) =>
        c.query('SELECT status FROM public.process_store_shopper_purchase($1, $2, $3, 3, 5, $4, $5)', [
          storeId,
          'dan@example.com',
          '2001',
          'USD',
          requestId,
        ]);
      await a.query('BEGIN');
      expect((await call(a, 'req_first')).rows).toEqual([{ status: 'processed' }]);
      const bPid = (await b.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      const second = call(b, 'req_second'); // blocks on the store pool row locked by `a`
      await waitFor('the second call to wait for the first one\'s lock', async () => {
        const { rows } = await db.pool.query(`SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1`, [bPid]);
        return rows[0]?.wait_event_type === 'Lock';
      }, 10_000);
      await a.query('COMMIT');
      expect((await second).rows).toEqual([{ status: 'duplicate' }]);
    } finally {
      await a.end();
      await b.end();
    }
    expect(await storeCredits(db.pool, storeId)).toEqual({ balance: 7, total_in: 10, total_spent: 3 });
    expect(await shopperCredits(db.pool, storeId, 'dan@example.com')).toEqual({ balance: 3, total_in: 3, total_spent: 0 });
    expect((await storeHistory(db.pool, storeId)).slice(1).map((r) => [r.amount, r.type, r.request_id])).toEqual([
      [-3, 'deduction', 'req_first'],
      [-3, 'deduction', 'req_second'],
      [3, 'refund', 'req_second'],
    ]);
  });

  it('as deployed, migration 011 fails on every call (ambiguous column), so the Shopify order webhook moves nothing', async () => {
    const deployed = await createPlatformDatabase({ shopperPurchaseRpc: 'as-deployed' });
    try {
      const { storeId, shopDomain } = await seedStore(deployed.pool, { billingMode: 'resell_mode', shopifyProductId: '777', credits: 10 });
      expect(
        await raises(() => deployed.pool.query(`SELECT * FROM public.process_store_shopper_purchase($1, 'e@example.com', '3001', 1, 1)`, [storeId])),
      ).toMatchObject({ code: '42702', message: 'column reference "shopify_order_id" is ambiguous' });
      const driver = new PlatformDriver({ pool: deployed.pool });
      const reply = await driver.shopify.orderCreated({
        shopDomain,
        payload: { id: 3001, email: 'e@example.com', line_items: [{ product_id: 777, quantity: 2, price: '1.50' }] },
      });
      expect(reply).toEqual({ status: 200, body: { data: { acknowledged: true, processing_error: true }, error: null } });
      expect(await storeCredits(deployed.pool, storeId)).toEqual({ balance: 10, total_in: 10, total_spent: 0 });
    } finally {
      await deployed.cleanup();
    }
  });

  it('022 CHECKs refuse a negative balance in all three pools', async () => {
    const userId = await signUp();
    const { storeId } = await seedStore(db.pool);
    await db.pool.query(`INSERT INTO public.store_shopper_credits (store_id, shopper_email, balance) VALUES ($1, 'f@example.com', 1)`, [storeId]);
    for (const [sql, constraint] of [
      ['UPDATE public.user_credits SET balance = -1 WHERE user_id = $1', 'chk_user_credits_balance'],
      ['UPDATE public.store_credits SET balance = -1 WHERE store_id = $1', 'chk_store_credits_balance'],
      ['UPDATE public.store_shopper_credits SET balance = -1 WHERE store_id = $1', 'chk_store_shopper_credits_balance'],
    ] as const) {
      expect(await raises(() => db.pool.query(sql, [sql.includes('user_credits') ? userId : storeId]))).toMatchObject({
        code: '23514',
        message: expect.stringContaining(constraint),
      });
    }
  });

  it("RLS: a user may set their own balance (P-1) but not see or touch another user's; B2B tables have no RLS (P-2)", async () => {
    const alice = await signUp();
    const bob = await signUp();
    const asAlice = new PostgrestStandIn(db.pool, asUser(alice));
    const own = await asAlice.rows('UPDATE public.user_credits SET balance = 1000 WHERE user_id = $1 RETURNING balance', [alice]);
    expect(own).toEqual({ data: [{ balance: 1000 }], error: null });
    const other = await asAlice.rows('UPDATE public.user_credits SET balance = 1000 WHERE user_id = $1 RETURNING balance', [bob]);
    expect(other).toEqual({ data: [], error: null });
    expect((await userCredits(db.pool, bob))?.balance).toBe(10);
    expect((await asAlice.rows('SELECT user_id FROM public.user_credits')).data).toEqual([{ user_id: alice }]);
    expect((await asAlice.rows(`INSERT INTO public.credit_transactions (user_id, amount, type) VALUES ($1, 5, 'refund')`, [alice])).error).toBeNull();
    expect((await asAlice.rows(`INSERT INTO public.credit_transactions (user_id, amount, type) VALUES ($1, 5, 'refund')`, [bob])).error?.code).toBe(
      '42501',
    );
    // The service role passes every policy; anon sees nothing.
    expect((await new PostgrestStandIn(db.pool, SERVICE_ROLE).rows('SELECT 1 FROM public.user_credits WHERE user_id = $1', [bob])).data).toHaveLength(
      1,
    );
    expect((await new PostgrestStandIn(db.pool, { role: 'anon' }).rows('SELECT 1 FROM public.user_credits')).data).toEqual([]);
    // Any signed-in user can rewrite any store's pool: no RLS on the B2B tables.
    const { storeId } = await seedStore(db.pool);
    expect((await asAlice.rows('UPDATE public.store_credits SET balance = 500 WHERE store_id = $1 RETURNING balance', [storeId])).data).toEqual([
      { balance: 500 },
    ]);
  });

  it('both session tables are in the supabase_realtime publication; ids are UUID v7', async () => {
    const { rows } = await db.pool.query(`SELECT tablename FROM pg_publication_tables WHERE pubname = 'supabase_realtime' ORDER BY 1`);
    expect(rows.map((r) => r.tablename)).toEqual(['generation_sessions', 'store_generation_sessions']);
    const { rows: ids } = await db.pool.query('SELECT public.uuid_generate_v7()::text AS a, public.uuid_generate_v7()::text AS b');
    for (const id of [ids[0].a, ids[0].b]) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const ms = Number.parseInt(ids[0].a.replace(/-/g, '').slice(0, 12), 16);
    expect(Math.abs(ms - Date.now())).toBeLessThan(60_000);
  });
});

describe.skipIf(!redisOk)("platform fixture: the platform's code paths (real Postgres, real Redis)", () => {
  let db: PlatformDatabase;
  let redis: Redis;
  const prefix = `test:${randomUUID()}:`;
  const queueKey = `${prefix}wearon:tasks:generation`;
  let driver: PlatformDriver;
  const queued = () => redis.lrange(queueKey, 0, -1);

  beforeAll(async () => {
    db = await createPlatformDatabase();
    redis = new Redis(REDIS_URL);
    driver = new PlatformDriver({ pool: db.pool, redis, queueKey });
  });
  afterAll(async () => {
    if (redis) {
      await deleteKeys(redis, prefix);
      await redis.quit();
    }
    await db?.cleanup();
  });

  const session = async (table: 'generation_sessions' | 'store_generation_sessions', id: string) =>
    (await db.pool.query(`SELECT * FROM public.${table} WHERE id = $1`, [id])).rows[0];

  it("B2C generation.create: pre-check, deduct_credits, session row, LPUSH of the producer's payload, which this project parses", async () => {
    const { userId } = await driver.signUp({ email: email() });
    const before = (await queued()).length;
    const r = await driver.b2c.create(userId, {
      modelImageUrl: 'https://cdn.example.com/model.jpg',
      outfitImageUrl: 'https://cdn.example.com/outfit.jpg',
      accessories: [{ type: 'hat', url: 'https://cdn.example.com/hat.jpg' }],
      ageVerified: true,
    });
    if (!r.ok) throw new Error(r.message);
    expect(await userCredits(db.pool, userId)).toEqual({ balance: 9, total_in: 10, total_spent: 1 });
    expect((await userHistory(db.pool, userId)).at(-1)).toEqual({ amount: -1, type: 'generation', description: 'Virtual try-on generation' });
    expect(await session('generation_sessions', r.value.sessionId)).toMatchObject({
      user_id: userId,
      status: 'queued',
      credits_used: 1,
      accessories: [{ type: 'hat', url: 'https://cdn.example.com/hat.jpg' }],
    });

    const list = await queued();
    expect(list).toHaveLength(before + 1);
    expect(list[0]).toBe(r.value.pushed); // LPUSH: newest at the head
    const raw = JSON.parse(r.value.pushed);
    expect(Object.keys(raw)).toEqual(['task_id', 'channel', 'user_id', 'session_id', 'image_urls', 'prompt', 'request_id', 'version', 'created_at']);
    const parsed = parseTaskPayload(r.value.pushed);
    if (!parsed.ok) throw new Error(parsed.reason);
    expect(parsed.task).toMatchObject({ channel: 'b2c', user_id: userId, session_id: r.value.sessionId, version: 1 });
    expect(parsed.task.image_urls).toEqual([
      'https://cdn.example.com/model.jpg',
      'https://cdn.example.com/outfit.jpg',
      'https://cdn.example.com/hat.jpg',
    ]);
    expect(parsed.task.request_id).toMatch(/^req_[0-9a-f-]{36}$/);

    // The route's analytics insert runs with the user's JWT and RLS refuses it (the route ignores the error).
    expect(r.value.analyticsError?.code).toBe('42501');
    const { rows } = await db.pool.query(`SELECT 1 FROM public.analytics_events WHERE user_id = $1 AND event_type = 'generation_started'`, [userId]);
    expect(rows).toEqual([]);
  });

  it('B2C failure paths refund as the platform does: queue error, session insert error; an empty balance is refused', async () => {
    const { userId } = await driver.signUp({ email: email() });
    const input = { modelImageUrl: 'https://cdn.example.com/m.jpg', ageVerified: true };
    const queueDown = await driver.b2c.create(userId, input, { queuePush: true });
    expect(queueDown).toEqual({ ok: false, code: 'TIMEOUT', message: 'Generation service temporarily unavailable. Please try again later.' });
    const { rows } = await db.pool.query('SELECT status, error_message FROM public.generation_sessions WHERE user_id = $1', [userId]);
    expect(rows).toEqual([{ status: 'failed', error_message: 'Failed to queue job' }]);
    const noSession = await driver.b2c.create(userId, input, { sessionInsert: true });
    expect(noSession).toMatchObject({
      ok: false,
      code: 'INTERNAL_SERVER_ERROR',
      message: expect.stringContaining('Failed to create generation session'),
    });
    expect(await userCredits(db.pool, userId)).toEqual({ balance: 10, total_in: 10, total_spent: 0 });
    expect((await userHistory(db.pool, userId)).slice(1).map((h) => [h.amount, h.description])).toEqual([
      [-1, 'Virtual try-on generation'],
      [1, 'Queue error - refund'],
      [-1, 'Virtual try-on generation'],
      [1, 'Generation session creation failed - refund'],
    ]);
    await db.pool.query('UPDATE public.user_credits SET balance = 0 WHERE user_id = $1', [userId]);
    expect(await driver.b2c.create(userId, input)).toEqual({
      ok: false,
      code: 'INTERNAL_SERVER_ERROR',
      message: 'Insufficient credits. You need at least 1 credit to generate an image.',
    });
    expect(await driver.b2c.create(userId, { ...input, ageVerified: false })).toMatchObject({ ok: false, code: 'FORBIDDEN' });
  });

  it('B2B absorb: deduct_store_credits, session, LPUSH that parses; a repeated X-Request-Id is a 500 (unique violation)', async () => {
    const { storeId, apiKey } = await seedStore(db.pool, { credits: 3 });
    const body = { image_urls: [storeUploadUrl(storeId), storeUploadUrl(storeId)], prompt: '  red dress  ', age_verified: true };
    const r = await driver.b2b.createGeneration({ apiKey, requestId: 'req_shop_1', body });
    expect(r.status).toBe(201);
    const sessionId = (r.body.data as { session_id: string }).session_id;
    expect(r.body).toEqual({ data: { session_id: sessionId, status: 'queued' }, error: null });
    expect(await storeCredits(db.pool, storeId)).toEqual({ balance: 2, total_in: 3, total_spent: 1 });
    expect(await session('store_generation_sessions', sessionId)).toMatchObject({
      store_id: storeId,
      status: 'queued',
      request_id: 'req_shop_1',
      prompt_system: 'red dress',
      outfit_image_url: body.image_urls[1],
    });
    const raw = JSON.parse(r.pushed!);
    expect(Object.keys(raw)).toEqual(['task_id', 'channel', 'store_id', 'session_id', 'image_urls', 'prompt', 'request_id', 'version', 'created_at']);
    const parsed = parseTaskPayload(r.pushed!);
    if (!parsed.ok) throw new Error(parsed.reason);
    expect(parsed.task).toMatchObject({ channel: 'b2b', store_id: storeId, session_id: sessionId, request_id: 'req_shop_1', prompt: 'red dress' });

    expect(await driver.b2b.createGeneration({ apiKey, requestId: 'req_shop_1', body })).toEqual({
      status: 500,
      body: { data: null, error: { code: 'INTERNAL_ERROR', message: 'Failed to process credit deduction' } },
    });
    expect(await storeCredits(db.pool, storeId)).toEqual({ balance: 2, total_in: 3, total_spent: 1 });
    expect((await driver.b2b.createGeneration({ apiKey: 'wk_nope', body })).status).toBe(401);
    expect((await driver.b2b.createGeneration({ apiKey, body: { ...body, image_urls: ['https://evil.example.com/x.jpg'] } })).status).toBe(400);
    // A Supabase signed URL of the store's own upload fails the route's pathname check.
    const signed = `https://project.supabase.co/storage/v1/object/sign/virtual-tryon-images/stores/${storeId}/uploads/a.jpg?token=t`;
    expect((await driver.b2b.createGeneration({ apiKey, body: { ...body, image_urls: [signed] } })).status).toBe(400);
  });

  it('B2B resell: the shopper pays (no shopper in the payload, so this project would bill the store); header required; 402 when empty', async () => {
    const { storeId, apiKey, shopDomain } = await seedStore(db.pool, { billingMode: 'resell_mode', shopifyProductId: '4242', credits: 5 });
    const order = await driver.shopify.orderCreated({
      shopDomain,
      payload: {
        id: 'gid://shopify/Order/5001',
        customer: { email: 'gus@example.com' },
        line_items: [{ product_id: 4242, quantity: 2, price: '0.50' }],
      },
    });
    expect(order.body.data).toMatchObject({ acknowledged: true, purchase: { status: 'processed', credits_purchased: 2 } });
    const body = { image_urls: [storeUploadUrl(storeId)], age_verified: true };

    const r = await driver.b2b.createGeneration({ apiKey, shopperEmail: ' Gus@Example.com ', body });
    expect(r.status).toBe(201);
    expect(await shopperCredits(db.pool, storeId, 'gus@example.com')).toEqual({ balance: 1, total_in: 2, total_spent: 1 });
    expect(await storeCredits(db.pool, storeId)).toEqual({ balance: 3, total_in: 5, total_spent: 2 });
    expect((await storeHistory(db.pool, storeId)).at(-1)).toMatchObject({
      amount: -1,
      type: 'deduction',
      description: 'B2B shopper generation (shopper=gus@example.com)',
    });
    const parsed = parseTaskPayload(r.pushed!);
    if (!parsed.ok) throw new Error(parsed.reason);
    expect('shopper_email' in JSON.parse(r.pushed!)).toBe(false);
    expect(accountOfTask(parsed.task)).toBe(`store:${storeId}`);

    expect(await driver.b2b.createGeneration({ apiKey, body })).toEqual({
      status: 400,
      body: { data: null, error: { code: 'VALIDATION_ERROR', message: 'x-shopper-email header is required for resell mode' } },
    });
    expect((await driver.b2b.createGeneration({ apiKey, shopperEmail: 'gus@example.com', body })).status).toBe(201);
    expect(await driver.b2b.createGeneration({ apiKey, shopperEmail: 'gus@example.com', body })).toEqual({
      status: 402,
      body: { data: null, error: { code: 'INSUFFICIENT_CREDITS', message: 'Insufficient shopper credits to create generation' } },
    });
  });

  it('B2B overage: empty pool + active subscription -> Paddle charge, a direct overage row (-1), pool untouched; no subscription -> 402', async () => {
    const { storeId, apiKey } = await seedStore(db.pool, { subscriptionTier: 'growth', subscriptionId: 'sub_01hx', subscriptionStatus: 'active' });
    const body = { image_urls: [storeUploadUrl(storeId)], age_verified: true };
    const calls = driver.paddleCalls.length;
    const r = await driver.b2b.createGeneration({ apiKey, requestId: 'req_over_1', body });
    expect(r.status).toBe(201);
    expect(driver.paddleCalls.slice(calls)).toEqual([
      {
        op: 'createOverageCharge',
        input: {
          subscriptionId: 'sub_01hx',
          tier: 'growth',
          storeId,
          sessionId: (r.body.data as { session_id: string }).session_id,
          requestId: 'req_over_1',
        },
      },
    ]);
    expect(await storeCredits(db.pool, storeId)).toEqual({ balance: 0, total_in: 0, total_spent: 0 });
    expect(await storeHistory(db.pool, storeId)).toEqual([
      { amount: -1, type: 'overage', request_id: 'req_over_1', description: 'Overage charge (growth) billed at 14 cents via Paddle charge sub_01hx' },
    ]);
    expect(parseTaskPayload(r.pushed!).ok).toBe(true);

    // The queue fails after the charge: session failed, Paddle refund attempted, the overage row stays.
    const failed = await driver.b2b.createGeneration({ apiKey, requestId: 'req_over_2', body, fail: { queuePush: true } });
    expect(failed.status).toBe(503);
    expect(driver.paddleCalls.at(-1)).toMatchObject({ op: 'refundOverageCharge', input: { chargeId: 'sub_01hx', requestId: 'req_over_2' } });
    expect((await storeHistory(db.pool, storeId)).map((h) => h.request_id)).toEqual(['req_over_1', 'req_over_2']);

    const plain = await seedStore(db.pool);
    expect(await driver.b2b.createGeneration({ apiKey: plain.apiKey, body: { ...body, image_urls: [storeUploadUrl(plain.storeId)] } })).toEqual({
      status: 402,
      body: { data: null, error: { code: 'INSUFFICIENT_CREDITS', message: 'Insufficient credits to create generation' } },
    });
  });

  it('cron recoverStuckJobs: B2C sessions older than 10 minutes -> refund_credits, failed, completed_at; young and B2B sessions untouched', async () => {
    const { userId } = await driver.signUp({ email: email() });
    const input = { modelImageUrl: 'https://cdn.example.com/m.jpg', ageVerified: true };
    const old = await driver.b2c.create(userId, input);
    const young = await driver.b2c.create(userId, input);
    if (!old.ok || !young.ok) throw new Error('setup');
    await db.pool.query(`UPDATE public.generation_sessions SET created_at = now() - interval '11 minutes' WHERE id = $1`, [old.value.sessionId]);
    const { storeId, apiKey } = await seedStore(db.pool, { credits: 1 });
    const b2b = await driver.b2b.createGeneration({ apiKey, body: { image_urls: [storeUploadUrl(storeId)], age_verified: true } });
    const b2bId = (b2b.body.data as { session_id: string }).session_id;
    await db.pool.query(`UPDATE public.store_generation_sessions SET created_at = now() - interval '1 hour' WHERE id = $1`, [b2bId]);

    const result = await driver.cron.recoverStuckJobs();
    expect(result).toMatchObject({ errors: [] });
    expect(await session('generation_sessions', old.value.sessionId)).toMatchObject({
      status: 'failed',
      error_message: 'Job timed out after 10 minutes - credits refunded',
      completed_at: expect.any(Date),
    });
    expect(await session('generation_sessions', young.value.sessionId)).toMatchObject({ status: 'queued', completed_at: null });
    expect(await userCredits(db.pool, userId)).toEqual({ balance: 9, total_in: 10, total_spent: 1 });
    expect((await userHistory(db.pool, userId)).at(-1)).toEqual({
      amount: 1,
      type: 'refund',
      description: `Stuck job recovery: session ${old.value.sessionId} timed out after 10 minutes`,
    });
    expect(await session('store_generation_sessions', b2bId)).toMatchObject({ status: 'queued' });
  });

  it('Paddle webhook: purchases grant through add_store_credits, a repeated event is a duplicate; the renewal grant as written fails 500', async () => {
    const { storeId } = await seedStore(db.pool);
    const payg = {
      event_id: `evt_${randomUUID()}`,
      event_type: 'transaction.completed',
      data: { custom_data: { purchase_type: 'payg', credits: 25, store_id: storeId } },
    };
    expect(await driver.paddle.handle(payg, { requestId: 'req_pd_1' })).toEqual({ status: 200, body: { data: { acknowledged: true }, error: null } });
    expect(await driver.paddle.handle(payg, { requestId: 'req_pd_2' })).toEqual({
      status: 200,
      body: { data: { acknowledged: true, duplicate: true }, error: null },
    });
    const sub = {
      event_id: `evt_${randomUUID()}`,
      event_type: 'transaction.completed',
      data: {
        subscription_id: 'sub_paddle_1',
        customer_id: 'ctm_1',
        custom_data: { purchase_type: 'subscription', tier: 'starter', store_id: storeId },
      },
    };
    expect((await driver.paddle.handle(sub, { requestId: 'req_pd_3' })).status).toBe(200);
    expect(await storeCredits(db.pool, storeId)).toEqual({ balance: 375, total_in: 375, total_spent: 0 });
    expect((await storeHistory(db.pool, storeId)).map((h) => [h.amount, h.type, h.request_id])).toEqual([
      [25, 'purchase', 'req_pd_1'],
      [350, 'subscription', 'req_pd_3'],
    ]);
    const { rows } = await db.pool.query(
      'SELECT subscription_tier, subscription_id, subscription_status, paddle_customer_id FROM public.stores WHERE id = $1',
      [storeId],
    );
    expect(rows).toEqual([
      { subscription_tier: 'starter', subscription_id: 'sub_paddle_1', subscription_status: 'active', paddle_customer_id: 'ctm_1' },
    ]);

    const renewal = { event_id: `evt_${randomUUID()}`, event_type: 'subscription.updated', data: { id: 'sub_paddle_1', status: 'active' } };
    expect(await driver.paddle.handle(renewal, { requestId: 'req_pd_4' })).toEqual({
      status: 500,
      body: { data: null, error: { code: 'INTERNAL_ERROR', message: 'Webhook processing failed' } },
    });
    const { rows: audit } = await db.pool.query('SELECT 1 FROM public.billing_webhook_events WHERE event_id = $1', [renewal.event_id]);
    expect(audit).toEqual([]);
    expect((await driver.paddle.handle(renewal, { requestId: 'req_pd_5', renewalCall: 'intended' })).status).toBe(200);
    expect(await storeCredits(db.pool, storeId)).toEqual({ balance: 725, total_in: 725, total_spent: 0 });
  });

  it('Shopify order webhook: processed, duplicate, insufficient, non-credit and non-resell orders', async () => {
    const { storeId, shopDomain } = await seedStore(db.pool, { billingMode: 'resell_mode', shopifyProductId: '9001', credits: 3 });
    const order = (id: number, quantity: number, productId = 9001) => ({
      shopDomain,
      requestId: `req_order_${id}`,
      payload: { id, email: 'hal@example.com', currency: 'EUR', line_items: [{ product_id: productId, quantity, price: '2.00' }] },
    });
    expect((await driver.shopify.orderCreated(order(1, 2))).body.data).toMatchObject({
      purchase: { status: 'processed', credits_purchased: 2, currency: 'EUR' },
    });
    expect((await driver.shopify.orderCreated(order(1, 2))).body.data).toMatchObject({ duplicate: true });
    expect((await driver.shopify.orderCreated(order(2, 5))).body.data).toEqual({
      acknowledged: true,
      insufficient_credits: true,
      credits_required: 5,
    });
    expect((await driver.shopify.orderCreated(order(3, 1, 1234))).body.data).toEqual({ acknowledged: true, ignored: 'non_credit_order' });
    expect(await storeCredits(db.pool, storeId)).toEqual({ balance: 1, total_in: 3, total_spent: 2 });
    expect(await shopperCredits(db.pool, storeId, 'hal@example.com')).toEqual({ balance: 2, total_in: 2, total_spent: 0 });
    expect((await storeHistory(db.pool, storeId)).at(-1)).toMatchObject({ amount: -2, type: 'deduction', request_id: 'req_order_1' });
    const absorb = await seedStore(db.pool, { credits: 3 });
    expect((await driver.shopify.orderCreated({ ...order(4, 1), shopDomain: absorb.shopDomain })).body.data).toEqual({
      acknowledged: true,
      ignored: 'store_not_in_resell_mode',
    });
  });

  it('store uninstall: queued B2B sessions fail "Store uninstalled" without refund, keys go (later requests 401); reinstall resets to absorb, pool kept', async () => {
    const shopDomain = `u-${randomUUID().slice(0, 8)}.myshopify.com`;
    const { storeId, apiKey } = await driver.merchant.provisionStore({ shopDomain });
    if (!apiKey) throw new Error('a first install creates a key');
    await db.pool.query(`SELECT public.add_store_credits($1, 3, 'purchase', 'req_u_seed')`, [storeId]);
    const body = { image_urls: [storeUploadUrl(storeId)], age_verified: true };
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) ids.push(((await driver.b2b.createGeneration({ apiKey, body })).body.data as { session_id: string }).session_id);
    await db.pool.query(`UPDATE public.store_generation_sessions SET status = 'processing' WHERE id = $1`, [ids[1]]);

    const reply = await driver.shopify.appUninstalled({ shopDomain });
    expect(reply.body.data).toEqual({
      acknowledged: true,
      cleanup: { store_id: storeId, api_keys_deleted: 1, jobs_cancelled: 1, storage_files_deleted: 0, already_inactive: false },
    });
    expect(await session('store_generation_sessions', ids[0]!)).toMatchObject({ status: 'failed', error_message: 'Store uninstalled' });
    expect(await session('store_generation_sessions', ids[1]!)).toMatchObject({ status: 'processing' });
    expect(await storeCredits(db.pool, storeId)).toEqual({ balance: 1, total_in: 3, total_spent: 2 });
    expect((await driver.b2b.createGeneration({ apiKey, body })).status).toBe(401);

    await driver.merchant.updateStoreConfig(storeId, 'resell_mode', 2);
    const again = await driver.merchant.provisionStore({ shopDomain });
    expect(again.storeId).toBe(storeId);
    expect(again.apiKey).toMatch(/^wk_[0-9a-f]{32}$/);
    const { rows } = await db.pool.query('SELECT status, billing_mode FROM public.stores WHERE id = $1', [storeId]);
    expect(rows).toEqual([{ status: 'active', billing_mode: 'absorb_mode' }]);
    expect(await storeCredits(db.pool, storeId)).toEqual({ balance: 1, total_in: 3, total_spent: 2 });
  });

  it('merchant change plan: an upgrade grants the tier difference through add_store_credits; a downgrade grants nothing', async () => {
    const { storeId } = await seedStore(db.pool, { subscriptionTier: 'starter', subscriptionId: 'sub_up', subscriptionStatus: 'active' });
    expect(await driver.merchant.changePlan(storeId, 'scale')).toEqual({ changed: true, targetTier: 'scale', effectiveFrom: 'immediately' });
    expect(await storeCredits(db.pool, storeId)).toEqual({ balance: 1450, total_in: 1450, total_spent: 0 });
    expect(await storeHistory(db.pool, storeId)).toEqual([
      { amount: 1450, type: 'subscription', request_id: expect.stringMatching(/^req_/), description: 'Upgrade starter -> scale delta credits' },
    ]);
    expect(await driver.merchant.changePlan(storeId, 'growth')).toEqual({
      changed: true,
      targetTier: 'growth',
      effectiveFrom: 'next_billing_period',
    });
    expect((await storeCredits(db.pool, storeId))?.balance).toBe(1450);
  });
});

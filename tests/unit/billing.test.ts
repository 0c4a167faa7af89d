// Billing modes (issue 13): the store decider, the pool rule (domain/billing.ts), overage on the account decider.
import { describe, expect, it } from 'vitest';
import { SETTLED_RETENTION_MS, decideAccount, evolveAccount, initialAccount, type AccountCommand, type AccountState } from '../../src/domain/account.ts';
import { decideBilling } from '../../src/domain/billing.ts';
import type { AccountEvent, OverageTerms, StoreEvent } from '../../src/domain/events.ts';
import { decideGeneration, foldGeneration } from '../../src/domain/generation.ts';
import { MOVEMENT_EFFECT } from '../../src/domain/movement.ts';
import { allowsOverage, decideStore, evolveStore, initialStore, type StoreBilling, type StoreCommand, type StoreState } from '../../src/domain/store.ts';
import { hashShopperEmail, parseAccountId } from '../../src/domain/streams.ts';
import { historyLine } from '../../src/projections/creditHistory.ts';
import { decider } from '../support/decider.ts';

const STORE_ID = '7d1f3c2a-5b7e-4c1d-9a0b-2e4f6a8c0d11';
const EMAIL = 'Ann@Example.com';
const HASH = hashShopperEmail(EMAIL);
const storeAccount = `store:${STORE_ID}`;
const shopperAccount = `shopper:${STORE_ID}.${HASH}`;

const store = decider<StoreState, StoreEvent, StoreCommand>({ initial: initialStore, evolve: evolveStore, decide: decideStore });
const account = decider<AccountState, AccountEvent, AccountCommand>({ initial: initialAccount, evolve: evolveAccount, decide: decideAccount });

const billing = (b: Partial<StoreBilling> = {}): StoreBilling => ({
  billingMode: 'absorb',
  subscriptionTier: 'growth',
  subscriptionStatus: 'active',
  subscriptionId: 'sub_1',
  ...b,
});
const facts = (b: Partial<StoreBilling> = {}): StoreEvent => ({ type: 'StoreBillingRecorded', data: billing(b) });
const intent = (requestId: string, pool: 'store' | 'shopper' | 'overage', extra: { shopperHash?: string; paddleReference?: string } = {}): StoreEvent => ({
  type: 'BillingIntentRecorded',
  data: { requestId, pool, shopperHash: extra.shopperHash ?? null, paddleReference: extra.paddleReference ?? null, tier: null },
});
const stateOf = (...events: StoreEvent[]) => events.reduce((s, e) => evolveStore(s, e, 0), initialStore());
const named = (text: string) => parseAccountId(text);

describe('store decider', () => {
  it('records billing facts once (idempotent by value) and again when they change', () => {
    store.given().when({ type: 'RecordBilling', billing: billing() }).then(facts());
    store.given(facts()).when({ type: 'RecordBilling', billing: billing() }).thenNothing();
    store.given(facts()).when({ type: 'RecordBilling', billing: billing({ billingMode: 'resell' }) }).then(facts({ billingMode: 'resell' }));
  });

  it('refuses facts the platform cannot have (unknown mode or tier)', () => {
    store.given().when({ type: 'RecordBilling', billing: billing({ billingMode: 'both' as never }) }).thenRejects('invalid_billing');
    store.given().when({ type: 'RecordBilling', billing: billing({ subscriptionTier: 'platinum' as never }) }).thenRejects('invalid_billing');
  });

  it('a shopper intent names the shopper by hash, and only a shopper intent does', () => {
    const cmd = (pool: 'store' | 'shopper', shopperHash: string | null): StoreCommand => ({
      type: 'RecordIntent',
      intent: { requestId: 'r1', pool, shopperHash, paddleReference: null, tier: null },
    });
    store.given().when(cmd('shopper', HASH)).then(intent('r1', 'shopper', { shopperHash: HASH }));
    store.given().when(cmd('shopper', null)).thenRejects('invalid_intent');
    store.given().when(cmd('store', HASH)).thenRejects('invalid_intent');
    store.given(intent('r1', 'shopper', { shopperHash: HASH })).when(cmd('shopper', HASH)).thenNothing();
  });

  it('a billed overage stands: a pool intent for the same request after it changes nothing', () => {
    const cmd: StoreCommand = { type: 'RecordIntent', intent: { requestId: 'r1', pool: 'store', shopperHash: null, paddleReference: null, tier: null } };
    store.given(intent('r1', 'overage', { paddleReference: 'sub_1' })).when(cmd).thenNothing();
    store.given(intent('r1', 'store')).when({ ...cmd, intent: { ...cmd.intent, pool: 'overage', paddleReference: 'sub_1' } }).then(intent('r1', 'overage', { paddleReference: 'sub_1' }));
  });

  it('uninstall and reinstall happen once each', () => {
    const uninstalled: StoreEvent = { type: 'StoreUninstalled', data: { reference: 'u1' } };
    store.given().when({ type: 'Uninstall', reference: 'u1' }).then(uninstalled);
    store.given(uninstalled).when({ type: 'Uninstall', reference: 'u2' }).thenNothing();
    store.given(uninstalled).when({ type: 'Reinstall', reference: 'i1' }).then({ type: 'StoreReinstalled', data: { reference: 'i1' } });
    store.given().when({ type: 'Reinstall', reference: 'i1' }).thenNothing();
  });

  it('forgets intents older than the retention (they could no longer pay for anything)', () => {
    let s = evolveStore(initialStore(), intent('old', 'store'), 0);
    s = evolveStore(s, intent('new', 'store'), SETTLED_RETENTION_MS + 1);
    expect(Object.keys(s.intents)).toEqual(['r:new']);
  });

  it('overage needs an active or trialing starter/growth/scale subscription with an id', () => {
    expect(allowsOverage(billing())).toBe(true);
    expect(allowsOverage(billing({ subscriptionStatus: 'trialing', subscriptionTier: 'starter' }))).toBe(true);
    expect(allowsOverage(billing({ subscriptionStatus: 'past_due' }))).toBe(false);
    expect(allowsOverage(billing({ subscriptionTier: null }))).toBe(false);
    expect(allowsOverage(billing({ subscriptionId: null }))).toBe(false);
    expect(allowsOverage(null)).toBe(false);
  });
});

describe('who pays (decideBilling)', () => {
  it('no facts recorded: the account the task names, no overage (as before the bridge)', () => {
    expect(decideBilling(initialStore(), { named: named(storeAccount), requestId: 'r', now: 0 })).toEqual({ account: storeAccount });
    expect(decideBilling(initialStore(), { named: named(shopperAccount), requestId: 'r', now: 0 })).toEqual({ account: shopperAccount });
  });

  it('resell without a shopper (no shopper_email, no intent) is refused with the reason, never the store pool', () => {
    const d = decideBilling(stateOf(facts({ billingMode: 'resell' })), { named: named(storeAccount), requestId: 'r', now: 0 });
    expect(d.refusal?.code).toBe('shopper_required');
    expect(d.refusal?.message).toMatch(/resell mode.*names none/);
  });

  it('resell with the shopper named by the task, or by the platform\'s intent: the shopper\'s pool', () => {
    const resell = stateOf(facts({ billingMode: 'resell' }), intent('r2', 'shopper', { shopperHash: HASH }));
    expect(decideBilling(resell, { named: named(shopperAccount), requestId: 'r1', now: 0 })).toEqual({ account: shopperAccount });
    // the platform's current producer pushes no shopper: the intent keyed by (store, request_id) names them
    expect(decideBilling(resell, { named: named(storeAccount), requestId: 'r2', now: 0 })).toEqual({ account: shopperAccount });
  });

  it('absorb: the store pool, with overage as the fallback only when the subscription allows it', () => {
    expect(decideBilling(stateOf(facts()), { named: named(storeAccount), requestId: 'r', now: 0 })).toEqual({
      account: storeAccount,
      overage: { billed: false, tier: 'growth', paddleReference: null },
    });
    expect(decideBilling(stateOf(facts({ subscriptionStatus: 'canceled' })), { named: named(storeAccount), requestId: 'r', now: 0 })).toEqual({ account: storeAccount });
  });

  it('an overage the platform billed (intent, or overage_charge_id in the task) runs as an overage with its Paddle reference', () => {
    const s = stateOf(facts(), intent('r1', 'overage', { paddleReference: 'sub_1' }));
    expect(decideBilling(s, { named: named(storeAccount), requestId: 'r1', now: 0 }).overage).toEqual({ billed: true, tier: 'growth', paddleReference: 'sub_1' });
    expect(decideBilling(stateOf(facts()), { named: named(storeAccount), requestId: 'r9', paddleCharge: 'txn_9', now: 0 }).overage).toEqual({
      billed: true,
      tier: 'growth',
      paddleReference: 'txn_9',
    });
  });

  it('an uninstalled store pays for nothing', () => {
    const s = stateOf(facts(), { type: 'StoreUninstalled', data: { reference: 'u' } });
    expect(decideBilling(s, { named: named(shopperAccount), requestId: 'r', now: 0 }).refusal?.code).toBe('store_uninstalled');
  });

  it('B2C is untouched', () => {
    expect(decideBilling(stateOf(facts({ billingMode: 'resell' })), { named: named('user:u1'), requestId: 'r', now: 0 })).toEqual({ account: 'user:u1' });
  });
});

describe('overage on the account', () => {
  const T0 = Date.parse('2026-01-01T00:00:00.000Z');
  const deduct = (generationId: string, overage?: OverageTerms): AccountCommand => ({
    type: 'Deduct',
    generationId,
    amount: 1,
    requestId: `req-${generationId}`,
    acceptedAt: new Date(T0).toISOString(),
    now: T0,
    ...(overage ? { overage } : {}),
  });
  const fallback: OverageTerms = { billed: false, tier: 'scale', paddleReference: null };
  const billed: OverageTerms = { billed: true, tier: 'scale', paddleReference: 'sub_1' };
  const granted: AccountEvent = { type: 'CreditsGranted', data: { amount: 1, reason: 'purchase', reference: 'o1' } };
  const charged = (paddleReference: string | null = null): AccountEvent => ({
    type: 'OverageCharged',
    data: { generationId: 'g1', amount: 1, requestId: 'req-g1', tier: 'scale', paddleReference },
  });

  it('the pool pays while it can; the fallback applies only when it is short', () => {
    account.given(granted).when(deduct('g1', fallback)).then({ type: 'CreditDeducted', data: { generationId: 'g1', amount: 1, requestId: 'req-g1' } });
    account.given().when(deduct('g1', fallback)).then(charged());
    account.given().when(deduct('g1')).thenRejects('insufficient_credits');
  });

  it('a billed overage never touches the pool, even a full one', () => {
    account.given(granted).when(deduct('g1', billed)).then(charged('sub_1'));
  });

  it('one charge per generation: a second deduct of an overage generation is a no-op, and vice versa', () => {
    account.given(charged()).when(deduct('g1')).thenNothing();
    account.given(granted, { type: 'CreditDeducted', data: { generationId: 'g1', amount: 1, requestId: 'req-g1' } }).when(deduct('g1', billed)).thenNothing();
  });

  it('completed: captured; failed: a refund due with the Paddle reference; each once', () => {
    account.given(charged('sub_1')).when({ type: 'Capture', generationId: 'g1' }).then({ type: 'OverageCaptured', data: { generationId: 'g1', amount: 1 } });
    account.given(charged('sub_1')).when({ type: 'Refund', generationId: 'g1', reason: 'generation_failed' }).then({
      type: 'OverageRefundDue',
      data: { generationId: 'g1', amount: 1, reason: 'generation_failed', paddleReference: 'sub_1' },
    });
    account
      .given(charged('sub_1'), { type: 'OverageRefundDue', data: { generationId: 'g1', amount: 1, reason: 'x', paddleReference: 'sub_1' } })
      .when({ type: 'Refund', generationId: 'g1', reason: 'again' })
      .thenNothing();
  });

  it('never mints, holds or spends a credit', () => {
    for (const kind of ['overage_charged', 'overage_captured', 'overage_refund_due'] as const) {
      expect(MOVEMENT_EFFECT[kind]).toEqual({ balance: 0, held: 0, earned: 0, spent: 0 });
    }
    const s = account.given(charged(), { type: 'OverageRefundDue', data: { generationId: 'g1', amount: 1, reason: 'x', paddleReference: null } }).state();
    expect([s.balance, s.granted, s.overage_charged, s.overage_refund_due, s.overage]).toEqual([0, 0, 1, 1, {}]);
  });
});

describe('Cancel (uninstalled store)', () => {
  const requested = {
    type: 'GenerationRequested' as const,
    data: {
      sessionId: 's', taskId: 't', channel: 'b2b' as const, account: storeAccount, imageUrls: ['https://x/a.jpg'], prompt: '', requestId: 'r',
      payloadVersion: 1, requestedAt: '2026-01-01T00:00:00.000Z', acceptedAt: '2026-01-01T00:00:00.000Z', cost: 1,
    },
  };
  const cancel = { type: 'Cancel' as const, code: 'store_uninstalled', message: 'm', userMessage: 'u' };
  it('fails a charged (queued) generation, and refuses a requested or running one', () => {
    const charged = foldGeneration([requested, { type: 'GenerationCharged', data: { amount: 1 } }]);
    expect(decideGeneration(charged, cancel)).toEqual({ ok: true, events: [{ type: 'GenerationFailed', data: { code: 'store_uninstalled', message: 'm', userMessage: 'u' } }] });
    expect(decideGeneration(foldGeneration([requested]), cancel).ok).toBe(false);
    const started = foldGeneration([requested, { type: 'GenerationCharged', data: { amount: 1 } }, { type: 'GenerationStarted', data: { attempt: 1, workerId: 'w', leaseUntil: '2026-01-01T00:01:00.000Z' } }]);
    expect(decideGeneration(started, cancel).ok).toBe(false);
  });
});

describe('overage in the platform history (credit-history projection)', () => {
  const charged = (paddleReference: string | null): AccountEvent => ({
    type: 'OverageCharged',
    data: { generationId: 'g1', amount: 1, requestId: 'req-1', tier: 'growth', paddleReference },
  });
  it("a Paddle-billed overage adds no row (the route's own `overage` row is the line); one the ledger decided is an `overage` row of -1", () => {
    expect(historyLine('store', charged('sub_1'), null)).toBeNull();
    expect(historyLine('store', charged(null), null)).toMatchObject({ platform_table: 'store_credit_transactions', type: 'overage', amount: -1, request_id: 'g1' });
  });
  it('a refund due is an `overage` row of +1 naming the Paddle charge; a capture adds nothing', () => {
    const due: AccountEvent = { type: 'OverageRefundDue', data: { generationId: 'g1', amount: 1, reason: 'generation_failed', paddleReference: 'sub_1' } };
    expect(historyLine('store', due, null)).toMatchObject({ type: 'overage', amount: 1, description: expect.stringContaining('sub_1') });
    expect(historyLine('store', { type: 'OverageCaptured', data: { generationId: 'g1', amount: 1 } }, null)).toBeNull();
  });
});

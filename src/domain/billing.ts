// Who pays for a B2B generation: the one rule, decided at intake from the store's billing facts (domain/store.ts) and
// what the task names. Pure. The decision is recorded in GenerationRequested (account, overage terms or refusal), so a
// later change of mode or subscription never moves a generation to another pool: one generation, one pool.
//
// In order:
// 1. an uninstalled store pays for nothing: refused (`store_uninstalled`);
// 2. the platform's billing intent for (store, request_id), when it recorded one: its pool (the shopper it checked,
//    the store, or an overage it already billed through Paddle);
// 3. what the task names: a shopper (`shopper_email`, resell) or a billed overage (`overage_charge_id`);
// 4. the store's mode: resell with no shopper named is refused (`shopper_required`), never the store pool;
//    absorb is the store pool, and an overage when the pool is short and the subscription allows it;
// 5. no facts recorded (before the bridge): the account the task names, as before.
import { accountIdOf, storeOfAccount, type AccountRef } from './streams.ts';
import type { BillingRefusalCode, OverageTerms } from './events.ts';
import { allowsOverage, intentOf, type StoreState } from './store.ts';

export interface BillingInput {
  /** the account the task names: `store:<id>` or `shopper:<storeId>.<hash>` */
  named: AccountRef;
  requestId: string;
  /** the Paddle charge the task says the platform billed (`overage_charge_id`) */
  paddleCharge?: string | undefined;
  /** epoch ms of the decision: intents older than the retention no longer count */
  now: number;
}

export interface BillingDecision {
  account: string;
  overage?: OverageTerms;
  refusal?: { code: BillingRefusalCode; message: string };
}

export function decideBilling(store: StoreState, input: BillingInput): BillingDecision {
  const storeId = storeOfAccount(input.named);
  if (storeId === null) return { account: accountIdOf(input.named) };
  const storeAccount = accountIdOf({ kind: 'store', id: storeId });
  const named = accountIdOf(input.named);
  if (store.uninstalledAt) {
    return {
      account: named,
      refusal: { code: 'store_uninstalled', message: `store ${storeId} was uninstalled at ${store.uninstalledAt}: no generation is charged for it` },
    };
  }
  const billing = store.billing;
  const tier = billing?.subscriptionTier ?? null;
  const fallback = (): BillingDecision =>
    allowsOverage(billing)
      ? { account: storeAccount, overage: { billed: false, tier: billing.subscriptionTier, paddleReference: null } }
      : { account: storeAccount };

  const intent = intentOf(store, input.requestId, input.now);
  if (intent) {
    if (intent.pool === 'shopper') return { account: accountIdOf({ kind: 'shopper', id: `${storeId}.${intent.shopperHash}` }) };
    if (intent.pool === 'overage') return { account: storeAccount, overage: { billed: true, tier: intent.tier ?? tier, paddleReference: intent.paddleReference } };
    return fallback();
  }
  if (input.named.kind === 'shopper') return { account: named };
  if (input.paddleCharge) return { account: storeAccount, overage: { billed: true, tier, paddleReference: input.paddleCharge } };
  if (billing?.billingMode === 'resell') {
    return {
      account: named,
      refusal: {
        code: 'shopper_required',
        message: `store ${storeId} bills its shoppers (resell mode) and the task names none (no shopper_email, no billing intent for request ${JSON.stringify(input.requestId)}): nothing charged`,
      },
    };
  }
  return fallback();
}

// The inbox handlers of billing modes (the SQL that records their commands: storeBilling.ts). Imported by the
// dispatcher table (commands.ts) only, which must stay the first to load: this module uses its error class.
import { StoreCommandRejected, recordBillingIntent, recordStoreBilling, reinstallStore, uninstallStore } from '../app/stores.ts';
import { SUBSCRIPTION_TIERS, type IntentPool, type SubscriptionTier } from '../domain/events.ts';
import { billingModeOf } from '../domain/store.ts';
import { InvalidAccountError } from '../domain/streams.ts';
import { InvalidInboxPayload, inboxContext as ctx, payloadObject as object, payloadText as text, type InboxCommand, type InboxDeps, type InboxHandler, type InboxOutcome } from './commands.ts';

const optional = (o: Record<string, unknown>, k: string): string | null => (typeof o[k] === 'string' && (o[k] as string).trim() ? (o[k] as string) : null);
/** The platform's tier column is free text: anything but starter/growth/scale bills no overage. */
const tierOf = (v: string | null): SubscriptionTier | null => (SUBSCRIPTION_TIERS.includes(v as SubscriptionTier) ? (v as SubscriptionTier) : null);


async function outcomeOf(run: () => Promise<unknown>): Promise<InboxOutcome> {
  try {
    await run();
    return { outcome: 'applied' };
  } catch (err) {
    if (err instanceof StoreCommandRejected) return { outcome: 'rejected', reason: `${err.code}: ${err.message}` };
    if (err instanceof InvalidAccountError) return { outcome: 'rejected', reason: `invalid_store: ${err.message}` };
    throw err;
  }
}

export interface StoreBillingPayload {
  storeId: string;
  billingMode: string;
  subscriptionTier: string | null;
  subscriptionStatus: string | null;
  subscriptionId: string | null;
  status: string | null;
}

/** The `stores` row's billing facts; an inactive store is uninstalled, an active one reinstalled. */
export const storeBillingHandler: InboxHandler<StoreBillingPayload> = {
  parse(payload) {
    const o = object(payload);
    return {
      storeId: text(o, 'store_id'),
      billingMode: text(o, 'billing_mode'),
      subscriptionTier: optional(o, 'subscription_tier'),
      subscriptionStatus: optional(o, 'subscription_status'),
      subscriptionId: optional(o, 'subscription_id'),
      status: optional(o, 'status'),
    };
  },
  credits: () => [],
  handle: (deps, c) =>
    outcomeOf(async () => {
      const p = c.payload;
      const billing = { billingMode: billingModeOf(p.billingMode), subscriptionTier: tierOf(p.subscriptionTier), subscriptionStatus: p.subscriptionStatus, subscriptionId: p.subscriptionId };
      await recordStoreBilling(deps.repo, p.storeId, billing, ctx(deps, c));
      // The worker's pending index sees StoreUninstalled and its recovery ends the store's queued generations.
      if (p.status === 'inactive') await uninstallStore({ repo: deps.repo }, p.storeId, `inbox:${c.id}`, ctx(deps, c));
      else if (p.status === 'active') await reinstallStore(deps.repo, p.storeId, `inbox:${c.id}`, ctx(deps, c));
    }),
};

export interface BillingIntentPayload {
  storeId: string;
  requestId: string;
  pool: IntentPool;
  shopperHash: string | null;
  paddleReference: string | null;
  tier: SubscriptionTier | null;
}

/** The pool the platform's B2B route chose for (store, request_id). */
export const billingIntentHandler: InboxHandler<BillingIntentPayload> = {
  parse(payload) {
    const o = object(payload);
    const pool = text(o, 'pool');
    if (pool !== 'store' && pool !== 'shopper' && pool !== 'overage') throw new InvalidInboxPayload('payload.pool must be store, shopper or overage');
    return {
      storeId: text(o, 'store_id'),
      requestId: text(o, 'request_id'),
      pool,
      shopperHash: optional(o, 'shopper_hash'),
      paddleReference: optional(o, 'paddle_reference'),
      tier: tierOf(optional(o, 'tier')),
    };
  },
  credits: () => [],
  handle: (deps, c) =>
    outcomeOf(() => {
      const { storeId, ...intent } = c.payload;
      return recordBillingIntent(deps.repo, storeId, intent, ctx(deps, c));
    }),
};

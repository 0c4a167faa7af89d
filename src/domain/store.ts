// The store decider: a B2B store's billing facts, on their own stream `store-{storeId}`. Pure.
//
// Why a stream of its own and not the store's credit account: the account holds money only (ledger.md), and every
// reader of it (statement, balances, history) would otherwise have to skip facts that move nothing; and the platform
// records one billing intent per B2B request, which on the account would double the appends (and conflicts) of the
// store's hottest stream. Intake reads this stream (cached by revision) to decide who pays (domain/billing.ts).
//
// Facts are recorded as they are (idempotent by value: the same facts twice append nothing). Billing intents are
// remembered for SETTLED_RETENTION_MS of event time: an intent older than the charge window can no longer pay for
// anything (the generation would be refused as charge_window_expired), so state stays bounded by the recent rate.
import { SETTLED_RETENTION_MS } from './account.ts';
import {
  BILLING_MODES,
  SUBSCRIPTION_TIERS,
  type BillingIntentRecorded,
  type BillingMode,
  type IntentPool,
  type StoreBillingRecorded,
  type StoreEvent,
  type SubscriptionTier,
} from './events.ts';
import { assertNever } from './exhaustive.ts';

export type StoreBilling = StoreBillingRecorded['data'];
export type BillingIntent = BillingIntentRecorded['data'];

export interface StoreState {
  /** null until the platform's facts were first recorded: the store is then billed as the task says (absorb) */
  billing: StoreBilling | null;
  /** when the store was uninstalled (ISO), null while installed */
  uninstalledAt: string | null;
  /** `r:<requestId>` -> the intent and when it was recorded (epoch ms), oldest first (pruning relies on it) */
  intents: Record<string, { intent: BillingIntent; at: number }>;
}

export const STORE_STATE_VERSION = 1;

export const initialStore = (): StoreState => ({ billing: null, uninstalledAt: null, intents: {} });

export type StoreCommand =
  | { type: 'RecordBilling'; billing: StoreBilling }
  | { type: 'RecordIntent'; intent: BillingIntent }
  | { type: 'Uninstall'; reference: string }
  | { type: 'Reinstall'; reference: string };

export type StoreRejectionCode = 'invalid_billing' | 'invalid_intent' | 'invalid_reference';
export type StoreDecision = { ok: true; events: StoreEvent[] } | { ok: false; code: StoreRejectionCode; message: string };

const accept = (...events: StoreEvent[]): StoreDecision => ({ ok: true, events });
const refuse = (code: StoreRejectionCode, message: string): StoreDecision => ({ ok: false, code, message });

const SHOPPER_HASH = /^[0-9a-f]{32}$/;
const MAX_TEXT = 256;
const isTier = (t: unknown): t is SubscriptionTier | null => t === null || SUBSCRIPTION_TIERS.includes(t as SubscriptionTier);
const isShortText = (t: unknown): t is string | null => t === null || (typeof t === 'string' && t.length > 0 && t.length <= MAX_TEXT);

/** The subscriptions the platform bills overage for: an active or trialing starter/growth/scale plan with an id. */
export function allowsOverage(billing: StoreBilling | null): billing is StoreBilling & { subscriptionTier: SubscriptionTier } {
  return (
    billing !== null &&
    billing.subscriptionTier !== null &&
    billing.subscriptionId !== null &&
    (billing.subscriptionStatus === 'active' || billing.subscriptionStatus === 'trialing')
  );
}

const sameBilling = (a: StoreBilling, b: StoreBilling) =>
  a.billingMode === b.billingMode &&
  a.subscriptionTier === b.subscriptionTier &&
  a.subscriptionStatus === b.subscriptionStatus &&
  a.subscriptionId === b.subscriptionId;

const sameIntent = (a: BillingIntent, b: BillingIntent) =>
  a.pool === b.pool && a.shopperHash === b.shopperHash && a.paddleReference === b.paddleReference && a.tier === b.tier;

export function decideStore(state: StoreState, command: StoreCommand): StoreDecision {
  switch (command.type) {
    case 'RecordBilling': {
      const b = command.billing;
      if (!BILLING_MODES.includes(b.billingMode)) return refuse('invalid_billing', `billing mode must be one of ${BILLING_MODES.join(', ')}`);
      if (!isTier(b.subscriptionTier)) return refuse('invalid_billing', `subscription tier must be one of ${SUBSCRIPTION_TIERS.join(', ')} or none`);
      if (!isShortText(b.subscriptionStatus) || !isShortText(b.subscriptionId)) {
        return refuse('invalid_billing', `subscription status and id are 1-${MAX_TEXT} characters or none`);
      }
      if (state.billing && sameBilling(state.billing, b)) return accept();
      const data: StoreBilling = {
        billingMode: b.billingMode,
        subscriptionTier: b.subscriptionTier,
        subscriptionStatus: b.subscriptionStatus,
        subscriptionId: b.subscriptionId,
      };
      return accept({ type: 'StoreBillingRecorded', data });
    }
    case 'RecordIntent': {
      const i = command.intent;
      if (!isShortText(i.requestId) || i.requestId === null) return refuse('invalid_intent', `an intent needs the request id (1-${MAX_TEXT} characters)`);
      const pools: readonly IntentPool[] = ['store', 'shopper', 'overage'];
      if (!pools.includes(i.pool)) return refuse('invalid_intent', `pool must be one of ${pools.join(', ')}`);
      if ((i.pool === 'shopper') !== (i.shopperHash !== null) || (i.shopperHash !== null && !SHOPPER_HASH.test(i.shopperHash))) {
        return refuse('invalid_intent', 'a shopper intent, and only one, names the shopper by the hash of their email');
      }
      if (!isTier(i.tier) || !isShortText(i.paddleReference)) return refuse('invalid_intent', 'tier or Paddle reference malformed');
      const known = state.intents[`r:${i.requestId}`];
      if (known && sameIntent(known.intent, i)) return accept();
      // The platform records the pool when it inserts the session, then the overage when Paddle billed it: a billed
      // overage is never undone by a pool intent for the same request arriving after it.
      if (known?.intent.pool === 'overage' && i.pool !== 'overage') return accept();
      const data: BillingIntent = { requestId: i.requestId, pool: i.pool, shopperHash: i.shopperHash, paddleReference: i.paddleReference, tier: i.tier };
      return accept({ type: 'BillingIntentRecorded', data });
    }
    case 'Uninstall':
      if (!command.reference.trim()) return refuse('invalid_reference', 'an uninstall needs a reference');
      return state.uninstalledAt ? accept() : accept({ type: 'StoreUninstalled', data: { reference: command.reference } });
    case 'Reinstall':
      if (!command.reference.trim()) return refuse('invalid_reference', 'a reinstall needs a reference');
      return state.uninstalledAt ? accept({ type: 'StoreReinstalled', data: { reference: command.reference } }) : accept();
  }
}

/** Takes ownership of `s` (updated in place), like evolveAccount. `at`: the event's time (epoch ms). */
export function evolveStore(s: StoreState, event: StoreEvent, at: number): StoreState {
  switch (event.type) {
    case 'StoreBillingRecorded':
      s.billing = event.data;
      break;
    case 'BillingIntentRecorded': {
      const key = `r:${event.data.requestId}`;
      delete s.intents[key]; // a replaced intent moves to the end: insertion order stays time order
      s.intents[key] = { intent: event.data, at };
      break;
    }
    case 'StoreUninstalled':
      s.uninstalledAt = new Date(at).toISOString();
      break;
    case 'StoreReinstalled':
      s.uninstalledAt = null;
      break;
    default:
      assertNever(event, 'store event');
  }
  for (const key in s.intents) {
    if (at - s.intents[key]!.at <= SETTLED_RETENTION_MS) break;
    delete s.intents[key];
  }
  return s;
}

/** The intent recorded for a request, if remembered and (given `now`) younger than the retention: the same answer
 * whether or not a later store event has pruned it yet. */
export function intentOf(s: StoreState, requestId: string, now?: number): BillingIntent | null {
  const known = s.intents[`r:${requestId}`];
  if (!known || (now !== undefined && now - known.at > SETTLED_RETENTION_MS)) return null;
  return known.intent;
}

/** The platform's `billing_mode` column values, as the ledger names them. */
export function billingModeOf(platformValue: string): BillingMode {
  return platformValue === 'resell_mode' ? 'resell' : 'absorb';
}

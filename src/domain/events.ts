// Every event of the ledger (shared/design/ledger.md). Names and payloads are the contract between the write side,
// the projections and the finance tools: change them only with an upcaster (decode.ts).

export type Channel = 'b2b' | 'b2c';

export type GrantReason =
  | 'signup_bonus'
  | 'purchase'
  | 'subscription'
  | 'opening_balance'
  | 'adjustment'
  | 'transfer_in';
export const GRANT_REASONS: readonly GrantReason[] = [
  'signup_bonus',
  'purchase',
  'subscription',
  'opening_balance',
  'adjustment',
  'transfer_in',
];

// ---- credit-account-{kind}-{id} ----
export interface CreditsGranted {
  type: 'CreditsGranted';
  data: { amount: number; reason: GrantReason; reference: string };
}
export interface CreditsRevoked {
  type: 'CreditsRevoked';
  data: { amount: number; reason: string; reference: string };
}
export interface CreditDeducted {
  type: 'CreditDeducted';
  data: { generationId: string; amount: number; requestId: string };
}
export interface CreditCaptured {
  type: 'CreditCaptured';
  data: { generationId: string; amount: number };
}
export interface CreditRefunded {
  type: 'CreditRefunded';
  data: { generationId: string; amount: number; reason: string };
}
/**
 * An absorb-mode store's generation billed per generation through its subscription (Paddle) instead of its pool: no
 * credit moves (balance, held and totals stay), the account records who owes what. `paddleReference` is the platform's
 * Paddle charge (today the subscription id, see tests/support/platform/README.md) when it billed one, else null: the
 * ledger recorded the overage and finance bills it.
 */
export interface OverageCharged {
  type: 'OverageCharged';
  data: { generationId: string; amount: number; requestId: string; tier: SubscriptionTier | null; paddleReference: string | null };
}
/** The overage generation completed: its charge is final. */
export interface OverageCaptured {
  type: 'OverageCaptured';
  data: { generationId: string; amount: number };
}
/** The overage generation failed or was rejected: the store was billed for nothing, finance owes it a refund. */
export interface OverageRefundDue {
  type: 'OverageRefundDue';
  data: { generationId: string; amount: number; reason: string; paddleReference: string | null };
}
export type AccountEvent =
  | CreditsGranted
  | CreditsRevoked
  | CreditDeducted
  | CreditCaptured
  | CreditRefunded
  | OverageCharged
  | OverageCaptured
  | OverageRefundDue
  | CreditsTransferredOut;

// ---- store-{storeId}: the billing facts of one B2B store (never money) ----
/** How a store pays for generations: its own pool (absorb, overage when subscribed), or its shoppers' pools (resell). */
export type BillingMode = 'absorb' | 'resell';
export const BILLING_MODES: readonly BillingMode[] = ['absorb', 'resell'];
/** The platform's subscription tiers; each has an overage price (original-system.md §2.3). */
export type SubscriptionTier = 'starter' | 'growth' | 'scale';
export const SUBSCRIPTION_TIERS: readonly SubscriptionTier[] = ['starter', 'growth', 'scale'];

/** The store's billing mode and subscription as the platform's `stores` row has them now. */
export interface StoreBillingRecorded {
  type: 'StoreBillingRecorded';
  data: { billingMode: BillingMode; subscriptionTier: SubscriptionTier | null; subscriptionStatus: string | null; subscriptionId: string | null };
}
/** The pool the platform chose for one request (store, request_id): keyed like the platform's own credit rows. */
export type IntentPool = 'store' | 'shopper' | 'overage';
export interface BillingIntentRecorded {
  type: 'BillingIntentRecorded';
  data: { requestId: string; pool: IntentPool; shopperHash: string | null; paddleReference: string | null; tier: SubscriptionTier | null };
}
/** The store uninstalled the app: its queued generations end failed (holds returned), later tasks are rejected. */
export interface StoreUninstalled {
  type: 'StoreUninstalled';
  data: { reference: string };
}
export interface StoreReinstalled {
  type: 'StoreReinstalled';
  data: { reference: string };
}
export type StoreEvent = StoreBillingRecorded | BillingIntentRecorded | StoreUninstalled | StoreReinstalled;
/** The paying leg of a transfer between two accounts (a Shopify shopper purchase: store pool -> shopper pool); the
 * receiving leg is CreditsGranted(transfer_in) with reference `transfer:<transferId>` on the other account. */
export interface CreditsTransferredOut {
  type: 'CreditsTransferredOut';
  data: { amount: number; transferId: string; to: string };
}

// ---- generation-{sessionId} ----
export interface GenerationUsage {
  inputTokens: number;
  outputTokens: number;
  textInputTokens: number;
  imageInputTokens: number;
  textOutputTokens: number;
  imageOutputTokens: number;
}
export interface GenerationTimings {
  downloadMs: number;
  resizeMs: number;
  generateMs: number;
  uploadMs: number;
  /** queue entry (requestedAt) to completion */
  totalMs: number;
}
export interface GenerationRequested {
  type: 'GenerationRequested';
  data: {
    sessionId: string;
    taskId: string;
    channel: Channel;
    /** account id, e.g. `user:<id>`, `store:<id>`, `shopper:<storeId>:<emailHash>` */
    account: string;
    imageUrls: string[];
    prompt: string;
    requestId: string;
    payloadVersion: number;
    /** when the producer queued it (payload created_at): start of queue-to-done */
    requestedAt: string;
    /** when this service accepted it: start of the charge window */
    acceptedAt: string;
    cost: number;
    /** B2B resell: the shopper's hashed email (never the plain address) */
    shopperHash?: string;
    /**
     * B2B absorb: the generation may run as an overage (domain/billing.ts). `billed`: the platform already charged
     * Paddle for it, so it is an overage whatever the pool holds; otherwise only when the store pool is short.
     */
    overage?: OverageTerms;
    /** Intake found that no pool may pay (domain/billing.ts): the charge step rejects it with this, nothing charged. */
    refusal?: { code: BillingRefusalCode; message: string };
  };
}
export interface GenerationCharged {
  type: 'GenerationCharged';
  data: { amount: number };
}
export interface GenerationStarted {
  type: 'GenerationStarted';
  data: { attempt: number; workerId: string; leaseUntil: string };
}
export interface RetryScheduled {
  type: 'RetryScheduled';
  data: { attempt: number; notBefore: string; reason: string };
}
/** The holder gave the generation back unfinished (shutdown); it is claimable again at once. */
export interface GenerationReleased {
  type: 'GenerationReleased';
  data: { attempt: number; workerId: string; reason: string };
}
export interface GenerationCompleted {
  type: 'GenerationCompleted';
  data: {
    resultPath: string;
    resultUrl?: string;
    contentType: string;
    provider: string;
    usage: GenerationUsage | null;
    costUsd: number | null;
    timings: GenerationTimings;
  };
}
export interface GenerationFailed {
  type: 'GenerationFailed';
  data: { code: string; message: string; userMessage: string };
}
export interface OverageTerms {
  billed: boolean;
  tier: SubscriptionTier | null;
  paddleReference: string | null;
}
/** Why intake refuses a B2B generation before any charge: a resell task that names no shopper, an uninstalled store. */
export type BillingRefusalCode = 'shopper_required' | 'store_uninstalled';
export type RejectionCode = 'insufficient_credits' | 'invalid_request' | 'charge_window_expired' | BillingRefusalCode;
export interface GenerationRejected {
  type: 'GenerationRejected';
  /** channel/account only on an invalid request that never had a GenerationRequested, so read models can place it */
  data: { code: RejectionCode; message: string; channel?: Channel; account?: string };
}
export type GenerationEvent =
  | GenerationRequested
  | GenerationCharged
  | GenerationStarted
  | RetryScheduled
  | GenerationReleased
  | GenerationCompleted
  | GenerationFailed
  | GenerationRejected;

// ---- transfer-{transferId} ----
/** A transfer process (domain/transfer.ts): requested once, then completed (both legs appended) or rejected (none). */
export interface TransferRequested {
  type: 'TransferRequested';
  data: { transferId: string; from: string; to: string; amount: number };
}
export interface TransferCompleted {
  type: 'TransferCompleted';
  data: { amount: number };
}
export interface TransferRejected {
  type: 'TransferRejected';
  data: { code: string; message: string };
}
export type TransferEvent = TransferRequested | TransferCompleted | TransferRejected;

export type LedgerEvent = AccountEvent | GenerationEvent | StoreEvent | TransferEvent;
export type LedgerEventType = LedgerEvent['type'];

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
/** The paying leg of a transfer between two accounts (a Shopify shopper purchase: store pool -> shopper pool); the
 * receiving leg is CreditsGranted(transfer_in) with reference `transfer:<transferId>` on the other account. */
export interface CreditsTransferredOut {
  type: 'CreditsTransferredOut';
  data: { amount: number; transferId: string; to: string };
}
export type AccountEvent = CreditsGranted | CreditsRevoked | CreditDeducted | CreditCaptured | CreditRefunded | CreditsTransferredOut;

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
export type RejectionCode = 'insufficient_credits' | 'invalid_request' | 'charge_window_expired';
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

export type LedgerEvent = AccountEvent | GenerationEvent | TransferEvent;
export type LedgerEventType = LedgerEvent['type'];

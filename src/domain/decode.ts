// Stored events are decoded, never cast. One decoder per stream type: the stored type must be one of that stream's
// events (after upcasting), and the data an object (account events: a whole positive amount, the money everything
// else is computed from). Upcasters turn an older stored shape into the current one, so the rest of the code only
// ever sees the current union (ledger.md: names and payloads change only with an upcaster).
import type { AccountEvent, GenerationEvent, LedgerEvent, StoreEvent, TransferEvent } from './events.ts';
import { accountFromStream, sessionIdFromStream, storeIdFromStream, transferIdFromStream, type AccountRef } from './streams.ts';

/** An event as the store holds it. */
export interface StoredEvent {
  type: string;
  data: unknown;
}

/**
 * Rewrites an older stored shape of one type name into a newer one (it may rename the type too), and returns its input
 * as it is when the shape is already current: upcasters apply until none changes anything.
 */
export type Upcaster = (stored: StoredEvent) => StoredEvent;

/**
 * Upcasters by stored type name, per stream type, applied until none matches. Empty: no stored shape has changed
 * since the first release. To change an event, add its old shape here (and a test in tests/unit/decode.test.ts).
 */
export const ACCOUNT_UPCASTERS: Readonly<Record<string, Upcaster>> = {};
export const GENERATION_UPCASTERS: Readonly<Record<string, Upcaster>> = {};
export const STORE_UPCASTERS: Readonly<Record<string, Upcaster>> = {};
export const TRANSFER_UPCASTERS: Readonly<Record<string, Upcaster>> = {};

// Records, not lists: a new member of an event union does not compile until it is named here.
const ACCOUNT_TYPES: Record<AccountEvent['type'], true> = {
  CreditsGranted: true,
  CreditsRevoked: true,
  CreditDeducted: true,
  CreditCaptured: true,
  CreditRefunded: true,
  OverageCharged: true,
  OverageCaptured: true,
  OverageRefundDue: true,
  CreditsTransferredOut: true,
};
const GENERATION_TYPES: Record<GenerationEvent['type'], true> = {
  GenerationRequested: true,
  GenerationCharged: true,
  GenerationStarted: true,
  RetryScheduled: true,
  GenerationReleased: true,
  GenerationCompleted: true,
  GenerationFailed: true,
  GenerationRejected: true,
};
const STORE_TYPES: Record<StoreEvent['type'], true> = {
  StoreBillingRecorded: true,
  BillingIntentRecorded: true,
  StoreUninstalled: true,
  StoreReinstalled: true,
};
const TRANSFER_TYPES: Record<TransferEvent['type'], true> = {
  TransferRequested: true,
  TransferCompleted: true,
  TransferRejected: true,
};
/** Every account event type, in declaration order (filters and bit sets of the statement). */
export const ACCOUNT_EVENT_TYPES = Object.keys(ACCOUNT_TYPES) as [AccountEvent['type'], ...AccountEvent['type'][]];
export const isAccountEvent = (e: LedgerEvent): e is AccountEvent => Object.hasOwn(ACCOUNT_TYPES, e.type);

export class UndecodableEventError extends Error {
  override readonly name = 'UndecodableEventError';
}

const MAX_UPCASTS = 16;

export function upcast(stored: StoredEvent, upcasters: Readonly<Record<string, Upcaster>>): StoredEvent {
  let current = stored;
  for (let i = 0; i < MAX_UPCASTS; i++) {
    const upcaster = Object.hasOwn(upcasters, current.type) ? upcasters[current.type] : undefined;
    const next = upcaster?.(current);
    if (!next || next === current) return current;
    current = next;
  }
  throw new UndecodableEventError(`${stored.type}: upcasters do not converge`);
}

/** A decoder for one stream type: upcast, then accept only that stream's current event types. */
export function eventDecoder<E extends LedgerEvent>(
  stream: string,
  types: Record<E['type'], true>,
  upcasters: Readonly<Record<string, Upcaster>>,
): (stored: StoredEvent) => E {
  return (stored) => {
    const { type, data } = upcast(stored, upcasters);
    if (!Object.hasOwn(types, type)) throw new UndecodableEventError(`${stored.type} is not a ${stream} event`);
    if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new UndecodableEventError(`${type}: data is not an object`);
    return { type, data } as E;
  };
}

const decodeAccountShape = eventDecoder<AccountEvent>('credit-account', ACCOUNT_TYPES, ACCOUNT_UPCASTERS);
export function decodeAccountEvent(stored: StoredEvent): AccountEvent {
  const e = decodeAccountShape(stored);
  if (!Number.isSafeInteger(e.data.amount) || e.data.amount <= 0) {
    throw new UndecodableEventError(`${e.type}: amount ${JSON.stringify(e.data.amount)} is not a positive whole number`);
  }
  return e;
}

export const decodeGenerationEvent: (stored: StoredEvent) => GenerationEvent = eventDecoder('generation', GENERATION_TYPES, GENERATION_UPCASTERS);

export const isStoreEvent = (e: LedgerEvent): e is StoreEvent => Object.hasOwn(STORE_TYPES, e.type);
export const decodeStoreEvent: (stored: StoredEvent) => StoreEvent = eventDecoder('store', STORE_TYPES, STORE_UPCASTERS);
export const decodeTransferEvent: (stored: StoredEvent) => TransferEvent = eventDecoder('transfer', TRANSFER_TYPES, TRANSFER_UPCASTERS);

export type DecodedLedgerEvent =
  | { stream: 'account'; account: AccountRef; event: AccountEvent }
  | { stream: 'generation'; sessionId: string; event: GenerationEvent }
  | { stream: 'store'; storeId: string; event: StoreEvent }
  | { stream: 'transfer'; transferId: string; event: TransferEvent };

/** Decodes an event of one of the ledger's streams by its stream type; null for any other stream. */
export function decodeLedgerEvent(streamId: string, stored: StoredEvent): DecodedLedgerEvent | null {
  const account = accountFromStream(streamId);
  if (account) return { stream: 'account', account, event: decodeAccountEvent(stored) };
  const sessionId = sessionIdFromStream(streamId);
  if (sessionId !== null) return { stream: 'generation', sessionId, event: decodeGenerationEvent(stored) };
  const storeId = storeIdFromStream(streamId);
  if (storeId !== null) return { stream: 'store', storeId, event: decodeStoreEvent(stored) };
  const transferId = transferIdFromStream(streamId);
  if (transferId !== null) return { stream: 'transfer', transferId, event: decodeTransferEvent(stored) };
  return null;
}

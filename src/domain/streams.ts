// Account ids, stream names and deterministic event ids. Plain emails never leave this module.
import { createHash } from 'node:crypto';

export type AccountKind = 'user' | 'store' | 'shopper';

export interface AccountRef {
  kind: AccountKind;
  /** user id, store id, or `{storeId}.{emailHash}` for a shopper */
  id: string;
}

export const ACCOUNT_STREAM_PREFIX = 'credit-account-';
export const GENERATION_STREAM_PREFIX = 'generation-';
/** `store-{storeId}`: a B2B store's billing facts (domain/store.ts), apart from its credit account, which holds money only. */
export const STORE_STREAM_PREFIX = 'store-';
/** Every stream this service writes starts with one of these (used for `$all` filters). */
export const TRANSFER_STREAM_PREFIX = 'transfer-';
export const STREAM_PREFIXES = [ACCOUNT_STREAM_PREFIX, GENERATION_STREAM_PREFIX, STORE_STREAM_PREFIX, TRANSFER_STREAM_PREFIX] as const;

const SAFE_ID = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$/;

export class InvalidAccountError extends Error {
  override readonly name = 'InvalidAccountError';
}

export const MAX_EMAIL_CHARS = 320;
/** The platform's own check of a shopper email (x-shopper-email in /api/v1/generation/create): name@domain.tld. */
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

/** What an email address is, for accounts and the queue contract alike: trimmed, at most 320 characters, name@domain.tld. */
export function isEmail(text: string): boolean {
  const t = text.trim();
  return t.length <= MAX_EMAIL_CHARS && EMAIL.test(t);
}

/** sha256(lower(trim(email)))[0:32]: the only form in which a shopper email enters the ledger. */
export function hashShopperEmail(email: string): string {
  const normalized = email.trim().toLowerCase();
  if (!isEmail(normalized)) throw new InvalidAccountError('shopper email must be an email address (name@domain.tld)');
  return createHash('sha256').update(normalized).digest('hex').slice(0, 32);
}

/**
 * Parses `user:<id>`, `store:<id>`, `shopper:<storeId>:<email>` (email hashed here) or the already hashed
 * `shopper:<storeId>.<hash>` form that `accountIdOf` prints.
 */
export function parseAccountId(text: string): AccountRef {
  const first = text.indexOf(':');
  if (first < 0) throw new InvalidAccountError(`account must look like user:<id>, store:<id> or shopper:<storeId>:<email>`);
  const kind = text.slice(0, first);
  const rest = text.slice(first + 1);
  if (kind === 'user' || kind === 'store') {
    if (!SAFE_ID.test(rest) || rest.includes('.')) throw new InvalidAccountError(`invalid ${kind} id: ${JSON.stringify(rest)}`);
    return { kind, id: rest };
  }
  if (kind === 'shopper') {
    const sep = rest.indexOf(':');
    if (sep < 0) {
      const [storeId, hash] = rest.split('.');
      if (storeId && hash && /^[0-9a-f]{32}$/.test(hash) && SAFE_ID.test(storeId)) return { kind, id: `${storeId}.${hash}` };
      throw new InvalidAccountError('shopper account must be shopper:<storeId>:<email>');
    }
    const storeId = rest.slice(0, sep);
    if (!SAFE_ID.test(storeId) || storeId.includes('.')) throw new InvalidAccountError(`invalid store id: ${JSON.stringify(storeId)}`);
    return { kind, id: `${storeId}.${hashShopperEmail(rest.slice(sep + 1))}` };
  }
  throw new InvalidAccountError(`unknown account kind ${JSON.stringify(kind)}`);
}

export function accountIdOf(ref: AccountRef): string {
  return `${ref.kind}:${ref.id}`;
}

export function accountStream(ref: AccountRef | string): string {
  const r = typeof ref === 'string' ? parseAccountId(ref) : ref;
  return `${ACCOUNT_STREAM_PREFIX}${r.kind}-${r.id}`;
}

export function accountFromStream(streamId: string): AccountRef | null {
  if (!streamId.startsWith(ACCOUNT_STREAM_PREFIX)) return null;
  const rest = streamId.slice(ACCOUNT_STREAM_PREFIX.length);
  const dash = rest.indexOf('-');
  const kind = rest.slice(0, dash);
  if (kind !== 'user' && kind !== 'store' && kind !== 'shopper') return null;
  return { kind, id: rest.slice(dash + 1) };
}

export function generationStream(sessionId: string): string {
  return `${GENERATION_STREAM_PREFIX}${sessionId}`;
}

export function storeStream(storeId: string): string {
  if (!SAFE_ID.test(storeId) || storeId.includes('.')) throw new InvalidAccountError(`invalid store id: ${JSON.stringify(storeId)}`);
  return `${STORE_STREAM_PREFIX}${storeId}`;
}

export function storeIdFromStream(streamId: string): string | null {
  return streamId.startsWith(STORE_STREAM_PREFIX) ? streamId.slice(STORE_STREAM_PREFIX.length) : null;
}

/** The store an account belongs to: the store itself or one of its shoppers; null for a B2C user. */
export function storeOfAccount(ref: AccountRef): string | null {
  if (ref.kind === 'store') return ref.id;
  if (ref.kind === 'shopper') return ref.id.slice(0, ref.id.indexOf('.'));
  return null;
}

export function sessionIdFromStream(streamId: string): string | null {
  return streamId.startsWith(GENERATION_STREAM_PREFIX) ? streamId.slice(GENERATION_STREAM_PREFIX.length) : null;
}

/** A transfer's id as its stream names it: the caller's id (e.g. a Shopify order id) when it is a safe name, else its
 * sha256 (one id, one stream, whatever the characters). */
export function transferIdOf(id: string): string {
  return SAFE_ID.test(id) ? id : `h.${createHash('sha256').update(id).digest('hex').slice(0, 40)}`;
}

export function transferStream(transferId: string): string {
  return `${TRANSFER_STREAM_PREFIX}${transferId}`;
}

export function transferIdFromStream(streamId: string): string | null {
  return streamId.startsWith(TRANSFER_STREAM_PREFIX) ? streamId.slice(TRANSFER_STREAM_PREFIX.length) : null;
}

/**
 * Deterministic event id (RFC 4122 v5 layout over SHA-1) from stream, step and attempt, so that a retried append of
 * the same step carries the same id and the store recognises it.
 */
export function deterministicEventId(streamId: string, step: string, attempt = 0): string {
  const h = createHash('sha1').update(`wearon:${streamId}:${step}:${attempt}`).digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const hex = h.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// Test setup and reads on a platform database. Seeding is NOT a platform code path: it writes the state a test needs
// (a subscribed store with an empty pool, a resell store with a credit product) directly as the database owner, so the
// driver's paths start from it. Credits still arrive through the platform's own add_store_credits, so the history
// (store_credit_transactions) stays consistent with the balance.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { SubscriptionTier } from './common.ts';

export interface SeedStoreOptions {
  shopDomain?: string;
  billingMode?: 'absorb_mode' | 'resell_mode';
  subscriptionTier?: SubscriptionTier | null;
  subscriptionId?: string | null;
  subscriptionStatus?: string | null;
  /** Shopify product id of the hidden credit product (resell mode orders are matched against it). */
  shopifyProductId?: string | null;
  /** Granted through add_store_credits(…, 'purchase', 'seed:<uuid>'). */
  credits?: number;
  ownerUserId?: string | null;
}

export interface SeededStore {
  storeId: string;
  shopDomain: string;
  /** A live `wk_…` key for b2bCreateGeneration. */
  apiKey: string;
}

export async function seedStore(pool: pg.Pool, o: SeedStoreOptions = {}): Promise<SeededStore> {
  const shopDomain = o.shopDomain ?? `shop-${randomUUID().slice(0, 8)}.myshopify.com`;
  const { rows } = await pool.query<{ id: string }>(
    `INSERT INTO public.stores (shop_domain, access_token_encrypted, billing_mode, subscription_tier, subscription_id, subscription_status,
                                shopify_product_id, owner_user_id)
     VALUES ($1, 'stand-in-encrypted-token', $2, $3, $4, $5, $6, $7) RETURNING id`,
    [
      shopDomain,
      o.billingMode ?? 'absorb_mode',
      o.subscriptionTier ?? null,
      o.subscriptionId ?? null,
      o.subscriptionStatus ?? null,
      o.shopifyProductId ?? null,
      o.ownerUserId ?? null,
    ],
  );
  const storeId = rows[0]!.id;
  const apiKey = `wk_${randomBytes(16).toString('hex')}`;
  await pool.query('INSERT INTO public.store_api_keys (store_id, key_hash, key_prefix, allowed_domains) VALUES ($1, $2, $3, $4)', [
    storeId,
    createHash('sha256').update(apiKey).digest('hex'),
    apiKey.slice(0, 16),
    [`https://${shopDomain}`],
  ]);
  if (o.credits)
    await pool.query(`SELECT public.add_store_credits($1, $2, 'purchase', $3, 'Seed credits')`, [storeId, o.credits, `seed:${randomUUID()}`]);
  return { storeId, shopDomain, apiKey };
}

/**
 * A URL the B2B create route accepts for this store: its pathname must *start* with /stores/{id}/uploads/ (any host).
 * A Supabase signed URL (/storage/v1/object/sign/virtual-tryon-images/stores/...) does not, and is refused (400).
 * `origin` lets a test point it at a local image server that serves that path.
 */
export const storeUploadUrl = (storeId: string, o: { origin?: string; name?: string } = {}) =>
  `${o.origin ?? 'https://cdn.example.com'}/stores/${storeId}/uploads/${o.name ?? `${randomUUID()}.jpg`}`;

export interface CreditRow {
  balance: number;
  /** total_earned (user) or total_purchased (store, shopper) */
  total_in: number;
  total_spent: number;
}

export async function userCredits(pool: pg.Pool, userId: string): Promise<CreditRow | null> {
  const { rows } = await pool.query<CreditRow>('SELECT balance, total_earned AS total_in, total_spent FROM public.user_credits WHERE user_id = $1', [
    userId,
  ]);
  return rows[0] ?? null;
}

export async function storeCredits(pool: pg.Pool, storeId: string): Promise<CreditRow | null> {
  const { rows } = await pool.query<CreditRow>(
    'SELECT balance, total_purchased AS total_in, total_spent FROM public.store_credits WHERE store_id = $1',
    [storeId],
  );
  return rows[0] ?? null;
}

/** Exact match on the stored email (the 016 RPCs look up lower(trim(email)); 011 stores it as given). */
export async function shopperCredits(pool: pg.Pool, storeId: string, shopperEmail: string): Promise<CreditRow | null> {
  const { rows } = await pool.query<CreditRow>(
    'SELECT balance, total_purchased AS total_in, total_spent FROM public.store_shopper_credits WHERE store_id = $1 AND shopper_email = $2',
    [storeId, shopperEmail],
  );
  return rows[0] ?? null;
}

export interface HistoryRow {
  amount: number;
  type: string;
  description: string | null;
  request_id?: string | null;
}

/**
 * How history rows are listed: by time, as the web app lists them. Rows of the same millisecond have no order of their
 * own (the platform's ids are UUIDv7, random within a millisecond); with `ledgerOrder` (the worker's read model beside
 * the platform's tables) they follow the ledger, and the platform's own rows come first.
 */
const historyOrder = (ledgerOrder: boolean) =>
  ledgerOrder
    ? 'ORDER BY created_at, (SELECT h.global_commit FROM credit_history h WHERE h.event_id = ledger_event_id::text) NULLS FIRST, id'
    : 'ORDER BY created_at, id';

export async function userHistory(pool: pg.Pool, userId: string, o: { ledgerOrder?: boolean } = {}): Promise<HistoryRow[]> {
  const { rows } = await pool.query<HistoryRow>(
    `SELECT amount, type, description FROM public.credit_transactions WHERE user_id = $1 ${historyOrder(o.ledgerOrder ?? false)}`,
    [userId],
  );
  return rows;
}

export async function storeHistory(pool: pg.Pool, storeId: string, o: { ledgerOrder?: boolean } = {}): Promise<HistoryRow[]> {
  const { rows } = await pool.query<HistoryRow>(
    `SELECT amount, type, request_id, description FROM public.store_credit_transactions WHERE store_id = $1 ${historyOrder(o.ledgerOrder ?? false)}`,
    [storeId],
  );
  return rows;
}

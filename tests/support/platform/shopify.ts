// Shopify webhooks, service role, HMAC verification left out (the driver takes the verified request):
// - orders/create (apps/next/app/api/v1/webhooks/shopify/orders/route.ts): a resell store's credit product bought by a
//   shopper -> process_store_shopper_purchase. Always 200 so Shopify never retries: a failed transfer is only visible
//   as `processing_error`, an unfunded one as `insufficient_credits`.
// - app/uninstalled (apps/next/app/api/v1/webhooks/shopify/app/route.ts, services/store-cleanup.ts): store inactive,
//   API keys deleted, queued B2B sessions failed "Store uninstalled" without a refund (processing ones untouched),
//   the pool kept. Storage cleanup is left out (no storage here).
// All read for facts, never copied.
import { createHash, randomUUID } from 'node:crypto';
import { PlatformError, ack, nonEmptyTrimmed, type PlatformContext, type Reply } from './common.ts';
import { producerSnakeCase } from './producer.ts';
import { NOT_SINGLE } from './rest.ts';
import { logStoreAnalyticsEvent } from './storeCredits.ts';

export interface ShopifyOrderRequest {
  /** The order as Shopify posts it: `id`, `customer.email` or `email`, `currency`, `line_items[{product_id, quantity, price}]`. */
  payload: Record<string, unknown>;
  /** X-Shopify-Shop-Domain; falls back to the payload's myshopify_domain / domain. */
  shopDomain?: string;
  /** X-Shopify-Topic, default orders/create. */
  topic?: string;
  /** X-Request-Id: it becomes the request id of the store pool's deduction row. */
  requestId?: string;
}

export class ShopifyWebhooks {
  constructor(private readonly ctx: PlatformContext) {}

  async orderCreated(o: ShopifyOrderRequest): Promise<Reply> {
    const { admin } = this.ctx;
    const requestId = o.requestId || `req_${randomUUID()}`;
    if ((o.topic ?? 'orders/create') !== 'orders/create') return ack({ ignored: 'unsupported_topic' });
    const payload = o.payload;
    const shopDomain = nonEmptyTrimmed(o.shopDomain) || nonEmptyTrimmed(payload.myshopify_domain) || nonEmptyTrimmed(payload.domain);
    if (!shopDomain) return ack({ ignored: 'missing_shop_domain' });
    const orderId = shopifyNumericId(payload.id);
    if (!orderId) return ack({ ignored: 'missing_order_id' });
    const customer = (payload.customer as Record<string, unknown> | undefined) ?? {};
    // Trimmed, case kept, and stored that way: the generation route looks the shopper up lower-cased.
    const shopperEmail = nonEmptyTrimmed(customer.email) || nonEmptyTrimmed(payload.email);
    if (!shopperEmail) return ack({ ignored: 'missing_shopper_email' });
    const shopperEmailHash = createHash('sha256').update(shopperEmail.toLowerCase(), 'utf8').digest('hex').slice(0, 12);

    const store = await admin.single<{ id: string; billing_mode: string; shopify_product_id: string | null }>(
      'SELECT id, shop_domain, billing_mode, shopify_product_id FROM public.stores WHERE shop_domain = $1',
      [shopDomain],
    );
    if (store.error || !store.data) return ack({ ignored: 'unknown_store' });
    const storeId = store.data.id;
    if (store.data.billing_mode !== 'resell_mode') return ack({ ignored: 'store_not_in_resell_mode' });
    const creditProductId = shopifyNumericId(store.data.shopify_product_id);
    if (!creditProductId) return ack({ ignored: 'missing_credit_product_id' });

    // One credit per unit of the hidden credit product; other lines are ignored.
    let creditsPurchased = 0;
    let amountPaid = 0;
    for (const item of Array.isArray(payload.line_items) ? payload.line_items : []) {
      if (!item || typeof item !== 'object') continue;
      const line = item as Record<string, unknown>;
      if (shopifyNumericId(line.product_id) !== creditProductId) continue;
      const quantity = positiveInteger(line.quantity);
      if (quantity === 0) continue;
      creditsPurchased += quantity;
      amountPaid += nonNegative(line.price) * quantity;
    }
    amountPaid = Number(amountPaid.toFixed(2));
    if (creditsPurchased === 0) return ack({ ignored: 'non_credit_order' });
    const currency = nonEmptyTrimmed(payload.currency) || 'USD';

    const existing = await admin.single(
      `SELECT id, store_id, shopper_email, shopify_order_id, credits_purchased, amount_paid, currency
       FROM public.store_shopper_purchases WHERE shopify_order_id = $1`,
      [orderId],
    );
    if (existing.data) return ack({ duplicate: true, purchase: existing.data });
    if (existing.error && existing.error.code !== NOT_SINGLE) return ack({ processing_error: true });

    const transfer = await admin.rpcRows<{ status: 'processed' | 'duplicate' | 'insufficient'; credits_purchased: number; amount_paid: unknown }>(
      'process_store_shopper_purchase',
      {
        p_store_id: storeId,
        p_shopper_email: shopperEmail,
        p_shopify_order_id: orderId,
        p_credits_purchased: creditsPurchased,
        p_amount_paid: amountPaid,
        p_currency: currency,
        p_request_id: requestId,
      },
    );
    if (transfer.error) return ack({ processing_error: true });
    const row = transfer.data[0];
    if (!row) return ack({ processing_error: true });
    if (row.status === 'insufficient') {
      await logStoreAnalyticsEvent(admin, storeId, 'store_credit_insufficient', {
        credits_required: creditsPurchased,
        shopify_order_id: orderId,
        request_id: requestId,
        reason: 'insufficient_store_credits',
        shopper_email_hash: shopperEmailHash,
      });
      return ack({ insufficient_credits: true, credits_required: creditsPurchased });
    }
    if (row.status === 'duplicate') return ack({ duplicate: true, purchase: row });
    await logStoreAnalyticsEvent(admin, storeId, 'credit_purchased', {
      credits_purchased: row.credits_purchased,
      amount_paid: row.amount_paid,
      shopify_order_id: orderId,
      request_id: requestId,
      shopper_email_hash: shopperEmailHash,
    });
    return ack({ purchase: row });
  }

  async appUninstalled(o: { shopDomain: string; topic?: string }): Promise<Reply> {
    if ((o.topic ?? 'app/uninstalled') !== 'app/uninstalled') return ack();
    if (!o.shopDomain) return { status: 400, body: { data: null, error: { code: 'VALIDATION_ERROR', message: 'Missing shop domain' } } };
    const store = await this.ctx.admin.single<{ id: string }>('SELECT id, status FROM public.stores WHERE shop_domain = $1', [o.shopDomain]);
    if (!store.data) return ack();
    try {
      return ack({ cleanup: producerSnakeCase(await this.cleanupStore(store.data.id)) as Record<string, unknown> });
    } catch {
      return ack({ cleanup_failed: true }); // 200 anyway: Shopify must not retry
    }
  }

  private async cleanupStore(storeId: string) {
    const { admin } = this.ctx;
    const result = { storeId, apiKeysDeleted: 0, jobsCancelled: 0, storageFilesDeleted: 0, alreadyInactive: false };
    const store = await admin.single<{ status: string }>('SELECT status FROM public.stores WHERE id = $1', [storeId]);
    if (store.error || !store.data) return result;
    result.alreadyInactive = store.data.status === 'inactive';
    if (!result.alreadyInactive) {
      const r = await admin.rows(`UPDATE public.stores SET status = 'inactive', updated_at = $2 WHERE id = $1`, [
        storeId,
        this.ctx.now().toISOString(),
      ]);
      if (r.error) throw new PlatformError(`Store update failed: ${r.error.message}`);
    }
    const keys = await admin.rows('DELETE FROM public.store_api_keys WHERE store_id = $1 RETURNING id', [storeId]);
    if (keys.error) throw new PlatformError(`API key deletion failed: ${keys.error.message}`);
    result.apiKeysDeleted = keys.data.length;
    const jobs = await admin.rows(
      `UPDATE public.store_generation_sessions SET status = 'failed', error_message = 'Store uninstalled'
       WHERE store_id = $1 AND status = 'queued' RETURNING id`,
      [storeId],
    );
    if (jobs.error) throw new PlatformError(`Job cancellation failed: ${jobs.error.message}`);
    result.jobsCancelled = jobs.data.length;
    return result;
  }
}

/** Shopify ids arrive as numbers or gid strings (`gid://shopify/Order/123`): the trailing digits. */
function shopifyNumericId(v: unknown): string | null {
  if (typeof v === 'number' && Number.isFinite(v)) return String(Math.trunc(v));
  if (typeof v !== 'string' || !v.trim()) return null;
  return /(\d+)$/.exec(v.trim())?.[1] ?? null;
}
function positiveInteger(v: unknown): number {
  const n = typeof v === 'number' ? v : Number(v);
  return Number.isFinite(n) && n > 0 ? Math.floor(n) : 0;
}
function nonNegative(v: unknown): number {
  const n = typeof v === 'number' ? v : Number(v);
  return Number.isFinite(n) && n >= 0 ? n : 0;
}

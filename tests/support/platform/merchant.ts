// The merchant side, service role (packages/api/src/middleware/shopify-session.ts and services/merchant-ops.ts, read
// for facts): store install/reinstall, plan change (the only merchant operation that moves credits), billing mode.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { TIER_CREDITS, isTier, type PlatformContext, type SubscriptionTier } from './common.ts';
import { addStoreCredits } from './storeCredits.ts';

const TIER_ORDER: Record<SubscriptionTier, number> = { starter: 1, growth: 2, scale: 3 };

export class MerchantOps {
  constructor(private readonly ctx: PlatformContext) {}

  /**
   * Install or reinstall through the embedded app session: upsert on shop_domain with status active and billing_mode
   * absorb_mode (a reinstall resets a resell store to absorb; its pool survives: handle_new_store fires on insert
   * only), then a new API key if the store has none, else reactivation of the old ones (apiKey null).
   */
  async provisionStore(o: { shopDomain: string }): Promise<{ storeId: string; apiKey: string | null }> {
    const { admin } = this.ctx;
    const store = await admin.single<{ id: string }>(
      `INSERT INTO public.stores (shop_domain, access_token_encrypted, status, billing_mode) VALUES ($1, $2, 'active', 'absorb_mode')
       ON CONFLICT (shop_domain) DO UPDATE
       SET access_token_encrypted = excluded.access_token_encrypted, status = excluded.status, billing_mode = excluded.billing_mode
       RETURNING id, shop_domain, status`,
      [o.shopDomain, `stand-in-encrypted-token:${randomUUID()}`],
    );
    if (store.error || !store.data) throw new Error(`store upsert failed: ${store.error?.message}`);
    const storeId = store.data.id;
    const existing = await admin.rows('SELECT id FROM public.store_api_keys WHERE store_id = $1 LIMIT 1', [storeId]);
    if (existing.data && existing.data.length > 0) {
      await admin.rows('UPDATE public.store_api_keys SET is_active = true WHERE store_id = $1', [storeId]);
      return { storeId, apiKey: null };
    }
    const apiKey = `wk_${randomBytes(16).toString('hex')}`;
    await admin.rows('INSERT INTO public.store_api_keys (store_id, key_hash, key_prefix, allowed_domains, is_active) VALUES ($1, $2, $3, $4, true)', [
      storeId,
      createHash('sha256').update(apiKey).digest('hex'),
      apiKey.substring(0, 16),
      [`https://${o.shopDomain}`],
    ]);
    return { storeId, apiKey };
  }

  /**
   * changePlan: Paddle first; on an upgrade from a known tier, the store row (tier, status active), then
   * add_store_credits(tier difference, 'subscription', a fresh request id). Separate requests, no transaction.
   */
  async changePlan(
    storeId: string,
    targetTier: SubscriptionTier,
  ): Promise<{ changed: boolean; targetTier: SubscriptionTier; effectiveFrom: string }> {
    const { admin } = this.ctx;
    const store = await admin.single<{ subscription_tier: string | null; subscription_id: string | null }>(
      `SELECT id, owner_user_id, shop_domain, billing_mode, subscription_tier, subscription_id, subscription_status,
              subscription_current_period_end, paddle_customer_id, status, onboarding_completed, created_at
       FROM public.stores WHERE id = $1`,
      [storeId],
    );
    if (store.error || !store.data) throw new Error('Store not found');
    const currentTier = isTier(store.data.subscription_tier) ? store.data.subscription_tier : null;
    if (!store.data.subscription_id) throw new Error('No active subscription found for this store');
    if (currentTier === targetTier) return { changed: false, targetTier, effectiveFrom: 'none' };
    const isUpgrade = currentTier ? TIER_ORDER[targetTier] > TIER_ORDER[currentTier] : true;
    const effectiveFrom = isUpgrade ? 'immediately' : 'next_billing_period';
    const requestId = `req_${randomUUID()}`;
    await this.ctx.paddle.changeSubscriptionPlan({ subscriptionId: store.data.subscription_id, targetTier, requestId, effectiveFrom });
    if (isUpgrade && currentTier) {
      const u = await admin.rows(`UPDATE public.stores SET subscription_tier = $2, subscription_status = 'active' WHERE id = $1`, [
        storeId,
        targetTier,
      ]);
      if (u.error) throw new Error(`Failed to persist upgraded subscription tier: ${u.error.message}`);
      const delta = Math.max(0, TIER_CREDITS[targetTier] - TIER_CREDITS[currentTier]);
      if (delta > 0) {
        const description = `Upgrade ${currentTier} -> ${targetTier} delta credits`;
        await addStoreCredits(admin, {
          p_store_id: storeId,
          p_amount: delta,
          p_type: 'subscription',
          p_request_id: requestId,
          p_description: description,
        });
      }
    }
    return { changed: true, targetTier, effectiveFrom };
  }

  /**
   * updateStoreConfig: the billing mode switch, effective for the next generation request (in-flight ones keep the pool
   * they were charged to). Switching to resell syncs the hidden Shopify credit product; the stand-in keeps existing
   * product ids or makes numeric ones.
   */
  async updateStoreConfig(
    storeId: string,
    billingMode: 'absorb_mode' | 'resell_mode',
    retailCreditPrice: number | null,
  ): Promise<Record<string, unknown>> {
    const { admin } = this.ctx;
    const sets = ['billing_mode = $2', 'retail_credit_price = $3'];
    const params: unknown[] = [storeId, billingMode, billingMode === 'resell_mode' ? retailCreditPrice : null];
    if (billingMode === 'resell_mode' && retailCreditPrice) {
      const current = await admin.single<{
        access_token_encrypted: string | null;
        shopify_product_id: string | null;
        shopify_variant_id: string | null;
      }>('SELECT shop_domain, access_token_encrypted, shopify_product_id, shopify_variant_id FROM public.stores WHERE id = $1', [storeId]);
      if (current.error || !current.data) throw new Error('Store not found');
      if (current.data.access_token_encrypted) {
        const numericId = () => `${Date.now()}${String(Math.floor(Math.random() * 1000)).padStart(3, '0')}`;
        sets.push(`shopify_product_id = $${params.push(current.data.shopify_product_id ?? numericId())}`);
        sets.push(`shopify_variant_id = $${params.push(current.data.shopify_variant_id ?? numericId())}`);
      }
    }
    const r = await admin.single(
      `UPDATE public.stores SET ${sets.join(', ')} WHERE id = $1 RETURNING id, shop_domain, billing_mode, retail_credit_price, subscription_tier, status`,
      params,
    );
    if (r.error || !r.data) throw new Error('Failed to update store configuration');
    return r.data;
  }
}

// packages/api/src/services/b2b-credits.ts and store-analytics.ts as facts: thin service-role wrappers over the RPCs
// (always 1 credit for generations), throwing on an RPC error; the analytics writer only logs its errors.
import { PlatformError, isTier, type SubscriptionTier } from './common.ts';
import type { PostgrestStandIn } from './rest.ts';

export async function deductStoreCredit(admin: PostgrestStandIn, storeId: string, requestId: string, description: string): Promise<boolean> {
  const r = await admin.rpc<boolean>('deduct_store_credits', {
    p_store_id: storeId,
    p_amount: 1,
    p_request_id: requestId,
    p_description: description,
  });
  if (r.error) throw new PlatformError(`Credit deduction failed: ${r.error.message}`);
  return r.data;
}

export async function refundStoreCredit(admin: PostgrestStandIn, storeId: string, requestId: string, description: string): Promise<void> {
  const r = await admin.rpc('refund_store_credits', { p_store_id: storeId, p_amount: 1, p_request_id: requestId, p_description: description });
  if (r.error) throw new PlatformError(`Credit refund failed: ${r.error.message}`);
}

export async function deductStoreShopperCredit(
  admin: PostgrestStandIn,
  storeId: string,
  shopperEmail: string,
  requestId: string,
  description: string,
): Promise<boolean> {
  const r = await admin.rpc<boolean>('deduct_store_shopper_credits', {
    p_store_id: storeId,
    p_shopper_email: shopperEmail.trim().toLowerCase(),
    p_amount: 1,
    p_request_id: requestId,
    p_description: description,
  });
  if (r.error) throw new PlatformError(`Shopper credit deduction failed: ${r.error.message}`);
  return r.data;
}

export async function refundStoreShopperCredit(
  admin: PostgrestStandIn,
  storeId: string,
  shopperEmail: string,
  requestId: string,
  description: string,
): Promise<void> {
  const r = await admin.rpc('refund_store_shopper_credits', {
    p_store_id: storeId,
    p_shopper_email: shopperEmail.trim().toLowerCase(),
    p_amount: 1,
    p_request_id: requestId,
    p_description: description,
  });
  if (r.error) throw new PlatformError(`Shopper credit refund failed: ${r.error.message}`);
}

/**
 * `addStoreCredits(storeId, amount, type, requestId, description)`. Takes the RPC arguments as they reach PostgREST,
 * so a caller that passes the wrong shape (the Paddle renewal grant does) sends exactly what the platform sends.
 */
export async function addStoreCredits(admin: PostgrestStandIn, args: Record<string, unknown>): Promise<void> {
  const r = await admin.rpc('add_store_credits', args);
  if (r.error) {
    const m = r.error.message.toLowerCase();
    if (m.includes('add_store_credits') && m.includes('does not exist')) {
      throw new PlatformError('Add store credits requires migration 008_paddle_billing_schema.sql to be applied');
    }
    throw new PlatformError(`Add store credits failed: ${r.error.message}`);
  }
}

/** The overage decision's input; a failed read means "no subscription". */
export async function getStoreBillingProfile(
  admin: PostgrestStandIn,
  storeId: string,
): Promise<{ subscriptionTier: SubscriptionTier | null; subscriptionId: string | null; subscriptionStatus: string | null }> {
  const r = await admin.single<{ subscription_tier: string | null; subscription_id: string | null; subscription_status: string | null }>(
    'SELECT subscription_tier, subscription_id, subscription_status FROM public.stores WHERE id = $1',
    [storeId],
  );
  if (r.error || !r.data) return { subscriptionTier: null, subscriptionId: null, subscriptionStatus: null };
  return {
    subscriptionTier: isTier(r.data.subscription_tier) ? r.data.subscription_tier : null,
    subscriptionId: r.data.subscription_id ?? null,
    subscriptionStatus: r.data.subscription_status ?? null,
  };
}

export async function logStoreAnalyticsEvent(
  admin: PostgrestStandIn,
  storeId: string,
  eventType: string,
  metadata: Record<string, unknown>,
  shopperEmail?: string,
): Promise<void> {
  await admin.rows('INSERT INTO public.store_analytics_events (store_id, event_type, metadata, shopper_email) VALUES ($1, $2, $3, $4)', [
    storeId,
    eventType,
    metadata,
    shopperEmail || null,
  ]);
}

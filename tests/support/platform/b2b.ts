// B2B: POST /api/v1/generation/create behind withB2BAuth (apps/next/app/api/v1/generation/create/route.ts, read for
// facts), all with the service role: billing mode lookup, then the pool that pays (resell: the shopper by the
// x-shopper-email header; absorb: the store, or an overage billed through Paddle when the pool is empty and the
// subscription allows), session insert, LPUSH of a payload that names no shopper; refunds of that pool on failure.
import { createHash, randomUUID } from 'node:crypto';
import { TIER_OVERAGE_CENTS, b2bError, b2bSuccess, injected, type PlatformContext, type Reply, type SubscriptionTier } from './common.ts';
import { PRODUCER_DEFAULT_PROMPT, TASK_PAYLOAD_VERSION, type PlatformTaskPayload } from './producer.ts';
import {
  deductStoreCredit,
  deductStoreShopperCredit,
  getStoreBillingProfile,
  logStoreAnalyticsEvent,
  refundStoreCredit,
  refundStoreShopperCredit,
} from './storeCredits.ts';

export interface B2bCreateRequest {
  /** `Authorization: Bearer wk_...`. */
  apiKey: string;
  /** `X-Request-Id` (client-controlled); absent -> `req_<uuid>`. */
  requestId?: string;
  /** `x-shopper-email`. */
  shopperEmail?: string;
  /** The JSON body: `{ image_urls, prompt?, age_verified }`. */
  body: unknown;
  fail?: { sessionInsert?: boolean; overageCharge?: boolean; queuePush?: boolean };
}

const uploadPrefix = (storeId: string) => `stores/${storeId}/uploads`;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

export class B2bApi {
  constructor(private readonly ctx: PlatformContext) {}

  /** withB2BAuth's API key check. CORS and the Redis rate limit are not on the credit path and are left out. */
  async authenticateApiKey(apiKey: string): Promise<{ storeId: string; subscriptionTier: string | null } | null> {
    if (!apiKey.startsWith('wk_')) return null;
    const found = await this.ctx.admin.single<{ store_id: string; subscription_tier: string | null; status: string }>(
      `SELECT k.store_id, k.allowed_domains, s.shop_domain, s.subscription_tier, s.status
       FROM public.store_api_keys k JOIN public.stores s ON s.id = k.store_id
       WHERE k.key_hash = $1 AND k.is_active = true`,
      [createHash('sha256').update(apiKey).digest('hex')],
    );
    if (found.error || !found.data || found.data.status !== 'active') return null;
    return { storeId: found.data.store_id, subscriptionTier: found.data.subscription_tier };
  }

  async createGeneration(req: B2bCreateRequest): Promise<Reply & { pushed?: string }> {
    this.ctx.requireProducer();
    const { admin } = this.ctx;
    const requestId = req.requestId || `req_${randomUUID()}`;
    const auth = await this.authenticateApiKey(req.apiKey);
    if (!auth) return b2bError('INVALID_API_KEY', 'Invalid or missing API key', 401);
    const { storeId } = auth;
    const fail = req.fail ?? {};

    if (!req.body || typeof req.body !== 'object') return b2bError('VALIDATION_ERROR', 'Request body must be a JSON object', 400);
    const { image_urls, prompt, age_verified } = req.body as Record<string, unknown>;
    if (age_verified !== true) {
      const message = 'You must be 13 or older to use this feature. Age verification is required for COPPA compliance.';
      return b2bError('AGE_VERIFICATION_REQUIRED', message, 403);
    }
    if (!Array.isArray(image_urls) || image_urls.length === 0)
      return b2bError('VALIDATION_ERROR', 'image_urls must be a non-empty array of URLs', 400);
    if (image_urls.length > 10) return b2bError('VALIDATION_ERROR', 'image_urls must contain at most 10 URLs', 400);
    for (const url of image_urls) {
      if (typeof url !== 'string') return b2bError('VALIDATION_ERROR', 'Each image_urls entry must be a string URL', 400);
      if (!isStoreScopedUploadUrl(url, storeId)) {
        return b2bError('VALIDATION_ERROR', `image_urls must use store-scoped paths under ${uploadPrefix(storeId)}/`, 400);
      }
    }
    const urls = image_urls as string[];
    const resolvedPrompt = typeof prompt === 'string' && prompt.trim() ? prompt.trim() : PRODUCER_DEFAULT_PROMPT;

    const store = await admin.single<{ billing_mode: string }>('SELECT billing_mode FROM public.stores WHERE id = $1', [storeId]);
    if (store.error || !store.data) return b2bError('NOT_FOUND', 'Store configuration not found', 404);
    const billingMode = store.data.billing_mode === 'resell_mode' ? 'resell_mode' : 'absorb_mode';
    const shopperEmail = shopperHeader(req.shopperEmail);
    if (billingMode === 'resell_mode' && !shopperEmail)
      return b2bError('VALIDATION_ERROR', 'x-shopper-email header is required for resell mode', 400);

    let creditDeducted = false;
    let shopperCreditDeducted = false;
    let overagePlan: { subscriptionId: string; tier: SubscriptionTier } | null = null;
    let overageChargeId: string | null = null;
    try {
      if (billingMode === 'resell_mode') {
        if (!(await deductStoreShopperCredit(admin, storeId, shopperEmail!, requestId, 'B2B shopper generation'))) {
          return b2bError('INSUFFICIENT_CREDITS', 'Insufficient shopper credits to create generation', 402);
        }
        shopperCreditDeducted = true;
      } else if (await deductStoreCredit(admin, storeId, requestId, 'B2B generation')) {
        creditDeducted = true;
      } else {
        const profile = await getStoreBillingProfile(admin, storeId);
        const active = profile.subscriptionStatus === 'active' || profile.subscriptionStatus === 'trialing';
        if (!(profile.subscriptionTier && profile.subscriptionId && active)) {
          return b2bError('INSUFFICIENT_CREDITS', 'Insufficient credits to create generation', 402);
        }
        overagePlan = { subscriptionId: profile.subscriptionId, tier: profile.subscriptionTier };
      }
    } catch {
      return b2bError('INTERNAL_ERROR', 'Failed to process credit deduction', 500);
    }

    // In absorb mode a shopper header, when sent, is stored too; the payload never carries it.
    const session = fail.sessionInsert
      ? injected('session insert')
      : await admin.single<{ id: string }>(
          `INSERT INTO public.store_generation_sessions
             (store_id, shopper_email, status, model_image_url, outfit_image_url, prompt_system, credits_used, request_id)
           VALUES ($1, $2, 'queued', $3, $4, $5, 1, $6) RETURNING id`,
          [storeId, shopperEmail, urls[0], urls[1] ?? null, resolvedPrompt, requestId],
        );
    if (session.error || !session.data) {
      if (shopperCreditDeducted) {
        await refundStoreShopperCredit(admin, storeId, shopperEmail!, requestId, 'Session creation failed - shopper refund').catch(() => undefined);
      } else if (creditDeducted) {
        await refundStoreCredit(admin, storeId, requestId, 'Session creation failed - refund').catch(() => undefined);
      }
      return b2bError('INTERNAL_ERROR', 'Failed to create generation session', 500);
    }
    const sessionId = session.data.id;

    if (overagePlan) {
      try {
        if (fail.overageCharge) throw new Error('injected failure: Paddle overage charge');
        overageChargeId = await this.ctx.paddle.createOverageCharge({ ...overagePlan, storeId, sessionId, requestId });
      } catch {
        await admin.rows(
          `UPDATE public.store_generation_sessions SET status = 'failed', error_message = 'Failed to bill overage for generation request' WHERE id = $1`,
          [sessionId],
        );
        return b2bError('SERVICE_UNAVAILABLE', 'Overage billing temporarily unavailable', 503);
      }
      // logStoreOverage: a direct insert (no RPC), amount -1, no balance change; a failure is only logged.
      const cents = TIER_OVERAGE_CENTS[overagePlan.tier];
      await admin.rows(
        `INSERT INTO public.store_credit_transactions (store_id, amount, type, request_id, description) VALUES ($1, $2, 'overage', $3, $4)`,
        [storeId, -1, requestId, `Overage charge (${overagePlan.tier}) billed at ${cents} cents via Paddle charge ${overageChargeId}`],
      );
      // BUG-14: there is no `metadata` column; PostgREST answers an error the route never reads.
      await admin.rows('UPDATE public.store_generation_sessions SET metadata = $2 WHERE id = $1', [
        sessionId,
        { overage_charge_id: overageChargeId, overage_tier: overagePlan.tier },
      ]);
    }

    const payload: PlatformTaskPayload = {
      taskId: randomUUID(),
      channel: 'b2b',
      storeId,
      sessionId,
      imageUrls: urls,
      prompt: resolvedPrompt,
      requestId,
      version: TASK_PAYLOAD_VERSION,
      createdAt: this.ctx.now().toISOString(),
    };
    let pushed: string;
    try {
      pushed = await this.ctx.push(payload, fail.queuePush);
    } catch {
      if (shopperCreditDeducted) {
        await refundStoreShopperCredit(admin, storeId, shopperEmail!, requestId, 'Queue failure - shopper refund').catch(() => undefined);
      } else if (creditDeducted) {
        await refundStoreCredit(admin, storeId, requestId, 'Queue failure - refund').catch(() => undefined);
      } else if (overageChargeId) {
        const reason = 'Queue failure after successful overage billing - service not delivered';
        await this.ctx.paddle.refundOverageCharge({ chargeId: overageChargeId, requestId, reason }).catch(() => undefined);
      }
      await admin.rows(
        `UPDATE public.store_generation_sessions SET status = 'failed', error_message = 'Failed to queue generation task' WHERE id = $1`,
        [sessionId],
      );
      return b2bError('SERVICE_UNAVAILABLE', 'Generation service temporarily unavailable', 503);
    }

    await logStoreAnalyticsEvent(admin, storeId, 'generation_queued', { request_id: requestId, session_id: sessionId });
    return { ...b2bSuccess({ sessionId, status: 'queued' }, 201), pushed };
  }
}

/** The route's check: the decoded *pathname* starts with `/stores/{id}/uploads/`; the host is not checked. */
function isStoreScopedUploadUrl(imageUrl: string, storeId: string): boolean {
  const prefix = `${uploadPrefix(storeId)}/`;
  let pathname: string;
  try {
    pathname = new URL(imageUrl).pathname;
  } catch {
    return false;
  }
  try {
    pathname = decodeURIComponent(pathname);
  } catch {
    // undecodable: compared as it is
  }
  return pathname.startsWith(`/${prefix}`) || pathname.startsWith(prefix);
}

/** `x-shopper-email`: trimmed, lower-cased, a simple address shape, else absent. */
function shopperHeader(raw: string | undefined): string | null {
  const normalized = raw?.trim().toLowerCase();
  return normalized && EMAIL.test(normalized) ? normalized : null;
}

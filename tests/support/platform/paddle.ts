// POST /api/v1/webhooks/paddle (apps/next/app/api/v1/webhooks/paddle/route.ts, read for facts), service role. The
// driver takes the verified event (signature checking is left out). Duplicate check by event id before processing,
// the audit row (billing_webhook_events) after it; credits move through add_store_credits keyed by the *webhook's*
// request id (X-Request-Id or a fresh one), not by anything Paddle sends.
import { randomUUID } from 'node:crypto';
import { PlatformError, TIER_CREDITS, isTier, nonEmpty, type PlatformContext, type Reply } from './common.ts';
import { addStoreCredits } from './storeCredits.ts';

export interface PaddleEvent {
  event_id?: string;
  event_type?: string;
  data?: Record<string, unknown>;
}

export interface PaddleWebhookOptions {
  /** The webhook request's X-Request-Id; absent -> `req_<uuid>` (so each delivery of an event gets a new one). */
  requestId?: string;
  /**
   * `'as-written'` (default) is the platform: the renewal grant calls addStoreCredits with one object instead of its
   * five positional arguments, so PostgREST gets `add_store_credits(p_store_id => <object>)`, which resolves to no
   * function: the webhook answers 500, writes no audit row, and Paddle redelivers. `'intended'` makes the call the code
   * evidently meant (type 'subscription', the webhook's request id).
   */
  renewalCall?: 'as-written' | 'intended';
}

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v && typeof v === 'object' ? (v as Obj) : {});

const STATUS_OF_EVENT: Record<string, string> = {
  'subscription.activated': 'active',
  'subscription.resumed': 'active',
  'subscription.past_due': 'past_due',
  'subscription.paused': 'paused',
  'subscription.canceled': 'canceled',
};

export class PaddleWebhook {
  constructor(private readonly ctx: PlatformContext) {}

  async handle(event: PaddleEvent, o: PaddleWebhookOptions = {}): Promise<Reply> {
    const requestId = o.requestId || `req_${randomUUID()}`;
    const eventId = nonEmpty(event.event_id);
    const eventType = nonEmpty(event.event_type);
    const data = event.data ?? {};
    if (!eventId || !eventType)
      return { status: 400, body: { data: null, error: { code: 'VALIDATION_ERROR', message: 'Missing event_id or event_type' } } };
    const candidateStoreId = nonEmpty(obj(data.custom_data).store_id);

    // By event id only (not provider). A redelivery while the first one is still processing is not caught.
    const existing = await this.ctx.admin.single('SELECT event_id FROM public.billing_webhook_events WHERE event_id = $1', [eventId]);
    if (existing.data) return { status: 200, body: { data: { acknowledged: true, duplicate: true }, error: null } };

    try {
      if (eventType === 'transaction.completed') await this.transactionCompleted(requestId, data);
      else if (eventType.startsWith('subscription.')) await this.subscriptionEvent(requestId, eventType, data, o.renewalCall ?? 'as-written');
    } catch {
      return { status: 500, body: { data: null, error: { code: 'INTERNAL_ERROR', message: 'Webhook processing failed' } } };
    }

    // Error only logged: an audit row that fails to insert leaves the event unprotected against redelivery.
    await this.ctx.admin.rows(
      `INSERT INTO public.billing_webhook_events (provider, event_id, event_type, request_id, store_id, payload) VALUES ('paddle', $1, $2, $3, $4, $5)`,
      [eventId, eventType, requestId, candidateStoreId, event],
    );
    return { status: 200, body: { data: { acknowledged: true }, error: null } };
  }

  private async resolveStoreId(data: Obj): Promise<string | null> {
    const direct = nonEmpty(obj(data.custom_data).store_id);
    if (direct) return direct;
    const subscriptionId = nonEmpty(data.subscription_id) ?? nonEmpty(obj(data.subscription).id) ?? nonEmpty(data.id);
    if (!subscriptionId) return null;
    const store = await this.ctx.admin.single<{ id: string }>('SELECT id FROM public.stores WHERE subscription_id = $1', [subscriptionId]);
    return store.data?.id ?? null;
  }

  private async transactionCompleted(requestId: string, data: Obj): Promise<void> {
    const customData = obj(data.custom_data);
    const purchaseType = nonEmpty(customData.purchase_type);
    const storeId = await this.resolveStoreId(data);
    const subscriptionId = nonEmpty(data.subscription_id) ?? nonEmpty(obj(data.subscription).id);
    const customerId = nonEmpty(data.customer_id) ?? nonEmpty(obj(data.customer).id);
    if (!purchaseType || !storeId) return;

    if (purchaseType === 'subscription') {
      const tier = isTier(customData.tier) ? customData.tier : null;
      const fromPayload = Number(customData.credits);
      const credits = Number.isFinite(fromPayload) && fromPayload > 0 ? fromPayload : tier ? TIER_CREDITS[tier] : 0;
      if (tier) {
        // Its error is not checked.
        await this.ctx.admin.rows(
          `UPDATE public.stores SET subscription_tier = $2, subscription_id = $3, paddle_customer_id = $4, subscription_status = 'active' WHERE id = $1`,
          [storeId, tier, subscriptionId, customerId],
        );
      }
      if (credits > 0) {
        const description = `Paddle subscription top-up (${tier ?? 'unknown_tier'})`;
        await addStoreCredits(this.ctx.admin, {
          p_store_id: storeId,
          p_amount: credits,
          p_type: 'subscription',
          p_request_id: requestId,
          p_description: description,
        });
      }
      return;
    }
    if (purchaseType === 'payg') {
      const credits = Number(customData.credits);
      if (!Number.isFinite(credits) || credits <= 0) return;
      const description = `Paddle PAYG purchase (${credits} credits)`;
      await addStoreCredits(this.ctx.admin, {
        p_store_id: storeId,
        p_amount: credits,
        p_type: 'purchase',
        p_request_id: requestId,
        p_description: description,
      });
    }
    // 'overage' (Paddle's own transaction for a charge the create route made) and the rest: acknowledged, nothing written.
  }

  private async subscriptionEvent(requestId: string, eventType: string, data: Obj, renewalCall: 'as-written' | 'intended'): Promise<void> {
    const storeId = await this.resolveStoreId(data);
    if (!storeId) return;
    const status = nonEmpty(data.status) ?? STATUS_OF_EVENT[eventType] ?? null;
    const periodEnd = nonEmpty(obj(data.current_billing_period).ends_at);
    if (status || periodEnd) {
      const sets: string[] = [];
      const params: unknown[] = [storeId];
      if (status) sets.push(`subscription_status = $${params.push(status)}`);
      if (periodEnd) sets.push(`subscription_current_period_end = $${params.push(periodEnd)}`);
      const r = await this.ctx.admin.rows(`UPDATE public.stores SET ${sets.join(', ')} WHERE id = $1`, params);
      if (r.error) throw new PlatformError(`Store subscription update failed: ${r.error.message}`);
    }

    const isRenewal = (eventType === 'subscription.updated' && status === 'active') || eventType === 'subscription.activated';
    if (!isRenewal) return;
    const store = await this.ctx.admin.single<{ subscription_tier: string | null }>('SELECT subscription_tier FROM public.stores WHERE id = $1', [
      storeId,
    ]);
    if (store.error || !store.data) throw new PlatformError('Store lookup failed for renewal crediting');
    const tier = store.data.subscription_tier;
    if (!tier) return;
    // The tier table has no entry for anything else (e.g. 'enterprise'): a TypeError, so a 500.
    if (!isTier(tier)) throw new PlatformError(`unknown tier ${tier}`);
    const credits = TIER_CREDITS[tier];
    const description = `Subscription renewal: ${tier} tier monthly credits`;
    if (renewalCall === 'intended') {
      await addStoreCredits(this.ctx.admin, {
        p_store_id: storeId,
        p_amount: credits,
        p_type: 'subscription',
        p_request_id: requestId,
        p_description: description,
      });
    } else {
      // addStoreCredits({ storeId, amount, description, requestId }): the object lands in p_store_id; the other
      // positional parameters are undefined and vanish from the JSON body.
      await addStoreCredits(this.ctx.admin, { p_store_id: { storeId, amount: credits, description, requestId } });
    }
  }
}

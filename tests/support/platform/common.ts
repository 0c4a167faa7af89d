// What the driver's path modules share: the context they run in (the service-role client, the producer, the Paddle
// stand-in, the platform's clock), the platform's constants, its reply shapes and its small input parsers. Written from
// the facts in /work/shared/reference/original-system.md and the platform's routes (read for facts, never copied).
import type { Redis } from 'ioredis';
import type pg from 'pg';
import { producerSnakeCase, pushGenerationTask, type PlatformTaskPayload } from './producer.ts';
import type { PostgrestStandIn, RestError } from './rest.ts';

export type SubscriptionTier = 'starter' | 'growth' | 'scale';
/** packages/api/src/services/paddle.ts tier table (original-system.md §2.3). */
export const TIER_CREDITS: Record<SubscriptionTier, number> = { starter: 350, growth: 800, scale: 1800 };
export const TIER_OVERAGE_CENTS: Record<SubscriptionTier, number> = { starter: 16, growth: 14, scale: 12 };
export const isTier = (v: unknown): v is SubscriptionTier => v === 'starter' || v === 'growth' || v === 'scale';

/** What the platform asks Paddle for. */
export interface PaddleStandIn {
  /** POST /subscriptions/{id}/charge. Paddle answers with the subscription entity, so the "charge id" the platform
   *  keeps (`data.id`) is the subscription id; the default stand-in returns exactly that. */
  createOverageCharge(input: {
    subscriptionId: string;
    tier: SubscriptionTier;
    storeId: string;
    sessionId: string;
    requestId: string;
  }): Promise<string>;
  /** POST /adjustments; the platform logs and swallows any failure. */
  refundOverageCharge(input: { chargeId: string; requestId: string; reason: string }): Promise<void>;
  /** PATCH /subscriptions/{id}. */
  changeSubscriptionPlan(input: {
    subscriptionId: string;
    targetTier: SubscriptionTier;
    requestId: string;
    effectiveFrom: 'immediately' | 'next_billing_period';
  }): Promise<void>;
}

/** Everything a path needs. `admin` is the service-role client (`getAdminClient()`, the routes' `createClient`). */
export interface PlatformContext {
  pool: pg.Pool;
  admin: PostgrestStandIn;
  paddle: PaddleStandIn;
  now(): Date;
  /** The producer: LPUSH of the task's JSON, or `Error('Redis queue unavailable')`. Returns the text pushed. */
  push(payload: PlatformTaskPayload, fail?: boolean): Promise<string>;
  /** Throws when the driver has no Redis client: a setup error, raised before a path that pushes starts. */
  requireProducer(): void;
}

export function producer(redis: Redis | undefined, queueKey: string): Pick<PlatformContext, 'push' | 'requireProducer'> {
  const need = (): Redis => {
    if (!redis) throw new Error('PlatformDriver: this path pushes a task; pass `redis` to the driver');
    return redis;
  };
  return {
    requireProducer: () => void need(),
    push: async (payload, fail) => {
      if (fail) throw new Error('Redis queue unavailable');
      return pushGenerationTask(need(), queueKey, payload);
    },
  };
}

/** Thrown where the platform's code throws; the calling route turns it into its answer, as the platform does. */
export class PlatformError extends Error {}

/** An HTTP answer of one of the platform's Next.js routes. */
export interface Reply<B = Record<string, unknown>> {
  status: number;
  body: B;
}

/** The B2B envelope: `{ data: null, error: { code, message } }`. */
export const b2bError = (code: string, message: string, status: number): Reply => ({ status, body: { data: null, error: { code, message } } });
/** The B2B envelope on success; `data` keys are snake_cased. */
export const b2bSuccess = (data: Record<string, unknown>, status = 200): Reply => ({ status, body: { data: producerSnakeCase(data), error: null } });
/** What the webhooks answer whenever they do not want a retry. */
export const ack = (data: Record<string, unknown> = {}): Reply => ({ status: 200, body: { data: { acknowledged: true, ...data }, error: null } });

/** A failure the test asked for at one step, shaped like the PostgREST error the platform would get there. */
export function injected(step: string): { data: null; error: RestError } {
  return { data: null, error: { code: 'INJECTED', message: `injected failure: ${step}` } };
}

export const nonEmpty = (v: unknown): string | null => (typeof v === 'string' && v.length > 0 ? v : null);
export const nonEmptyTrimmed = (v: unknown): string | null => (typeof v === 'string' && v.trim().length > 0 ? v.trim() : null);

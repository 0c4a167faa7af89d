// The web platform's credit-moving code paths, driven against a platform database (database.ts). Written for this
// fixture from the facts in /work/shared/reference/original-system.md §1-§3 and the platform's routes (read for facts,
// never copied): each path makes the platform's database calls in the platform's order with its arguments, under its
// role (one PostgREST request per supabase-js call, see rest.ts), and pushes the producer's task JSON onto Redis.
// Failure branches (refunds after a failed insert or push) run as the platform runs them; `fail` options make one
// external step fail (a request, the push, Paddle), nothing else.
//
//   driver.signUp                     GoTrue's insert into auth.users (handle_new_user does the rest)
//   driver.b2c.create                 tRPC generation.create (user JWT, RLS)                               b2c.ts
//   driver.b2b.createGeneration       POST /api/v1/generation/create (API key; resell / absorb / overage)  b2b.ts
//   driver.cron.run | .recoverStuckJobs | .cleanupOldSessions   daily /api/cron/cleanup                    cron.ts
//   driver.paddle.handle              POST /api/v1/webhooks/paddle (purchases, subscription events)         paddle.ts
//   driver.shopify.orderCreated       POST /api/v1/webhooks/shopify/orders (store pool -> shopper)          shopify.ts
//   driver.shopify.appUninstalled     POST /api/v1/webhooks/shopify/app (store uninstall)                  shopify.ts
//   driver.merchant.provisionStore | .changePlan | .updateStoreConfig   install, plan change, billing mode  merchant.ts
import type { Redis } from 'ioredis';
import type pg from 'pg';
import { B2bApi } from './b2b.ts';
import { B2cGeneration } from './b2c.ts';
import { producer, type PaddleStandIn, type PlatformContext } from './common.ts';
import { CleanupCron } from './cron.ts';
import { MerchantOps } from './merchant.ts';
import { PaddleWebhook } from './paddle.ts';
import { PLATFORM_QUEUE_KEY } from './producer.ts';
import { PostgrestStandIn, SERVICE_ROLE } from './rest.ts';
import { ShopifyWebhooks } from './shopify.ts';

export interface PlatformDriverOptions {
  pool: pg.Pool;
  /** The producer's Redis client; the paths that never push (webhooks, cron, merchant, signup) run without one. */
  redis?: Redis;
  /** Where the producer LPUSHes; the platform uses `wearon:tasks:generation`, a test its own unique key. */
  queueKey?: string;
  /** Replaces parts of the Paddle stand-in (every call is recorded in `paddleCalls` either way). */
  paddle?: Partial<PaddleStandIn>;
  /** The platform's clock (its code reads Date.now / new Date): cron cut-offs, `created_at` in payloads. */
  now?: () => Date;
}

export interface PaddleCall {
  op: keyof PaddleStandIn;
  input: Record<string, unknown>;
}

export class PlatformDriver {
  readonly queueKey: string;
  /** Every call the platform made to Paddle, in order. */
  readonly paddleCalls: PaddleCall[] = [];
  readonly b2c: B2cGeneration;
  readonly b2b: B2bApi;
  readonly cron: CleanupCron;
  readonly paddle: PaddleWebhook;
  readonly shopify: ShopifyWebhooks;
  readonly merchant: MerchantOps;
  private readonly pool: pg.Pool;

  constructor(o: PlatformDriverOptions) {
    this.pool = o.pool;
    this.queueKey = o.queueKey ?? PLATFORM_QUEUE_KEY;
    const calls = this.paddleCalls;
    const record = (op: keyof PaddleStandIn, input: object) => calls.push({ op, input: { ...input } });
    // Paddle answers a one-time charge with the subscription entity: its id is what the platform records.
    const paddle: PaddleStandIn = {
      createOverageCharge: async (input) => (record('createOverageCharge', input), o.paddle?.createOverageCharge?.(input) ?? input.subscriptionId),
      refundOverageCharge: async (input) => (record('refundOverageCharge', input), o.paddle?.refundOverageCharge?.(input)),
      changeSubscriptionPlan: async (input) => (record('changeSubscriptionPlan', input), o.paddle?.changeSubscriptionPlan?.(input)),
    };
    const ctx: PlatformContext = {
      pool: o.pool,
      admin: new PostgrestStandIn(o.pool, SERVICE_ROLE),
      paddle,
      now: o.now ?? (() => new Date()),
      ...producer(o.redis, this.queueKey),
    };
    this.b2c = new B2cGeneration(ctx);
    this.b2b = new B2bApi(ctx);
    this.cron = new CleanupCron(ctx);
    this.paddle = new PaddleWebhook(ctx);
    this.shopify = new ShopifyWebhooks(ctx);
    this.merchant = new MerchantOps(ctx);
  }

  /** Signup: GoTrue inserts the auth user (its own admin role, past RLS); the platform's trigger does the rest. */
  async signUp(o: { email: string; id?: string; displayName?: string; avatarUrl?: string }): Promise<{ userId: string }> {
    const meta: Record<string, string> = {};
    if (o.displayName) meta.display_name = o.displayName;
    if (o.avatarUrl) meta.avatar_url = o.avatarUrl;
    const { rows } = await this.pool.query<{ id: string }>(
      'INSERT INTO auth.users (id, email, raw_user_meta_data) VALUES (coalesce($1::uuid, gen_random_uuid()), $2, $3) RETURNING id',
      [o.id ?? null, o.email, meta],
    );
    return { userId: rows[0]!.id };
  }
}

export type { B2bCreateRequest } from './b2b.ts';
export type { B2cCreateInput, B2cCreateResult, TrpcResult } from './b2c.ts';
export { TIER_CREDITS, TIER_OVERAGE_CENTS, type PaddleStandIn, type Reply, type SubscriptionTier } from './common.ts';
export type { StuckJobRecoveryResult } from './cron.ts';
export type { PaddleEvent, PaddleWebhookOptions } from './paddle.ts';
export type { ShopifyOrderRequest } from './shopify.ts';

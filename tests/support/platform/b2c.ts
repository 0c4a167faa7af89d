// B2C: tRPC `generation.create` (packages/api/src/routers/generation.ts, read for facts). Every database call runs
// with the user's JWT (role authenticated, RLS applies), each one its own request: pre-check, deduct_credits, session
// insert, LPUSH, analytics; refund_credits when the insert or the push fails.
import { randomUUID } from 'node:crypto';
import { injected, type PlatformContext } from './common.ts';
import { PRODUCER_DEFAULT_PROMPT, TASK_PAYLOAD_VERSION, type PlatformTaskPayload } from './producer.ts';
import { PostgrestStandIn, asUser, type RestError } from './rest.ts';

/** tRPC's answer: the procedure's value, or the error code and message the client sees. */
export type TrpcResult<T> =
  { ok: true; value: T } | { ok: false; code: 'BAD_REQUEST' | 'FORBIDDEN' | 'TIMEOUT' | 'INTERNAL_SERVER_ERROR'; message: string };

export interface B2cCreateInput {
  modelImageUrl: string;
  outfitImageUrl?: string;
  accessories?: { type: string; url: string }[];
  ageVerified: boolean;
}

export interface B2cCreateResult {
  sessionId: string;
  status: 'queued';
  message: string;
  /** Not part of the tRPC answer: the JSON text the producer pushed, for the test. */
  pushed: string;
  /** Not part of the tRPC answer: the `generation_started` analytics insert, which RLS refuses and the route ignores. */
  analyticsError: RestError | null;
}

const INSUFFICIENT = 'Insufficient credits. You need at least 1 credit to generate an image.';

export class B2cGeneration {
  constructor(private readonly ctx: PlatformContext) {}

  async create(
    userId: string,
    input: B2cCreateInput,
    fail: { sessionInsert?: boolean; queuePush?: boolean } = {},
  ): Promise<TrpcResult<B2cCreateResult>> {
    this.ctx.requireProducer();
    const internal = (message: string) => ({ ok: false as const, code: 'INTERNAL_SERVER_ERROR' as const, message });
    if (!isUrl(input.modelImageUrl) || (input.outfitImageUrl !== undefined && !isUrl(input.outfitImageUrl))) {
      return { ok: false, code: 'BAD_REQUEST', message: 'Invalid url' }; // the procedure's zod input schema
    }
    if (input.ageVerified !== true) {
      return {
        ok: false,
        code: 'FORBIDDEN',
        message: 'You must be 13 or older to use this feature. Age verification is required for COPPA compliance.',
      };
    }
    const db = new PostgrestStandIn(this.ctx.pool, asUser(userId));

    const credits = await db.single<{ balance: number }>('SELECT balance FROM public.user_credits WHERE user_id = $1', [userId]);
    if (credits.error || !credits.data) return internal('Failed to fetch user credits');
    if (credits.data.balance < 1) return internal(INSUFFICIENT);

    const deducted = await db.rpc<boolean>('deduct_credits', { p_user_id: userId, p_amount: 1, p_description: 'Virtual try-on generation' });
    if (deducted.error) return internal(`Failed to deduct credits: ${deducted.error.message}`);
    if (deducted.data === false) return internal(INSUFFICIENT);

    const session = fail.sessionInsert
      ? injected('session insert')
      : await db.single<{ id: string }>(
          `INSERT INTO public.generation_sessions (user_id, status, model_image_url, outfit_image_url, accessories, prompt_system, credits_used)
           VALUES ($1, 'queued', $2, $3, $4, $5, 1) RETURNING id`,
          [userId, input.modelImageUrl, input.outfitImageUrl ?? null, JSON.stringify(input.accessories || []), PRODUCER_DEFAULT_PROMPT],
        );
    if (session.error || !session.data) {
      await db.rpc('refund_credits', { p_user_id: userId, p_amount: 1, p_description: 'Generation session creation failed - refund' });
      return internal(`Failed to create generation session: ${session.error?.message || 'Unknown error'}`);
    }
    const sessionId = session.data.id;

    // Model first, outfit second, accessories after.
    const imageUrls = [input.modelImageUrl];
    if (input.outfitImageUrl) imageUrls.push(input.outfitImageUrl);
    for (const a of input.accessories ?? []) imageUrls.push(a.url);
    const payload: PlatformTaskPayload = {
      taskId: randomUUID(),
      channel: 'b2c',
      userId,
      sessionId,
      imageUrls,
      prompt: PRODUCER_DEFAULT_PROMPT,
      requestId: `req_${randomUUID()}`,
      version: TASK_PAYLOAD_VERSION,
      createdAt: this.ctx.now().toISOString(),
    };

    try {
      const pushed = await this.ctx.push(payload, fail.queuePush);
      // With the user's JWT: analytics_events has no INSERT policy for users, so RLS refuses this row, unnoticed.
      const analytics = await db.rows('INSERT INTO public.analytics_events (event_type, user_id, metadata) VALUES ($1, $2, $3)', [
        'generation_started',
        userId,
        { session_id: sessionId, has_outfit: !!input.outfitImageUrl, accessories_count: input.accessories?.length || 0 },
      ]);
      return {
        ok: true,
        value: { sessionId, status: 'queued', message: 'Generation job queued successfully', pushed, analyticsError: analytics.error },
      };
    } catch {
      await db.rpc('refund_credits', { p_user_id: userId, p_amount: 1, p_description: 'Queue error - refund' });
      await db.rows(`UPDATE public.generation_sessions SET status = 'failed', error_message = 'Failed to queue job' WHERE id = $1`, [sessionId]);
      // tRPC has no SERVICE_UNAVAILABLE; the platform answers TIMEOUT.
      return { ok: false, code: 'TIMEOUT', message: 'Generation service temporarily unavailable. Please try again later.' };
    }
  }
}

function isUrl(s: string): boolean {
  try {
    new URL(s);
    return true;
  } catch {
    return false;
  }
}

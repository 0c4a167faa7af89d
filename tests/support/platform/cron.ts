// The daily Vercel cron GET/POST /api/cron/cleanup (apps/next/app/api/cron/cleanup/route.ts and
// packages/api/src/services/storage-cleanup.ts, read for facts), service role: storage file cleanup (left out: no
// storage here), then cleanupOldSessions, then recoverStuckJobs. B2C only; nothing touches the B2B sessions.
import type { PlatformContext } from './common.ts';

export interface StuckJobRecoveryResult {
  recoveredCount: number;
  refundedCount: number;
  errors: { sessionId: string; error: string }[];
}

const STUCK_JOB_TIMEOUT_MINUTES = 10;
const URL_EXPIRY_HOURS = 6;

export class CleanupCron {
  constructor(private readonly ctx: PlatformContext) {}

  /** The route's order. `now` moves the platform's clock for this run (instead of waiting for real minutes). */
  async run(o: { now?: Date } = {}): Promise<{ sessionsUpdated: number; stuckJobs: StuckJobRecoveryResult }> {
    const sessionsUpdated = await this.cleanupOldSessions(o);
    const stuckJobs = await this.recoverStuckJobs(o);
    return { sessionsUpdated, stuckJobs };
  }

  /** B2C sessions created more than 6 h ago get the literal URL 'expired' in all three URL columns, whatever their status. */
  async cleanupOldSessions(o: { now?: Date } = {}): Promise<number> {
    const cutoff = new Date((o.now ?? this.ctx.now()).getTime() - URL_EXPIRY_HOURS * 3_600_000);
    const r = await this.ctx.admin.rows(
      `UPDATE public.generation_sessions SET model_image_url = 'expired', outfit_image_url = 'expired', generated_image_url = 'expired'
       WHERE created_at < $1 AND model_image_url <> 'expired' RETURNING id`,
      [cutoff.toISOString()],
    );
    return r.error ? 0 : r.data.length;
  }

  /**
   * B2C sessions queued/pending/processing created more than 10 minutes ago, one by one: refund_credits first (no
   * check of what was charged, no idempotency), then status failed + completed_at, unconditionally (a session the
   * worker finished in between is overwritten), then analytics. Three separate requests, no transaction.
   */
  async recoverStuckJobs(o: { now?: Date } = {}): Promise<StuckJobRecoveryResult> {
    const { admin } = this.ctx;
    const result: StuckJobRecoveryResult = { recoveredCount: 0, refundedCount: 0, errors: [] };
    const now = o.now ?? this.ctx.now();
    const cutoff = new Date(now.getTime() - STUCK_JOB_TIMEOUT_MINUTES * 60_000);
    const stuck = await admin.rows<{ id: string; user_id: string; status: string; created_at: Date }>(
      `SELECT id, user_id, status, created_at FROM public.generation_sessions
       WHERE status IN ('processing', 'pending', 'queued') AND created_at < $1`,
      [cutoff.toISOString()],
    );
    if (stuck.error) {
      result.errors.push({ sessionId: 'fetch', error: stuck.error.message });
      return result;
    }
    for (const s of stuck.data) {
      const refund = await admin.rpc('refund_credits', {
        p_user_id: s.user_id,
        p_amount: 1,
        p_description: `Stuck job recovery: session ${s.id} timed out after ${STUCK_JOB_TIMEOUT_MINUTES} minutes`,
      });
      if (refund.error) result.errors.push({ sessionId: s.id, error: `Refund failed: ${refund.error.message}` });
      else result.refundedCount++;

      const update = await admin.rows(
        `UPDATE public.generation_sessions SET status = 'failed', error_message = $2, completed_at = $3 WHERE id = $1`,
        [s.id, `Job timed out after ${STUCK_JOB_TIMEOUT_MINUTES} minutes - credits refunded`, now.toISOString()],
      );
      if (update.error) result.errors.push({ sessionId: s.id, error: `Update failed: ${update.error.message}` });
      else result.recoveredCount++;

      await admin.rows('INSERT INTO public.analytics_events (event_type, user_id, metadata) VALUES ($1, $2, $3)', [
        'stuck_job_recovered',
        s.user_id,
        {
          session_id: s.id,
          original_status: s.status,
          stuck_duration_minutes: Math.round((now.getTime() - new Date(s.created_at).getTime()) / 60_000),
        },
      ]);
    }
    return result;
  }
}

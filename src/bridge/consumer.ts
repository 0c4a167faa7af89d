// The worker's side of the bridge: applies the commands the platform's database recorded in wearon.credit_inbox to
// the ledger, each exactly once in effect. Woken by NOTIFY (milliseconds after the platform's commit) and by a poll
// (a missed notification, a restart, a command that failed for a transient reason). Rows are claimed with
// FOR UPDATE SKIP LOCKED, so several workers share the inbox without applying one command twice at the same time;
// the mark commits after the ledger append, and a crash in between re-applies the command, which the ledger's
// reference makes a no-op.
import pg from 'pg';
import type { Logger } from '../logger.ts';
import { handlerOf, InvalidInboxPayload, type InboxDeps, type InboxOutcome } from './commands.ts';
import { INBOX_CHANNEL } from './migration.ts';

export interface InboxConsumerOptions {
  connectionString: string;
  deps: InboxDeps;
  logger: Logger;
  /** poll interval (ms): the fallback when no notification arrives */
  pollMs?: number;
  /** rows claimed per transaction */
  batchSize?: number;
}

export interface InboxRow {
  id: string;
  type: string;
  payload: unknown;
  created_at: Date;
}

/** What one pass did: commands marked per outcome, and commands left pending (transient errors, unknown types). */
export interface DrainResult {
  applied: number;
  rejected: number;
  ignored: number;
  pending: number;
}

const INBOX_EXISTS = `SELECT to_regclass('wearon.credit_inbox') IS NOT NULL AS ok`;

export class InboxConsumer {
  private readonly pool: pg.Pool;
  private listener: pg.Client | null = null;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<DrainResult> | null = null;
  private again = false;
  private stopped = false;

  constructor(private readonly options: InboxConsumerOptions) {
    this.pool = new pg.Pool({ connectionString: options.connectionString, max: 2 });
    this.pool.on('error', (err) => options.logger.warn({ err }, 'bridge_inbox_pg_idle_error'));
  }

  async start(): Promise<void> {
    await this.listen();
    const pollMs = this.options.pollMs ?? 1000;
    this.timer = setInterval(() => this.wake(), pollMs);
    this.timer.unref();
    this.wake();
  }

  private async listen(): Promise<void> {
    const client = new pg.Client({ connectionString: this.options.connectionString });
    client.on('error', (err) => {
      // The poll keeps the inbox moving; a new listener is opened on the next start of a pass.
      this.options.logger.warn({ err }, 'bridge_inbox_listener_lost');
      this.listener = null;
      void client.end().catch(() => undefined);
    });
    client.on('notification', () => this.wake());
    await client.connect();
    await client.query(`LISTEN ${INBOX_CHANNEL}`);
    this.listener = client;
  }

  /** Starts a pass now, or right after the one running (a notification during a pass is never missed). */
  wake(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.drain()
      .catch((err: unknown) => {
        this.options.logger.error({ err }, 'bridge_inbox_pass_failed');
        return { applied: 0, rejected: 0, ignored: 0, pending: 0 };
      })
      .finally(() => {
        this.running = null;
        if (this.again) {
          this.again = false;
          this.wake();
        }
      });
    if (!this.listener && !this.stopped) void this.listen().catch(() => undefined);
  }

  /**
   * Applies every pending command now (intake asks before refusing a charge for lack of credits: a signup bonus
   * recorded a moment ago must not lose the user's first generation). Waits for a running pass first.
   */
  async drainNow(): Promise<DrainResult> {
    while (this.running) await this.running;
    const run = this.drain();
    this.running = run.finally(() => (this.running = null));
    return run;
  }

  /** Passes until a pass claims nothing new (or only commands that stay pending). */
  async drain(): Promise<DrainResult> {
    const total: DrainResult = { applied: 0, rejected: 0, ignored: 0, pending: 0 };
    if (!(await this.pool.query<{ ok: boolean }>(INBOX_EXISTS)).rows[0]?.ok) return total;
    const seen = new Set<string>();
    for (;;) {
      const r = await this.pass(seen);
      total.applied += r.applied;
      total.rejected += r.rejected;
      total.ignored += r.ignored;
      total.pending += r.pending;
      if (r.applied + r.rejected + r.ignored + r.pending === 0 || this.stopped) return total;
    }
  }

  /** One transaction: claim a batch, apply each command, mark it; rows seen in this drain and left pending are skipped. */
  private async pass(seen: Set<string>): Promise<DrainResult> {
    const result: DrainResult = { applied: 0, rejected: 0, ignored: 0, pending: 0 };
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const { rows } = await client.query<InboxRow>(
        `SELECT id::text AS id, type, payload, created_at FROM wearon.credit_inbox
         WHERE processed_at IS NULL AND NOT (id::text = ANY($1::text[]))
         ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED`,
        [[...seen], this.options.batchSize ?? 50],
      );
      for (const row of rows) {
        seen.add(row.id);
        const outcome = await this.apply(row);
        if ('pending' in outcome) {
          result.pending += 1;
          await client.query(`UPDATE wearon.credit_inbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1`, [row.id, outcome.pending.slice(0, 1000)]);
          continue;
        }
        result[outcome.outcome] += 1;
        await client.query(`UPDATE wearon.credit_inbox SET processed_at = now(), outcome = $2, reason = $3, attempts = attempts + 1 WHERE id = $1`, [
          row.id,
          outcome.outcome,
          outcome.outcome === 'applied' ? null : outcome.reason,
        ]);
        // A rejection is a finance event: said at warn level with what was refused.
        if (outcome.outcome === 'rejected') this.options.logger.warn({ inbox_id: row.id, type: row.type, reason: outcome.reason }, 'bridge_command_rejected');
      }
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
    return result;
  }

  /** The command's outcome, or why it stays pending (a transient failure, or a type this version does not know). */
  private async apply(row: InboxRow): Promise<InboxOutcome | { pending: string }> {
    const handler = handlerOf(row.type);
    if (!handler) return { pending: `no handler for command type ${JSON.stringify(row.type)} in this worker version` };
    let payload: unknown;
    try {
      payload = handler.parse(row.payload);
    } catch (err) {
      if (err instanceof InvalidInboxPayload) return { outcome: 'rejected', reason: `invalid_payload: ${err.message}` };
      throw err;
    }
    try {
      return await handler.handle(this.options.deps, { id: row.id, type: row.type, payload, createdAt: row.created_at.toISOString() });
    } catch (err) {
      this.options.logger.warn({ err, inbox_id: row.id, type: row.type }, 'bridge_command_retry_later');
      return { pending: String(err instanceof Error ? err.message : err) };
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    while (this.running) await this.running.catch(() => undefined);
    await this.listener?.end().catch(() => undefined);
    await this.pool.end();
  }
}

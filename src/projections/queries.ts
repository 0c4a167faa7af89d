// Read-model queries for the console: outcomes per hour, and the ledger entries one generation caused.
import { REJECTION_MESSAGES } from './sessionStatus.ts';
import type { ReadModel } from './readModel.ts';
import { LEDGER_ENTRIES, SESSIONS } from './schema.ts';

export type Outcome = 'completed' | 'failed' | 'rejected';

export interface HourBucket {
  /** start of the hour, ISO-8601 UTC */
  hour: string;
  completed: number;
  failed: number;
  rejected: number;
}

const REJECTION_CODES = Object.keys(REJECTION_MESSAGES);

/**
 * Finished generations per hour of their outcome (completed_at) over the last `hours` hours, oldest first, every hour
 * present (zeros included). Rejections are the sessions that failed with a rejection code.
 */
export async function generationsPerHour(readModel: ReadModel, hours: number, now = Date.now()): Promise<HourBucket[]> {
  const firstHour = Math.floor(now / 3_600_000) * 3_600_000 - (hours - 1) * 3_600_000;
  const since = new Date(firstHour).toISOString();
  const hourExpr =
    readModel.dialect === 'postgres' ? `to_char(completed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24')` : 'substr(completed_at, 1, 13)';
  const codes = REJECTION_CODES.map(() => '?').join(', ');
  const rows = await readModel.query(
    `SELECT ${hourExpr} AS hour,
       CASE WHEN status = 'completed' THEN 'completed' WHEN error_code IN (${codes}) THEN 'rejected' ELSE 'failed' END AS outcome,
       COUNT(*) AS n
     FROM ${SESSIONS.name}
     WHERE completed_at >= ? AND status IN ('completed', 'failed')
     GROUP BY 1, 2`,
    [...REJECTION_CODES, since],
  );
  const buckets = Array.from({ length: hours }, (_, i): HourBucket => ({
    hour: new Date(firstHour + i * 3_600_000).toISOString(),
    completed: 0,
    failed: 0,
    rejected: 0,
  }));
  const byHour = new Map(buckets.map((b) => [b.hour.slice(0, 13), b]));
  for (const r of rows) {
    const b = byHour.get(String(r.hour));
    if (b) b[r.outcome as Outcome] += Number(r.n);
  }
  return buckets;
}

export interface Movement {
  event_id: string;
  account: string;
  event_type: string;
  amount: number;
  credits: number;
  balance_after: number;
  held_after: number;
  reason: string | null;
  occurred_at: string;
}

/** The account movements (hold, capture, refund) of one generation, as the credit-balances projection recorded them. */
export async function movementsOfGeneration(readModel: ReadModel, sessionId: string): Promise<Movement[]> {
  const rows = await readModel.query(
    `SELECT event_id, account, event_type, amount, credits, balance_after, held_after, reason, occurred_at
     FROM ${LEDGER_ENTRIES.name} WHERE generation_id = ? ORDER BY global_commit, global_prepare`,
    [sessionId],
  );
  return rows.map((r) => ({
    event_id: String(r.event_id),
    account: String(r.account),
    event_type: String(r.event_type),
    amount: Number(r.amount),
    credits: Number(r.credits),
    balance_after: Number(r.balance_after),
    held_after: Number(r.held_after),
    reason: (r.reason as string | null) ?? null,
    occurred_at: new Date(r.occurred_at as string).toISOString(),
  }));
}

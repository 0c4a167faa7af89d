// What `wearon verify` checks of the bridge: every command the platform recorded is applied, rejected with a reason,
// or ignored with a reason (the table's CHECKs enforce the reasons); one still pending after the grace is named.
import type { Drift } from '../projections/drift.ts';
import type { ReadModel } from '../projections/readModel.ts';

/** A command younger than this may simply not have been applied yet (NOTIFY, a poll away). */
export const INBOX_GRACE_SECONDS = 60;

export async function inboxDrifts(readModel: ReadModel, graceSeconds = INBOX_GRACE_SECONDS): Promise<Drift[]> {
  if (readModel.dialect !== 'postgres') return [];
  const [exists] = await readModel.query(`SELECT to_regclass('wearon.credit_inbox') IS NOT NULL AS ok`);
  if (!exists?.ok) return [];
  const rows = await readModel.query(
    `SELECT id::text AS id, type, attempts, last_error FROM wearon.credit_inbox
     WHERE processed_at IS NULL AND created_at < now() - make_interval(secs => ?) ORDER BY id LIMIT 1000`,
    [graceSeconds],
  );
  return rows.map((r) => ({
    projection: 'bridge' as const,
    table: 'wearon.credit_inbox',
    key: String(r.id),
    kind: 'missing' as const,
    column: 'outcome',
    expected: 'applied, rejected or ignored',
    actual: `pending ${String(r.type)} (${Number(r.attempts)} attempts${r.last_error ? `, last error: ${String(r.last_error)}` : ''})`,
  }));
}

// Installs or removes the bridge in the platform's database: the same SQL `wearon migrate --print-sql` prints, in one
// transaction (all of it or nothing).
import pg from 'pg';
import { bridgeDownSql, bridgeUpSql } from './migration.ts';

export async function applyBridge(connectionString: string, direction: 'up' | 'down'): Promise<void> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    await client.query('BEGIN');
    // One installer at a time (a second waits, then finds everything in place).
    await client.query(`SELECT pg_advisory_xact_lock(hashtext('wearon:bridge'))`);
    await client.query(direction === 'up' ? bridgeUpSql() : bridgeDownSql());
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    await client.end();
  }
}

/** Whether the bridge is installed: the inbox exists and the platform's functions are saved. */
export async function bridgeInstalled(client: Pick<pg.ClientBase, 'query'>): Promise<boolean> {
  const r = await client.query<{ installed: boolean }>(
    `SELECT to_regclass('wearon.replaced_functions') IS NOT NULL AND to_regclass('wearon.credit_inbox') IS NOT NULL AS installed`,
  );
  return r.rows[0]?.installed === true;
}

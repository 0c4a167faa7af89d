// The bridge migration on the platform-schema fixture (real Postgres): it installs, re-installs without change, and
// its down migration restores every platform function exactly as it was deployed; the printed files are what runs.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyBridge, bridgeInstalled } from '../../src/bridge/install.ts';
import { BRIDGE_PIECES, bridgeDownSql, bridgeUpSql, migrationFile } from '../../src/bridge/migration.ts';
import { openPgReadModel } from '../../src/adapters/readmodel/postgres/pgReadModel.ts';
import { createPlatformDatabase, type PlatformDatabase } from '../support/platform/database.ts';
import { postgresAvailable } from '../support/services.ts';

const pgOk = await postgresAvailable();
const REPLACED = BRIDGE_PIECES.flatMap((p) => p.replaces);

async function definitions(db: PlatformDatabase): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const signature of REPLACED) {
    const r = await db.pool.query<{ def: string }>('SELECT pg_get_functiondef(to_regprocedure($1)) AS def', [signature]);
    out[signature] = r.rows[0]!.def;
  }
  return out;
}

describe.skipIf(!pgOk)('bridge migration (platform fixture, real Postgres)', () => {
  let db: PlatformDatabase;
  beforeAll(async () => {
    db = await createPlatformDatabase();
    const readModel = openPgReadModel({ connectionString: db.url });
    await readModel.migrate();
    await readModel.close();
  });
  afterAll(async () => {
    await db?.cleanup();
  });

  it('installs, re-installs without saving its own bodies, and the down migration restores the deployed definitions', async () => {
    const before = await definitions(db);
    expect(await bridgeInstalled(db.pool)).toBe(false);

    await applyBridge(db.url, 'up');
    expect(await bridgeInstalled(db.pool)).toBe(true);
    const bridged = await definitions(db);
    for (const signature of REPLACED) expect(bridged[signature], signature).not.toBe(before[signature]);
    expect(bridged['public.deduct_credits(uuid, integer, text)']).toContain('promised_credits');

    await applyBridge(db.url, 'up'); // a second install saves nothing new: the originals stay the platform's
    const saved = await db.pool.query<{ signature: string; definition: string }>('SELECT signature, definition FROM wearon.replaced_functions');
    expect(saved.rows).toHaveLength(REPLACED.length);
    for (const row of saved.rows) expect(row.definition).toBe(before[row.signature]);

    await applyBridge(db.url, 'down');
    expect(await definitions(db)).toEqual(before);
    expect(await bridgeInstalled(db.pool)).toBe(false);
    const triggers = await db.pool.query(`SELECT tgname FROM pg_trigger WHERE tgname = 'wearon_ledger_owns_status'`);
    expect(triggers.rows).toEqual([]);
    // the inbox stays as the audit trail
    expect((await db.pool.query(`SELECT to_regclass('wearon.credit_inbox') IS NOT NULL AS kept`)).rows[0].kept).toBe(true);
  });

  it('refuses to remove the bridge while a command waits in the inbox', async () => {
    await applyBridge(db.url, 'up');
    await db.pool.query(`SELECT wearon.record_credit_command('grant', '{"account":"user:x","amount":1,"reason":"adjustment"}')`);
    await expect(applyBridge(db.url, 'down')).rejects.toThrow(/not yet applied/);
    expect(await bridgeInstalled(db.pool)).toBe(true);
    await db.pool.query(`UPDATE wearon.credit_inbox SET processed_at = now(), outcome = 'rejected', reason = 'test' WHERE processed_at IS NULL`);
    await applyBridge(db.url, 'down');
    expect(await bridgeInstalled(db.pool)).toBe(false);
  });

  it('lets an end user (PostgREST role authenticated or anon) leave an audit row only, never a credit-moving command', async () => {
    await applyBridge(db.url, 'up');
    const { rows } = await db.pool.query<{ id: string }>(`SELECT id FROM public.stores LIMIT 0`);
    expect(rows).toEqual([]);
    const store = await db.pool.query<{ id: string }>(`INSERT INTO public.stores (shop_domain, access_token_encrypted) VALUES ('x-' || gen_random_uuid() || '.myshopify.com', 't') RETURNING id`);
    const storeId = store.rows[0]!.id;
    const c = await db.pool.connect();
    try {
      for (const role of ['authenticated', 'anon']) {
        await c.query('BEGIN');
        await c.query(`SELECT set_config('request.jwt.claims', $1, true)`, [JSON.stringify({ role, sub: storeId })]);
        await c.query(`SET LOCAL ROLE ${role}`);
        await expect(c.query(`SELECT public.add_store_credits($1, 100, 'purchase', 'mint')`, [storeId])).rejects.toThrow(/cannot be recorded by an end user/);
        await c.query('ROLLBACK');
      }
      await c.query('BEGIN');
      await c.query(`SELECT set_config('request.jwt.claims', $1, true)`, [JSON.stringify({ role: 'authenticated', sub: storeId })]);
      await c.query(`SET LOCAL ROLE authenticated`);
      await c.query(`SELECT public.refund_credits($1, 1)`, [storeId]); // the platform's own B2C refund path: audit only
      await c.query('COMMIT');
    } finally {
      c.release();
    }
    const audit = await db.pool.query(`SELECT type, outcome FROM wearon.credit_inbox WHERE payload ->> 'account' = $1`, [`user:${storeId}`]);
    expect(audit.rows).toEqual([{ type: 'refund_ignored', outcome: 'ignored' }]);
    await db.pool.query(`UPDATE wearon.credit_inbox SET processed_at = now(), outcome = 'rejected', reason = 'test' WHERE processed_at IS NULL`);
    await applyBridge(db.url, 'down');
  });

  it('prints Supabase migration files holding exactly the SQL it applies', () => {
    const up = migrationFile('up', new Date('2026-12-02T17:30:00Z'));
    const down = migrationFile('down', new Date('2026-12-02T17:30:00Z'));
    expect(up.name).toBe('20261202173000_wearon_bridge.sql');
    expect(down.name).toBe('20261202173000_wearon_bridge_down.sql');
    expect(up.sql.endsWith(bridgeUpSql())).toBe(true);
    expect(down.sql.endsWith(bridgeDownSql())).toBe(true);
    expect(up.sql).not.toMatch(/\bBEGIN;|\bCOMMIT;/); // the Supabase CLI wraps each file in its own transaction
  });
});

// A fresh Postgres database holding the web platform's schema (supabase-stand-ins.sql + platform-schema.sql, written
// from the facts in /work/shared/reference/original-system.md), for tests that must run against the platform's own
// tables, triggers, RLS and RPCs. One CREATE DATABASE plus one multi-statement script; dropped by cleanup().
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { DATABASE_URL } from '../services.ts';

const here = new URL('.', import.meta.url);
const STAND_INS = readFileSync(new URL('supabase-stand-ins.sql', here), 'utf8');
const SCHEMA = readFileSync(new URL('platform-schema.sql', here), 'utf8');
/** The directive that makes the fixture's process_store_shopper_purchase work (see platform-schema.sql). */
const SHOPPER_PURCHASE_FIX = '#variable_conflict use_column';

/** The roles PostgREST switches to. Cluster-wide: created once, never dropped (other runs share them). */
export const API_ROLES = ['anon', 'authenticated', 'service_role'] as const;

export interface PlatformDatabaseOptions {
  /** Prefix of the database name (default `wearon_platform`); the name gets the pid, time and a counter. */
  prefix?: string;
  /**
   * `fixed` (default): process_store_shopper_purchase behaves as original-system.md describes.
   * `as-deployed`: as the platform's migration 011 really behaves on Postgres 15: every call raises
   * `column reference "shopify_order_id" is ambiguous`.
   */
  shopperPurchaseRpc?: 'fixed' | 'as-deployed';
}

export interface PlatformDatabase {
  name: string;
  /** Connection string of the new database, as the database owner (postgres, superuser: bypasses RLS). */
  url: string;
  /** A pool on `url` for the test and the driver; closed by cleanup(). */
  pool: pg.Pool;
  /** Milliseconds spent in CREATE DATABASE and in the schema script (roles: first call per process only). */
  timings: { rolesMs: number; createDatabaseMs: number; schemaMs: number; totalMs: number };
  /** Closes the pool and drops the database (connections others left open are terminated). Idempotent. */
  cleanup(): Promise<void>;
}

let seq = 0;
let rolesReady: Promise<void> | null = null;

function urlFor(database: string): string {
  const u = new URL(DATABASE_URL);
  u.pathname = `/${database}`;
  return u.toString();
}

async function withAdmin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: DATABASE_URL });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/**
 * Creates the API roles if missing. Another run may create the same role at the same moment: CREATE ROLE then fails
 * with duplicate_object (or unique_violation on pg_authid when both commit together), which means it exists: fine.
 */
async function ensureRoles(c: pg.Client): Promise<void> {
  const { rows } = await c.query<{ rolname: string }>('SELECT rolname FROM pg_roles WHERE rolname = ANY($1)', [API_ROLES]);
  const missing = API_ROLES.filter((r) => !rows.some((x) => x.rolname === r));
  for (const role of missing) {
    // NOINHERIT/NOLOGIN like Supabase's API roles; only service_role bypasses RLS.
    const attrs = role === 'service_role' ? 'NOLOGIN NOINHERIT BYPASSRLS' : 'NOLOGIN NOINHERIT';
    await c.query(`DO $$ BEGIN
      CREATE ROLE ${role} ${attrs};
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END $$`);
  }
}

export async function createPlatformDatabase(o: PlatformDatabaseOptions = {}): Promise<PlatformDatabase> {
  const t0 = performance.now();
  const prefix = o.prefix ?? 'wearon_platform';
  if (!/^[a-z_][a-z0-9_]{0,30}$/.test(prefix)) throw new Error(`database name prefix must be a short lower-case identifier: ${prefix}`);
  const name = `${prefix}_${process.pid}_${Date.now().toString(36)}_${seq++}`;
  // A throwaway database: its creation need not wait for the WAL flush.
  let script = `SET LOCAL synchronous_commit = off;\n${STAND_INS}\n${SCHEMA}`;
  if (o.shopperPurchaseRpc === 'as-deployed') {
    if (script.split(SHOPPER_PURCHASE_FIX).length !== 2) throw new Error('platform-schema.sql: shopper purchase directive not found once');
    script = script.replace(SHOPPER_PURCHASE_FIX, '');
  }

  let rolesMs = 0;
  let createDatabaseMs = 0;
  await withAdmin(async (c) => {
    const r0 = performance.now();
    rolesReady ??= ensureRoles(c).catch((e) => {
      rolesReady = null;
      throw e;
    });
    await rolesReady;
    rolesMs = performance.now() - r0;
    const d0 = performance.now();
    await c.query(`CREATE DATABASE ${name}`);
    createDatabaseMs = performance.now() - d0;
  });

  const url = urlFor(name);
  const dropDatabase = () => withAdmin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => undefined);
  let pool: pg.Pool | undefined;
  try {
    const s0 = performance.now();
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      // One simple-protocol query: the whole script runs as one implicit transaction.
      await c.query(script);
    } finally {
      await c.end();
    }
    const schemaMs = performance.now() - s0;
    pool = new pg.Pool({ connectionString: url, max: 8 });
    const db = pool;
    let cleaned: Promise<void> | null = null;
    // pool.end() resolves once its clients are told to close, not once they have: the DROP ... WITH (FORCE) right after
    // can terminate one still closing (57P01), which the pool re-emits. Expected then; anything else still fails the run.
    db.on('error', (err: Error & { code?: string }) => {
      if (!(cleaned && err.code === '57P01')) throw err;
    });
    return {
      name,
      url,
      pool: db,
      timings: { rolesMs, createDatabaseMs, schemaMs, totalMs: performance.now() - t0 },
      // The pool ends (idle clients closed, busy ones awaited) before the database goes.
      cleanup: () => (cleaned ??= db.end().then(dropDatabase)),
    };
  } catch (e) {
    await pool?.end().catch(() => undefined);
    await dropDatabase();
    throw e;
  }
}

// The Postgres read model's pooled connections: each one's session (schema, statement timeout) is set up before the
// pool hands it out, so no caller's query ever overlaps that setup on one connection (node-postgres warns about that,
// and pg@9 refuses it).
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPgReadModel } from '../../src/adapters/readmodel/postgres/pgReadModel.ts';
import { DATABASE_URL, postgresAvailable } from '../support/services.ts';

const pgOk = await postgresAvailable();
const schema = `rm_session_${process.pid}_${Date.now().toString(36)}`;

async function admin(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: DATABASE_URL });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

describe.skipIf(!pgOk)('Postgres read model: pooled sessions', () => {
  beforeAll(() => admin(`CREATE SCHEMA ${schema}`));
  afterAll(() => admin(`DROP SCHEMA IF EXISTS ${schema} CASCADE`));

  it('sets every new connection up before its first query, without overlapping queries on it', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
    process.on('warning', onWarning);
    const rm = openPgReadModel({ connectionString: DATABASE_URL, schema, statementTimeoutMs: 1234, poolSize: 4 });
    try {
      // Four at once on an empty pool: four new connections, each queried as soon as it is handed out.
      const rows = await Promise.all(
        Array.from({ length: 4 }, () => rm.query(`SELECT current_schema() AS s, current_setting('statement_timeout') AS t, pg_backend_pid() AS pid`)),
      );
      expect(new Set(rows.map((r) => r[0]!.pid)).size).toBe(4);
      for (const r of rows) expect(r[0]).toMatchObject({ s: schema, t: '1234ms' });
      // Warnings are emitted on the next tick.
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings.filter((w) => /already executing a query/.test(w))).toEqual([]);
    } finally {
      process.off('warning', onWarning);
      await rm.close();
    }
  });

  it('fails the checkout with the setup error instead of handing out a connection without its session', async () => {
    const rm = openPgReadModel({ connectionString: DATABASE_URL, schema: 'no such schema', poolSize: 1 });
    try {
      await expect(rm.query('SELECT 1 AS ok')).rejects.toThrow(/syntax error/);
    } finally {
      await rm.close();
    }
  });
});

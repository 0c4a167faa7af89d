// Read models for projection tests: Postgres in a fresh schema (dropped afterwards) or a SQLite file in a temp dir.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { openPgReadModel } from '../../src/adapters/readmodel/postgres/pgReadModel.ts';
import { openSqliteReadModel } from '../../src/adapters/readmodel/sqlite/sqliteReadModel.ts';
import type { ReadModel } from '../../src/projections/readModel.ts';
import { DATABASE_URL } from './services.ts';

export interface TestReadModel {
  rm: ReadModel;
  /** opens another read model on the same database (a second process's view) */
  reopen(): ReadModel;
  cleanup(): Promise<void>;
}

let seq = 0;

export async function pgReadModel(prefix: string): Promise<TestReadModel> {
  const schema = `${prefix}_${process.pid}_${Date.now().toString(36)}_${seq++}`;
  const admin = new pg.Client({ connectionString: DATABASE_URL });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  await admin.end();
  const open = () => openPgReadModel({ connectionString: DATABASE_URL, schema });
  const rm = open();
  const extra: ReadModel[] = [];
  return {
    rm,
    reopen: () => {
      const r = open();
      extra.push(r);
      return r;
    },
    async cleanup() {
      for (const r of [rm, ...extra]) await r.close().catch(() => undefined);
      const c = new pg.Client({ connectionString: DATABASE_URL });
      await c.connect();
      await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await c.end();
    },
  };
}

export async function sqliteReadModel(): Promise<TestReadModel & { dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'wearon-rm-'));
  const open = () => openSqliteReadModel({ path: join(dir, 'readmodels.sqlite'), lockStaleMs: 600 });
  const rm = open();
  const extra: ReadModel[] = [];
  return {
    rm,
    dir,
    reopen: () => {
      const r = open();
      extra.push(r);
      return r;
    },
    async cleanup() {
      for (const r of [rm, ...extra]) await r.close().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

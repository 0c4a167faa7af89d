// Postgres event stores for tests: each in a fresh schema (dropped afterwards) on the shared test database.
import pg from 'pg';
import { openPgEventStore, type PgEventStore, type PgEventStoreOptions } from '../../src/adapters/eventstore/postgres/pgEventStore.ts';
import { silentLogger } from '../../src/logger.ts';
import { DATABASE_URL } from './services.ts';

let seq = 0;

/** A schema name no other test run uses. */
export function uniqueSchema(prefix = 'es'): string {
  return `${prefix}_${process.pid}_${Date.now().toString(36)}_${seq++}`;
}

export async function dropSchema(schema: string): Promise<void> {
  const c = new pg.Client({ connectionString: DATABASE_URL });
  await c.connect();
  try {
    await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await c.end();
  }
}

export interface TestPgEventStore {
  store: PgEventStore;
  schema: string;
  /** another store on the same schema (a second process's view) */
  reopen(options?: Partial<PgEventStoreOptions>): Promise<PgEventStore>;
  cleanup(): Promise<void>;
}

export async function openTestPgEventStore(options: Partial<PgEventStoreOptions> = {}): Promise<TestPgEventStore> {
  const schema = options.schema ?? uniqueSchema();
  const base = { connectionString: DATABASE_URL, schema, logger: silentLogger(), pollIntervalMs: 100, ...options };
  const store = await openPgEventStore(base);
  const extra: PgEventStore[] = [];
  return {
    store,
    schema,
    reopen: async (more = {}) => {
      const s = await openPgEventStore({ ...base, ...more });
      extra.push(s);
      return s;
    },
    async cleanup() {
      for (const s of [store, ...extra]) await s.close().catch(() => undefined);
      await dropSchema(schema);
    },
  };
}

// Read models in Postgres (Supabase): pg pool for reads and rebuild swaps; one dedicated connection per projection
// lease, which holds a session-level advisory lock AND runs that projection's transactions, so a holder whose
// connection dies can neither keep the lock nor commit. Bulk writes use UNNEST over typed arrays (one statement per batch).
import pg from 'pg';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../../../logger.ts';
import type {
  Checkpoint,
  ProjectionLease,
  ReadModel,
  ReadModelTx,
  Row,
  TableSpec,
  Value,
} from '../../../projections/readModel.ts';
import {
  CHECKPOINTS_DDL,
  HISTORY_INDEXES,
  HISTORY_TABLES,
  HISTORY_TYPES,
  PLATFORM_COLUMNS,
  PLATFORM_DDL,
  PLATFORM_INDEXES,
  PROJECTION_TABLES,
  historyTypeCheckSql,
  pgArrayType,
  renderDdl,
  renderSql,
  tableDdl,
  type SqlRender,
} from '../../../projections/schema.ts';

export interface PgReadModelOptions {
  connectionString: string;
  /** tables live in this schema (search_path); default: the connection's default (public) */
  schema?: string;
  logger?: Logger;
  poolSize?: number;
  /** per-statement timeout; a bulk rebuild statement can take a while */
  statementTimeoutMs?: number;
  connectTimeoutMs?: number;
}

const parseTs = pg.types.getTypeParser(1184) as (v: string) => Date;
const parseTsNoTz = pg.types.getTypeParser(1114) as (v: string) => Date;
// Numbers as numbers and timestamps as ISO strings, so rows compare equal to the pure fold's.
const TYPES = {
  getTypeParser(oid: number, format?: string) {
    if (oid === 20 || oid === 1700) return (v: string) => Number(v);
    if (oid === 1184) return (v: string) => parseTs(v).toISOString();
    if (oid === 1114) return (v: string) => parseTsNoTz(v).toISOString();
    return pg.types.getTypeParser(oid, format as 'text');
  },
};

const RENDER: SqlRender = {
  keys: (c) => `${c} = ANY($1::text[])`,
  all: 'TRUE',
  uuid: (e) => `(${e})::uuid`,
  ts: (e) => `(${e})::timestamptz`,
  now: 'now()',
};

const qmarks = (sql: string) => {
  let i = 0;
  return sql.replace(/\?/g, () => `$${++i}`);
};

function normalize(t: TableSpec, r: Record<string, unknown>): Row {
  const out: Row = {};
  for (const c of t.columns) {
    const v = r[c.name];
    out[c.name] = v === null || v === undefined ? null : (v as Value);
  }
  return out;
}

class PgTx implements ReadModelTx {
  constructor(private readonly c: pg.ClientBase) {}

  async lockCheckpoint(projection: string): Promise<Checkpoint> {
    await this.c.query(
      `INSERT INTO projection_checkpoints (projection, commit_position, prepare_position, events, updated_at)
       VALUES ($1, -1, -1, 0, now()) ON CONFLICT (projection) DO NOTHING`,
      [projection],
    );
    const r = await this.c.query(
      'SELECT commit_position, prepare_position, events, updated_at FROM projection_checkpoints WHERE projection = $1 FOR UPDATE',
      [projection],
    );
    const row = r.rows[0];
    return {
      projection,
      position: { commit: BigInt(row.commit_position), prepare: BigInt(row.prepare_position) },
      events: Number(row.events),
      updatedAt: row.updated_at,
    };
  }

  async setCheckpoint(projection: string, position: { commit: bigint; prepare: bigint }, events: number): Promise<void> {
    await this.c.query(
      'UPDATE projection_checkpoints SET commit_position = $2, prepare_position = $3, events = $4, updated_at = now() WHERE projection = $1',
      [projection, position.commit.toString(), position.prepare.toString(), events],
    );
  }

  async load(t: TableSpec, keys: readonly string[]): Promise<Row[]> {
    if (keys.length === 0) return [];
    const r = await this.c.query(`SELECT * FROM ${t.name} WHERE ${t.key} = ANY($1::text[])`, [keys]);
    return r.rows.map((x) => normalize(t, x));
  }

  async keys(t: TableSpec): Promise<string[]> {
    const r = await this.c.query(`SELECT ${t.key} AS k FROM ${t.name}`);
    return r.rows.map((x) => x.k as string);
  }

  private async bulk(t: TableSpec, rows: readonly Row[], conflict: string): Promise<void> {
    if (rows.length === 0) return;
    const cols = t.columns.map((c) => c.name);
    const arrays = t.columns.map((c) => rows.map((r) => r[c.name] ?? null));
    const unnest = t.columns.map((c, i) => `$${i + 1}::${pgArrayType(c.type)}`).join(', ');
    await this.c.query(`INSERT INTO ${t.name} (${cols.join(', ')}) SELECT * FROM unnest(${unnest}) ON CONFLICT (${t.key}) ${conflict}`, arrays);
  }

  upsert(t: TableSpec, rows: readonly Row[]): Promise<void> {
    const set = t.columns.filter((c) => c.name !== t.key).map((c) => `${c.name} = excluded.${c.name}`);
    return this.bulk(t, rows, `DO UPDATE SET ${set.join(', ')}`);
  }

  insertIgnore(t: TableSpec, rows: readonly Row[]): Promise<void> {
    return this.bulk(t, rows, 'DO NOTHING');
  }

  async exec(sql: string, keys: readonly string[] | null, tables?: Record<string, string>): Promise<number> {
    const text = renderSql(sql, RENDER, keys !== null, tables);
    const r = await this.c.query(text, keys !== null ? [keys] : []);
    return r.rowCount ?? 0;
  }

  async execGuarded(sql: string, keys: readonly string[] | null): Promise<string | null> {
    await this.c.query('SAVEPOINT publish');
    try {
      await this.exec(sql, keys);
      await this.c.query('RELEASE SAVEPOINT publish');
      return null;
    } catch (err) {
      // class 23: integrity constraint violation (FK, check, not null, unique); class 22: data exception (an id that is
      // not a uuid for the platform's uuid columns). Anything else (connection, timeout) fails the batch for a retry.
      const code = String((err as { code?: string }).code ?? '');
      if (!code.startsWith('23') && !code.startsWith('22')) throw err;
      await this.c.query('ROLLBACK TO SAVEPOINT publish');
      await this.c.query('RELEASE SAVEPOINT publish');
      return (err as Error).message;
    }
  }
}

async function inTransaction<T>(c: pg.ClientBase, fn: (tx: ReadModelTx) => Promise<T>): Promise<T> {
  await c.query('BEGIN');
  try {
    const out = await fn(new PgTx(c));
    await c.query('COMMIT');
    return out;
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

export class PgReadModel implements ReadModel {
  readonly dialect = 'postgres' as const;
  readonly pool: pg.Pool;

  constructor(private readonly options: PgReadModelOptions) {
    this.pool = new pg.Pool(this.clientConfig(options.poolSize ?? 4));
    // An idle client that dies is replaced by the pool; log instead of crashing the process.
    this.pool.on('error', (err) => options.logger?.warn({ err }, 'readmodel_pg_idle_error'));
    // Runs before any query of a new pooled client (node-postgres queues queries in order).
    this.pool.on('connect', (c) => void c.query(this.sessionSql).catch((err) => options.logger?.warn({ err }, 'readmodel_pg_session_setup_failed')));
  }

  /** Session settings, sent with SET after connecting (poolers may refuse startup `options`). */
  private get sessionSql(): string {
    const sets = [`SET statement_timeout = ${this.options.statementTimeoutMs ?? 600_000}`];
    if (this.options.schema) sets.push(`SET search_path = ${this.options.schema}`);
    return sets.join('; ');
  }

  private clientConfig(max?: number): pg.PoolConfig {
    return {
      connectionString: this.options.connectionString,
      connectionTimeoutMillis: this.options.connectTimeoutMs ?? 10_000,
      types: TYPES,
      ...(max ? { max } : {}),
    };
  }

  async migrate(): Promise<void> {
    await this.transaction(async () => undefined); // connectivity check with the right search_path
    const c = await this.pool.connect();
    try {
      await c.query('BEGIN');
      // Serialise concurrent `wearon migrate` runs.
      await c.query(`SELECT pg_advisory_xact_lock(hashtext(current_schema() || ':wearon-migrate'))`);
      await c.query(renderDdl(CHECKPOINTS_DDL, 'postgres'));
      await c.query('ALTER TABLE projection_checkpoints ENABLE ROW LEVEL SECURITY');
      for (const t of PROJECTION_TABLES) for (const s of tableDdl('postgres', t)) await c.query(s);
      for (const s of PLATFORM_DDL) await c.query(renderDdl(s, 'postgres'));
      for (const [table, cols] of Object.entries(PLATFORM_COLUMNS)) {
        const have = await c.query(
          'SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1',
          [table],
        );
        const names = new Set(have.rows.map((r) => r.column_name as string));
        // ALTER takes an exclusive lock even as a no-op: only run it when a column is really missing
        for (const [col, type] of cols) if (!names.has(col)) await c.query(`ALTER TABLE ${table} ADD COLUMN IF NOT EXISTS ${col} ${renderDdl(type, 'postgres')}`);
      }
      for (const s of [...PLATFORM_INDEXES, ...HISTORY_INDEXES]) await c.query(s);
      for (const t of HISTORY_TABLES) {
        // The platform's CHECK lacks the types credit-history adds: extend it (once; a no-op ALTER would still lock and scan).
        const r = await c.query('SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = to_regclass($1) AND conname = $2', [t, `${t}_type_check`]);
        const def = String(r.rows[0]?.def ?? '');
        const { platform, added } = HISTORY_TYPES[t];
        if ([...platform, ...added].some((v) => !def.includes(`'${v}'`))) await c.query(historyTypeCheckSql(t));
      }
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      c.release();
    }
  }

  async acquire(projection: string, options: { signal?: AbortSignal; pollMs?: number } = {}): Promise<ProjectionLease> {
    const client = new pg.Client(this.clientConfig());
    let held = false;
    const lost = (err?: Error) => {
      if (held) this.options.logger?.warn({ err, projection }, 'projection_lock_lost');
      held = false;
    };
    client.on('error', lost);
    client.on('end', () => lost());
    await client.connect();
    try {
      await client.query(this.sessionSql);
      for (;;) {
        options.signal?.throwIfAborted();
        const r = await client.query(`SELECT pg_try_advisory_lock(hashtext(current_schema() || ':projection:' || $1)) AS ok`, [projection]);
        if (r.rows[0].ok) break;
        await sleep(options.pollMs ?? 1000, undefined, { signal: options.signal });
      }
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
    // A rebuild writes only its shadow tables, which a crash discards anyway: no need to wait for WAL flushes.
    if (projection.endsWith('#rebuild')) await client.query('SET synchronous_commit = off');
    held = true;
    let queue: Promise<unknown> = Promise.resolve();
    return {
      projection,
      get held() {
        return held;
      },
      transaction<T>(fn: (tx: ReadModelTx) => Promise<T>): Promise<T> {
        const run = async () => {
          if (!held) throw new Error(`projection ${projection}: lock lost`);
          return inTransaction(client, fn);
        };
        const p = queue.then(run, run);
        queue = p.catch(() => undefined);
        return p;
      },
      async release() {
        held = false;
        await client.end().catch(() => undefined); // closing the session releases the advisory lock
      },
    };
  }

  async transaction<T>(fn: (tx: ReadModelTx) => Promise<T>): Promise<T> {
    const c = await this.pool.connect();
    try {
      return await inTransaction(c, fn);
    } finally {
      c.release();
    }
  }

  async checkpoints(): Promise<Checkpoint[]> {
    const r = await this.pool.query('SELECT * FROM projection_checkpoints ORDER BY projection');
    return r.rows.map((x) => ({
      projection: x.projection,
      position: { commit: BigInt(x.commit_position), prepare: BigInt(x.prepare_position) },
      events: Number(x.events),
      updatedAt: x.updated_at,
    }));
  }

  async readAll(t: TableSpec, where?: string): Promise<Row[]> {
    const r = await this.pool.query(`SELECT * FROM ${t.name}${where ? ` WHERE ${where}` : ''} ORDER BY ${t.key}`);
    return r.rows.map((x) => normalize(t, x));
  }

  async query(sql: string, params: readonly Value[] = []): Promise<Row[]> {
    const r = await this.pool.query(qmarks(sql), params as Value[]);
    return r.rows as Row[];
  }

  async createTable(t: TableSpec): Promise<void> {
    for (const s of tableDdl('postgres', t)) await this.pool.query(s);
  }

  async dropTable(name: string): Promise<void> {
    await this.pool.query(`DROP TABLE IF EXISTS ${name}`);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

export function openPgReadModel(o: PgReadModelOptions): PgReadModel {
  return new PgReadModel(o);
}

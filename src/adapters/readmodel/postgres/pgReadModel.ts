// Read models in Postgres (Supabase): pg pool for reads and rebuild swaps; one dedicated connection per projection
// lease, which holds a session-level advisory lock AND runs that projection's transactions, so a holder whose
// connection dies can neither keep the lock nor commit. Bulk writes use UNNEST over typed arrays (one statement per
// batch); a rebuild's insert-only entries use COPY.
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { Logger } from '../../../logger.ts';
import type {
  Checkpoint,
  ProjectionFailure,
  ProjectionLease,
  ReadModel,
  ReadModelTx,
  Row,
  TableSpec,
  Value,
} from '../../../projections/readModel.ts';
import { checkpointFromRow } from '../../../projections/readModel.ts';
import {
  CHECKPOINT_COLUMNS,
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

/** How long a rebuild's swap waits for readers of a live table it replaces (then it retries, see rebuild.ts). */
const SWAP_LOCK_TIMEOUT = '3s';

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

/**
 * One column of `rows` as a Postgres array literal. pg would write it too, but regex-escapes and quotes every element:
 * this takes half the time, which a rebuild's flushes (millions of values) spend on this process's busy thread.
 */
function arrayLiteral(rows: readonly Row[], column: string): string {
  const out = new Array<string>(rows.length);
  for (let i = 0; i < rows.length; i++) {
    const v = rows[i]![column];
    if (v === null || v === undefined) out[i] = 'NULL';
    else if (typeof v === 'number') out[i] = String(v);
    else out[i] = v.includes('"') || v.includes('\\') ? `"${v.replace(/["\\]/g, '\\$&')}"` : `"${v}"`;
  }
  return `{${out.join(',')}}`;
}

/** A value in COPY's text format: `\N` for NULL; backslash, newline, carriage return and tab escaped. */
function copyValue(v: Value | undefined): string {
  if (v === null || v === undefined) return '\\N';
  if (typeof v === 'number') return String(v);
  return /[\\\n\r\t]/.test(v) ? v.replace(/[\\\n\r\t]/g, (c) => COPY_ESCAPES[c]!) : v;
}
const COPY_ESCAPES: Record<string, string> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/** `rows` as COPY text, a chunk per 1000 rows. COPY moves a rebuild's insert-only rows in about half the time of
 * INSERT ... unnest (50k ledger entries, building the text included: 450 against 930 ms here). */
function* copyText(spec: TableSpec, rows: readonly Row[]): Generator<string> {
  const names = spec.columns.map((c) => c.name);
  for (let i = 0; i < rows.length; i += 1000) {
    let chunk = '';
    for (const r of rows.slice(i, i + 1000)) chunk += `${names.map((n) => copyValue(r[n])).join('\t')}\n`;
    yield chunk;
  }
}

/**
 * One transaction on one connection, in as few round trips as the batch allows (each one waits for the database and
 * for this process's event loop, which a busy worker keeps occupied). A projector's batch takes four: BEGIN + checkpoint
 * lock + load of the state rows; state rows + entries (one statement); savepoint + publish; checkpoint update + COMMIT.
 * Statements that share a round trip use the simple query protocol, their few values written as literals (names,
 * positions, counts, keys); the rows themselves travel as bound arrays.
 */
class PgTx implements ReadModelTx {
  private begun = false;
  /** the checkpoint update, sent with the next statement or with COMMIT */
  private deferred: string | null = null;
  /** a publish savepoint is open (see execGuarded) */
  private savepoint = false;

  constructor(private readonly c: pg.ClientBase) {}

  /** SQL that must run before the next statement: BEGIN (once) and a deferred checkpoint update. */
  private prefix(): string {
    const out = [this.begun ? '' : 'BEGIN', this.deferred ?? ''].filter(Boolean).join('; ');
    this.begun = true;
    this.deferred = null;
    return out;
  }

  /** Sends the prefix, if any, as a round trip of its own. */
  private async sendPrefix(): Promise<void> {
    const pre = this.prefix();
    if (pre) await this.c.query(pre);
  }

  /** A statement with bound values (a round trip of its own, after any prefix). */
  async q(text: string, values?: unknown[]): Promise<pg.QueryResult> {
    await this.sendPrefix();
    return this.c.query(text, values);
  }

  /** Statements without values: one round trip with the prefix; every statement's result (the prefix's first). */
  private async simple(text: string): Promise<pg.QueryResult[]> {
    const pre = this.prefix();
    const r = (await this.c.query(pre ? `${pre}; ${text}` : text)) as pg.QueryResult | pg.QueryResult[];
    return Array.isArray(r) ? r : [r];
  }

  /** `keys` as a text[] literal, for statements sent without values. */
  private keysLiteral(keys: readonly string[]): string {
    return `ARRAY[${keys.map((k) => this.c.escapeLiteral(k)).join(', ')}]::text[]`;
  }

  async commit(): Promise<void> {
    if (!this.begun) return; // nothing ran: no transaction to end
    await this.simple('COMMIT');
  }

  async rollback(): Promise<void> {
    this.deferred = null;
    if (this.begun) await this.c.query('ROLLBACK');
  }

  /** One statement: the no-op DO UPDATE locks an existing row as FOR UPDATE would, and returns it. */
  private lockSql(projection: string): string {
    return `INSERT INTO projection_checkpoints AS c (projection, commit_position, prepare_position, events, updated_at)
       VALUES (${this.c.escapeLiteral(projection)}, -1, -1, 0, now()) ON CONFLICT (projection) DO UPDATE SET projection = c.projection
       RETURNING projection, commit_position, prepare_position, events, updated_at, failure`;
  }

  async lockCheckpoint(projection: string): Promise<Checkpoint> {
    return checkpointFromRow((await this.simple(this.lockSql(projection))).at(-1)!.rows[0]);
  }

  async lockAndLoad(projection: string, t: TableSpec, keys: readonly string[]): Promise<{ checkpoint: Checkpoint; rows: Row[] }> {
    if (keys.length === 0) return { checkpoint: await this.lockCheckpoint(projection), rows: [] };
    // The statements of one simple query run in order: the load sees the table under the checkpoint lock.
    const r = await this.simple(`${this.lockSql(projection)}; SELECT * FROM ${t.name} WHERE ${t.key} = ANY(${this.keysLiteral(keys)})`);
    return { checkpoint: checkpointFromRow(r.at(-2)!.rows[0]), rows: r.at(-1)!.rows.map((x) => normalize(t, x)) };
  }

  async setCheckpoint(projection: string, position: { commit: bigint; prepare: bigint }, events: number): Promise<void> {
    if (this.deferred) await this.q('SELECT 1'); // two in a row: the first one runs now
    this.deferred = `UPDATE projection_checkpoints SET commit_position = ${BigInt(position.commit)}, prepare_position = ${BigInt(position.prepare)},
      events = ${Math.trunc(Number(events))}, updated_at = now(), failure = NULL WHERE projection = ${this.c.escapeLiteral(projection)}`;
  }

  async setFailure(projection: string, failure: ProjectionFailure | null): Promise<void> {
    await this.q('UPDATE projection_checkpoints SET failure = $2 WHERE projection = $1', [projection, failure && JSON.stringify(failure)]);
  }

  async load(t: TableSpec, keys: readonly string[]): Promise<Row[]> {
    if (keys.length === 0) return [];
    const r = await this.q(`SELECT * FROM ${t.name} WHERE ${t.key} = ANY($1::text[])`, [keys]);
    return r.rows.map((x) => normalize(t, x));
  }

  async keys(t: TableSpec): Promise<string[]> {
    const r = await this.q(`SELECT ${t.key} AS k FROM ${t.name}`);
    return r.rows.map((x) => x.k as string);
  }

  private async copyIn(t: TableSpec, rows: readonly Row[]): Promise<void> {
    await this.sendPrefix();
    await pipeline(Readable.from(copyText(t, rows)), this.c.query(copyFrom(`COPY ${t.name} (${t.columns.map((c) => c.name).join(', ')}) FROM STDIN`)));
  }

  async write(t: TableSpec, rows: readonly Row[], entries?: { table: TableSpec; rows: readonly Row[]; fresh?: boolean }, newRows?: readonly Row[]): Promise<void> {
    if (newRows?.length) await this.copyIn(t, newRows);
    if (entries?.fresh && entries.rows.length) {
      await this.write(t, rows);
      await this.copyIn(entries.table, entries.rows);
      return;
    }
    const values: string[] = [];
    // INSERT ... SELECT FROM unnest(one array per column): any number of rows as one statement with fixed parameters.
    const insert = (spec: TableSpec, rs: readonly Row[], conflict: string) => {
      const arrays = spec.columns.map((c) => `$${values.push(arrayLiteral(rs, c.name))}::${pgArrayType(c.type)}`);
      return `INSERT INTO ${spec.name} (${spec.columns.map((c) => c.name).join(', ')}) SELECT * FROM unnest(${arrays.join(', ')}) ON CONFLICT (${spec.key}) ${conflict}`;
    };
    const statements: string[] = [];
    if (rows.length) {
      const set = t.columns.filter((c) => c.name !== t.key).map((c) => `${c.name} = excluded.${c.name}`);
      statements.push(insert(t, rows, `DO UPDATE SET ${set.join(', ')}`));
    }
    if (entries?.rows.length) statements.push(insert(entries.table, entries.rows, 'DO NOTHING'));
    if (statements.length === 0) return;
    // Two tables as one statement: data-modifying CTEs, each run once and to completion (neither reads the other).
    await this.q(statements.length === 1 ? statements[0]! : `WITH ${statements.map((x, i) => `w${i} AS (${x})`).join(', ')} SELECT 1`, values);
  }

  async replaceTable(live: TableSpec, shadow: TableSpec): Promise<void> {
    // Dropping the live table waits for its readers, and readers arriving meanwhile queue behind the DROP: a bounded
    // wait (an error the rebuild's swap retries) instead of stalling them behind a long query. The rest of the swap
    // waits as long as it must (statement_timeout).
    // Then the live table's DDL gives it its indexes (the table exists; RLS is on already). One round trip.
    await this.simple(
      [
        `SET LOCAL lock_timeout = '${SWAP_LOCK_TIMEOUT}'`,
        `DROP TABLE IF EXISTS ${live.name}`,
        `ALTER TABLE ${shadow.name} RENAME TO ${live.name}`,
        `ALTER TABLE ${live.name} RENAME CONSTRAINT ${shadow.name}_pkey TO ${live.name}_pkey`,
        'SET LOCAL lock_timeout = DEFAULT',
        ...tableDdl('postgres', live),
      ].join('; '),
    );
  }

  async exec(sql: string, keys: readonly string[] | null, tables?: Record<string, string>): Promise<number> {
    const text = renderSql(sql, RENDER, keys !== null, tables);
    const r = await this.q(text, keys !== null ? [keys] : []);
    return r.rowCount ?? 0;
  }

  async execGuarded(sql: string | readonly string[], keys: readonly string[] | null): Promise<string | null> {
    // Several statements as one: data-modifying CTEs, each run once and to completion. Sent with its savepoint in one
    // round trip (keys as a literal); a savepoint is released only when the next one opens: never nested.
    const text = typeof sql === 'string' ? sql : sql.length === 1 ? sql[0]! : `WITH ${sql.map((s, i) => `s${i} AS (${s})`).join(', ')} SELECT 1`;
    const render = keys === null ? RENDER : { ...RENDER, keys: (c: string) => `${c} = ANY(${this.keysLiteral(keys)})` };
    const savepoint = this.savepoint ? 'RELEASE SAVEPOINT publish; SAVEPOINT publish' : 'SAVEPOINT publish';
    this.savepoint = true; // it runs before the statement in the same round trip, so it exists if the statement fails
    try {
      await this.simple(`${savepoint}; ${renderSql(text, render, keys !== null)}`);
      return null;
    } catch (err) {
      // class 23: integrity constraint violation (FK, check, not null, unique); class 22: data exception (an id that is
      // not a uuid for the platform's uuid columns). Anything else (connection, timeout) fails the batch for a retry.
      const code = String((err as { code?: string }).code ?? '');
      if (!code.startsWith('23') && !code.startsWith('22')) throw err;
      await this.c.query('ROLLBACK TO SAVEPOINT publish');
      return (err as Error).message;
    }
  }
}

const NET_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND']);
/** SQLSTATEs no event causes: serialization failure, deadlock, lock not available (the rest are whole classes, below). */
const TRANSIENT_STATES = new Set(['40001', '40P01', '55P03']);

/**
 * Connection (08), resources (53), operator intervention / timeouts (57), the states above, node's network errors and
 * node-postgres' own connection messages, and a lost projection lock.
 */
export function isTransientPgReadModelError(err: unknown): boolean {
  const code = String((err as { code?: unknown } | null)?.code ?? '');
  if (NET_ERRORS.has(code) || TRANSIENT_STATES.has(code) || /^(08|53|57)/.test(code)) return true;
  const message = err instanceof Error ? err.message : '';
  return /Connection terminated|connection error|timeout exceeded|Client was closed|Client has encountered a connection error|lock lost/i.test(message);
}

async function inTransaction<T>(c: pg.ClientBase, fn: (tx: ReadModelTx) => Promise<T>): Promise<T> {
  const tx = new PgTx(c);
  try {
    const out = await fn(tx);
    await tx.commit();
    return out;
  } catch (err) {
    await tx.rollback().catch(() => undefined);
    throw err;
  }
}

export class PgReadModel implements ReadModel {
  readonly dialect = 'postgres' as const;
  readonly pool: pg.Pool;

  constructor(private readonly options: PgReadModelOptions) {
    // A new pooled client is handed out once its session is set up (pg-pool awaits onConnect; if it fails, the client
    // is closed and the checkout fails with that error), so no query ever overlaps the SET on one connection.
    this.pool = new pg.Pool({ ...this.clientConfig(options.poolSize ?? 4), onConnect: async (c) => void (await c.query(this.sessionSql)) });
    // An idle client that dies is replaced by the pool; log instead of crashing the process.
    this.pool.on('error', (err) => options.logger?.warn({ err }, 'readmodel_pg_idle_error'));
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
      for (const [table, cols] of Object.entries({ ...PLATFORM_COLUMNS, projection_checkpoints: CHECKPOINT_COLUMNS })) {
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
    // No waiting for WAL flushes on a projection's commits: what a crash of the database loses (its last moments of
    // commits) is lost together with the checkpoint that covers it, and re-projected from the log (the SQLite read
    // model's synchronous=NORMAL, likewise). A rebuild writes only shadow tables, which a crash discards anyway.
    // Measured: the flush was the costliest step of a live batch (docs/projections.md, freshness).
    await client.query('SET synchronous_commit = off');
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
    return r.rows.map(checkpointFromRow);
  }

  isTransient(err: unknown): boolean {
    return isTransientPgReadModelError(err);
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

// Read models in SQLite (embedded mode): a separate file, DATA_DIR/readmodels.sqlite, so projector writes never
// contend with ledger appends for the single SQLite write lock. One connection per ReadModel; transactions on it are
// serialised in-process (BEGIN IMMEDIATE across processes, waiting asynchronously). The projection lock is a row in
// `projection_locks` with an owner token and a heartbeat; every transaction of a lease re-checks the owner (fencing),
// so a holder that lost the lock cannot commit.
import Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
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
  PLATFORM_COLUMNS,
  PLATFORM_DDL,
  PLATFORM_INDEXES,
  PROJECTION_TABLES,
  renderDdl,
  renderSql,
  tableDdl,
  type SqlRender,
} from '../../../projections/schema.ts';

export interface SqliteReadModelOptions {
  path: string;
  logger?: Logger;
  /** a lock whose heartbeat is older than this is taken over */
  lockStaleMs?: number;
  /** page cache size in MiB (default 64) */
  cacheMiB?: number;
  /** how long a transaction waits for another connection's write lock (default 30 s) */
  busyTimeoutMs?: number;
}

const NOW = "strftime('%Y-%m-%dT%H:%M:%fZ','now')";
const RENDER: SqlRender = {
  keys: (c) => `${c} IN (SELECT value FROM json_each(?))`,
  all: '1',
  uuid: (e) => e,
  ts: (e) => e,
  now: NOW,
};

class SqliteTx implements ReadModelTx {
  private readonly stmts = new Map<string, Database.Statement>();
  constructor(private readonly db: Database.Database) {}

  private stmt(sql: string): Database.Statement {
    let s = this.stmts.get(sql);
    if (!s) this.stmts.set(sql, (s = this.db.prepare(sql)));
    return s;
  }

  async lockCheckpoint(projection: string): Promise<Checkpoint> {
    // The write lock is already held (BEGIN IMMEDIATE): the row cannot change under us.
    this.stmt(
      `INSERT INTO projection_checkpoints (projection, commit_position, prepare_position, events, updated_at)
       VALUES (?, -1, -1, 0, ${NOW}) ON CONFLICT (projection) DO NOTHING`,
    ).run(projection);
    return checkpointFromRow(this.stmt('SELECT * FROM projection_checkpoints WHERE projection = ?').safeIntegers(true).get(projection) as Record<string, unknown>);
  }

  async setCheckpoint(projection: string, position: { commit: bigint; prepare: bigint }, events: number): Promise<void> {
    this.stmt(
      `UPDATE projection_checkpoints SET commit_position = ?, prepare_position = ?, events = ?, updated_at = ${NOW}, failure = NULL WHERE projection = ?`,
    ).run(position.commit, position.prepare, events, projection);
  }

  async setFailure(projection: string, failure: ProjectionFailure | null): Promise<void> {
    this.stmt('UPDATE projection_checkpoints SET failure = ? WHERE projection = ?').run(failure && JSON.stringify(failure), projection);
  }

  async lockAndLoad(projection: string, t: TableSpec, keys: readonly string[]): Promise<{ checkpoint: Checkpoint; rows: Row[] }> {
    return { checkpoint: await this.lockCheckpoint(projection), rows: await this.load(t, keys) };
  }

  async load(t: TableSpec, keys: readonly string[]): Promise<Row[]> {
    if (keys.length === 0) return [];
    return this.stmt(`SELECT * FROM ${t.name} WHERE ${t.key} IN (SELECT value FROM json_each(?))`).all(JSON.stringify(keys)) as Row[];
  }

  async keys(t: TableSpec): Promise<string[]> {
    return (this.stmt(`SELECT ${t.key} AS k FROM ${t.name}`).all() as { k: string }[]).map((x) => x.k);
  }

  private insert(t: TableSpec, rows: readonly Row[], conflict: string): void {
    if (rows.length === 0) return;
    const cols = t.columns.map((c) => c.name);
    const s = this.stmt(`INSERT INTO ${t.name} (${cols.join(', ')}) VALUES (${cols.map(() => '?').join(', ')}) ON CONFLICT (${t.key}) ${conflict}`);
    const vals: Value[] = new Array(cols.length);
    for (const r of rows) {
      for (let i = 0; i < cols.length; i++) vals[i] = r[cols[i]!] ?? null;
      s.run(vals);
    }
  }

  async write(t: TableSpec, rows: readonly Row[], entries?: { table: TableSpec; rows: readonly Row[] }, newRows?: readonly Row[]): Promise<void> {
    this.insert(t, newRows?.length ? [...rows, ...newRows] : rows, `DO UPDATE SET ${t.columns.filter((c) => c.name !== t.key).map((c) => `${c.name} = excluded.${c.name}`).join(', ')}`);
    if (entries) this.insert(entries.table, entries.rows, 'DO NOTHING');
  }

  async replaceTable(live: TableSpec, shadow: TableSpec): Promise<void> {
    // The shadow takes the live table's place (its primary key index is renamed with it) and gets the live indexes.
    this.db.exec([`DROP TABLE IF EXISTS ${live.name}`, `ALTER TABLE ${shadow.name} RENAME TO ${live.name}`, ...tableDdl('sqlite', live)].join('; '));
  }

  async exec(sql: string, keys: readonly string[] | null, tables?: Record<string, string>): Promise<number> {
    const s = this.stmt(renderSql(sql, RENDER, keys !== null, tables));
    return s.run(...(keys !== null ? [JSON.stringify(keys)] : [])).changes;
  }

  async execGuarded(sql: string | readonly string[], keys: readonly string[] | null): Promise<string | null> {
    this.db.exec('SAVEPOINT publish');
    try {
      for (const s of typeof sql === 'string' ? [sql] : sql) await this.exec(s, keys);
      this.db.exec('RELEASE publish');
      return null;
    } catch (err) {
      if (!String((err as { code?: string }).code ?? '').startsWith('SQLITE_CONSTRAINT')) throw err;
      this.db.exec('ROLLBACK TO publish');
      this.db.exec('RELEASE publish');
      return (err as Error).message;
    }
  }
}

export class SqliteReadModel implements ReadModel {
  readonly dialect = 'sqlite' as const;
  readonly db: Database.Database;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly tx: SqliteTx;

  constructor(private readonly options: SqliteReadModelOptions) {
    if (options.path !== ':memory:') mkdirSync(dirname(options.path), { recursive: true });
    this.db = new Database(options.path);
    this.db.pragma('journal_mode = WAL');
    // Read models can be rebuilt from the ledger: NORMAL is durable enough (a lost tail is re-projected).
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 0'); // waits are asynchronous (begin)
    // 64 MiB page cache (default 2 MiB): ledger_entries and its indexes outgrow the default at a few 100k rows,
    // and every batch then pays page reads; measured ~1.5x on the credit-balances rebuild.
    this.db.pragma(`cache_size = -${(options.cacheMiB ?? 64) * 1024}`);
    this.tx = new SqliteTx(this.db);
  }

  async migrate(): Promise<void> {
    await this.run(async () => this.migrateSync());
  }

  private migrateSync(): void {
    this.db.exec(renderDdl(CHECKPOINTS_DDL, 'sqlite'));
    this.db.exec(`CREATE TABLE IF NOT EXISTS projection_locks (
      projection TEXT PRIMARY KEY, owner TEXT NOT NULL, pid INTEGER NOT NULL, heartbeat_ms INTEGER NOT NULL)`);
    for (const t of PROJECTION_TABLES) for (const s of tableDdl('sqlite', t)) this.db.exec(s);
    for (const s of PLATFORM_DDL) this.db.exec(renderDdl(s, 'sqlite'));
    for (const [table, cols] of Object.entries({ ...PLATFORM_COLUMNS, projection_checkpoints: CHECKPOINT_COLUMNS })) {
      const have = new Set((this.db.pragma(`table_info(${table})`) as { name: string }[]).map((c) => c.name));
      for (const [col, type] of cols) if (!have.has(col)) this.db.exec(`ALTER TABLE ${table} ADD COLUMN ${col} ${renderDdl(type, 'sqlite')}`);
    }
    for (const s of [...PLATFORM_INDEXES, ...HISTORY_INDEXES]) this.db.exec(s);
  }

  /** Serialises transactions on the one connection; each is BEGIN IMMEDIATE ... COMMIT. */
  private run<T>(fn: (tx: ReadModelTx) => Promise<T>, fence?: () => void): Promise<T> {
    const go = async () => {
      await this.begin();
      try {
        fence?.();
        const out = await fn(this.tx);
        this.db.exec('COMMIT');
        return out;
      } catch (err) {
        if (this.db.inTransaction) this.db.exec('ROLLBACK');
        throw err;
      }
    };
    const p = this.queue.then(go, go);
    this.queue = p.catch(() => undefined);
    return p;
  }

  /**
   * BEGIN IMMEDIATE, waiting for another connection's write lock asynchronously: SQLite's own busy_timeout would block
   * the event loop, and with it the very transaction (same process, other connection) we are waiting for.
   */
  private async begin(): Promise<void> {
    const until = Date.now() + (this.options.busyTimeoutMs ?? 30_000);
    for (let delay = 2; ; delay = Math.min(delay * 2, 50)) {
      try {
        this.db.exec('BEGIN IMMEDIATE');
        return;
      } catch (err) {
        if ((err as { code?: string }).code !== 'SQLITE_BUSY' || Date.now() > until) throw err;
        await sleep(delay);
      }
    }
  }

  transaction<T>(fn: (tx: ReadModelTx) => Promise<T>): Promise<T> {
    return this.run(fn);
  }

  async acquire(projection: string, options: { signal?: AbortSignal; pollMs?: number } = {}): Promise<ProjectionLease> {
    const owner = randomUUID();
    const staleMs = this.options.lockStaleMs ?? 15_000;
    const pollMs = options.pollMs ?? 1000;
    const tryTake = () =>
      this.run(async () => {
        const cur = this.db.prepare('SELECT owner, pid, heartbeat_ms FROM projection_locks WHERE projection = ?').get(projection) as
          | { owner: string; pid: number; heartbeat_ms: number }
          | undefined;
        const free = !cur || Date.now() - cur.heartbeat_ms > staleMs || (cur.pid !== process.pid && !pidAlive(cur.pid));
        if (!free) return false;
        this.db
          .prepare('INSERT INTO projection_locks VALUES (?, ?, ?, ?) ON CONFLICT (projection) DO UPDATE SET owner = excluded.owner, pid = excluded.pid, heartbeat_ms = excluded.heartbeat_ms')
          .run(projection, owner, process.pid, Date.now());
        return true;
      });
    while (!(await tryTake())) {
      options.signal?.throwIfAborted();
      await sleep(pollMs, undefined, { signal: options.signal });
    }
    let held = true;
    const fence = () => {
      const cur = this.db.prepare('SELECT owner FROM projection_locks WHERE projection = ?').get(projection) as { owner: string } | undefined;
      if (cur?.owner !== owner) {
        held = false;
        throw new Error(`projection ${projection}: lock lost`);
      }
    };
    const beat = setInterval(() => {
      this.run(async () => {
        fence();
        this.db.prepare('UPDATE projection_locks SET heartbeat_ms = ? WHERE projection = ? AND owner = ?').run(Date.now(), projection, owner);
      }).catch((err) => {
        if (held) this.options.logger?.warn({ err, projection }, 'projection_lock_lost');
        held = false;
      });
    }, Math.max(100, Math.floor(staleMs / 3)));
    beat.unref();
    return {
      projection,
      get held() {
        return held;
      },
      transaction: <T>(fn: (tx: ReadModelTx) => Promise<T>) => this.run(fn, fence),
      release: async () => {
        clearInterval(beat);
        if (!held) return;
        held = false;
        await this.run(async () => {
          this.db.prepare('DELETE FROM projection_locks WHERE projection = ? AND owner = ?').run(projection, owner);
        }).catch(() => undefined);
      },
    };
  }

  async checkpoints(): Promise<Checkpoint[]> {
    const rows = this.db.prepare('SELECT * FROM projection_checkpoints ORDER BY projection').safeIntegers(true).all() as Record<string, unknown>[];
    return rows.map(checkpointFromRow);
  }

  /** Another connection holds the write lock past the wait, the disk failed or is full, or the projection lock was lost. */
  isTransient(err: unknown): boolean {
    const code = String((err as { code?: unknown } | null)?.code ?? '');
    if (/^SQLITE_(BUSY|LOCKED|IOERR|FULL|CANTOPEN|PROTOCOL)/.test(code)) return true;
    return /lock lost/.test(err instanceof Error ? err.message : '');
  }

  async readAll(t: TableSpec, where?: string): Promise<Row[]> {
    return this.db.prepare(`SELECT * FROM ${t.name}${where ? ` WHERE ${where}` : ''} ORDER BY ${t.key}`).all() as Row[];
  }

  async query(sql: string, params: readonly Value[] = []): Promise<Row[]> {
    const s = this.db.prepare(sql);
    if (s.reader) return s.all(...params) as Row[];
    await this.run(async () => s.run(...params));
    return [];
  }

  async createTable(t: TableSpec): Promise<void> {
    await this.run(async () => {
      for (const s of tableDdl('sqlite', t)) this.db.exec(s);
    });
  }

  async dropTable(name: string): Promise<void> {
    await this.run(async () => void this.db.exec(`DROP TABLE IF EXISTS ${name}`));
  }

  async close(): Promise<void> {
    await this.queue;
    this.db.close();
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function openSqliteReadModel(o: SqliteReadModelOptions): SqliteReadModel {
  return new SqliteReadModel(o);
}

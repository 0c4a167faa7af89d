// The read-model port: what a projection needs from a SQL database. Postgres (pg) and SQLite (better-sqlite3)
// implement it; the projection logic and most SQL (src/projections/schema.ts) are shared.
import type { Position } from '../app/ports/eventStore.ts';

export type Dialect = 'postgres' | 'sqlite';
export type ColType = 'text' | 'int' | 'bigint' | 'float' | 'ts';
export type Value = string | number | null;
export type Row = Record<string, Value>;

/** A table the projections own (state, ledger entries). `name` may be a shadow name during a rebuild. */
export interface TableSpec {
  name: string;
  columns: readonly { name: string; type: ColType; notNull?: boolean }[];
  /** primary key column */
  key: string;
  indexes?: readonly string[][];
}

export interface Checkpoint {
  projection: string;
  position: Position;
  /** events applied since the projection started (or was rebuilt) */
  events: number;
  updatedAt: string | null;
  /** the event the projection stopped at, when it cannot apply it (cleared when the checkpoint next moves) */
  failure: ProjectionFailure | null;
}

/** A `projection_checkpoints` row as either read model returns it (positions as text or bigint). */
export function checkpointFromRow(x: Record<string, unknown>): Checkpoint {
  return {
    projection: x.projection as string,
    position: { commit: BigInt(x.commit_position as string | bigint), prepare: BigInt(x.prepare_position as string | bigint) },
    events: Number(x.events),
    updatedAt: x.updated_at as string | null,
    failure: x.failure ? (JSON.parse(x.failure as string) as ProjectionFailure) : null,
  };
}

/** An event a projection could not apply: the projector stops there (health degraded, alert, `wearon projections`). */
export interface ProjectionFailure {
  eventId: string;
  eventType: string;
  streamId: string;
  revision: number;
  /** `commit/prepare` */
  position: string;
  error: string;
  /** first failure (ISO time) */
  since: string;
  /** attempts so far */
  attempts: number;
}

/** One database transaction. Every call runs inside it; nothing is visible to readers before commit. */
export interface ReadModelTx {
  /** Locks the checkpoint row (creating it at START when missing) until the transaction ends. */
  lockCheckpoint(projection: string): Promise<Checkpoint>;
  /** `lockCheckpoint`, then `load(table, keys)` under that lock, as one step (Postgres: one round trip). */
  lockAndLoad(projection: string, table: TableSpec, keys: readonly string[]): Promise<{ checkpoint: Checkpoint; rows: Row[] }>;
  /** Moves the checkpoint (and clears a recorded failure: the projection got past it). */
  setCheckpoint(projection: string, position: Position, events: number): Promise<void>;
  /** Records (or clears) the event the projection is stuck at, on its checkpoint row. */
  setFailure(projection: string, failure: ProjectionFailure | null): Promise<void>;
  load(table: TableSpec, keys: readonly string[]): Promise<Row[]>;
  /** every key of the table */
  keys(table: TableSpec): Promise<string[]>;
  /**
   * Upserts `rows` into `table` (every non-key column replaced on key conflict) and inserts `entries` (a row whose key
   * exists is left alone: re-applying is a no-op), as one step (Postgres: one statement). Entries marked `fresh` cannot
   * exist yet (a rebuild's shadow table, which only the rebuild writes): Postgres bulk-loads them (COPY, two round trips)
   * and fails the write on one that does exist; SQLite inserts them as any entries. `newRows` are state rows whose keys
   * `table` cannot hold yet (a rebuild's shadow: rows no earlier flush wrote): Postgres bulk-loads them as well and fails
   * on one that exists; SQLite upserts them with `rows`.
   */
  write(table: TableSpec, rows: readonly Row[], entries?: { table: TableSpec; rows: readonly Row[]; fresh?: boolean }, newRows?: readonly Row[]): Promise<void>;
  /**
   * The rebuild's swap: `shadow` (same columns and key) takes the place of `live`, which is dropped, and gets `live`'s
   * indexes: no copy of the rows, no delete of the old ones.
   */
  replaceTable(live: TableSpec, shadow: TableSpec): Promise<void>;
  /**
   * Runs shared SQL with dialect tokens (see schema.ts `renderSql`): `{keys:col}` is bound to `keys`
   * (null = every row), `{uuid:x}`, `{ts:x}`, `{now}`.
   */
  exec(sql: string, keys: readonly string[] | null, tables?: Record<string, string>): Promise<number>;
  /**
   * `exec` of one statement, or of several as one step (Postgres: one statement, sent with its savepoint in one round
   * trip), inside a savepoint: a constraint violation is rolled back and returned as its message (else null).
   */
  execGuarded(sql: string | readonly string[], keys: readonly string[] | null): Promise<string | null>;
}

/** The right to write one projection: at most one holder at a time across processes. */
export interface ProjectionLease {
  readonly projection: string;
  /** false once the lock was lost (e.g. its connection died): stop writing. */
  readonly held: boolean;
  transaction<T>(fn: (tx: ReadModelTx) => Promise<T>): Promise<T>;
  release(): Promise<void>;
}

export interface ReadModel {
  readonly dialect: Dialect;
  /** Creates the projections' tables, and the platform tables when absent; idempotent. */
  migrate(): Promise<void>;
  /** Waits (polling every pollMs) until this caller holds the projection's lock; rejects when signal aborts. */
  acquire(projection: string, options?: { signal?: AbortSignal; pollMs?: number }): Promise<ProjectionLease>;
  /** A transaction outside any projection lock (rebuild swap, imports). */
  transaction<T>(fn: (tx: ReadModelTx) => Promise<T>): Promise<T>;
  checkpoints(): Promise<Checkpoint[]>;
  /**
   * The read model itself could not be used (connection, timeout, busy, lost lock): no event is at fault and the same
   * batch may well apply later. Anything else a batch throws is about its events (a refused value, an undecodable event).
   */
  isTransient(err: unknown): boolean;
  /** Every row of a table, normalised by the spec's column types (numbers, ISO timestamps). */
  readAll(table: TableSpec, where?: string): Promise<Row[]>;
  /** Raw query for platform tables (verify, import); `?` placeholders. */
  query(sql: string, params?: readonly Value[]): Promise<Row[]>;
  /** Creates `table` (CREATE TABLE IF NOT EXISTS from the spec) or drops it. */
  createTable(table: TableSpec): Promise<void>;
  dropTable(name: string): Promise<void>;
  close(): Promise<void>;
}

export class CheckpointConflictError extends Error {
  override readonly name = 'CheckpointConflictError';
}

// What a projection is: a pure reducer over decoded events with its tables and publish statements, plus its own hooks
// (seeding a rebuild from a position, gauges from its state, verifying what it published). Shared helpers for the
// projections in this folder.
import type { EventFilter, Position } from '../app/ports/eventStore.ts';
import type { LedgerRecord } from '../app/recorded.ts';
import { accountIdOf, type AccountRef } from '../domain/streams.ts';
import type { Metrics } from '../metrics.ts';
import type { Drift } from './drift.ts';
import type { ReadModel, ReadModelTx, Row, TableSpec } from './readModel.ts';

export type ProjectionName = 'session-status' | 'credit-balances' | 'credit-history';

/** What a pure fold of the log produced for one projection: its state rows by key, and its entries. */
export interface FoldResult {
  rows: Map<string, Row>;
  entries: Row[];
}

export interface Projection {
  name: ProjectionName;
  /** the state table, one row per key */
  state: TableSpec;
  /** append-only rows keyed by event id (ledger entries), if any */
  entries?: TableSpec;
  /** statements copying state rows into the platform tables (schema.ts tokens) */
  publish: readonly string[];
  /**
   * Statements removing every platform row `publish` wrote, run in a rebuild's swap before all rows are published
   * again: for platform tables whose rows `publish` only inserts (history), so a rebuild leaves no stale or altered row.
   */
  retract?: readonly string[];
  /**
   * The streams it reads: `keyOf` is null for every event outside them. A rebuild reads the log through this filter, so
   * the store skips (and never decodes) the rest; the invariant-5 property checks the two agree.
   */
  reads: EventFilter;
  keyOf(r: LedgerRecord): string | null;
  /** Pure: the next state row (a new object when changed, `prev` when the event changes nothing); may emit entries. */
  reduce(prev: Row | undefined, r: LedgerRecord, entries: Row[]): Row | undefined;
  /**
   * Fills a rebuild's shadow tables with the state as of `from` (`wearon replay --from`), from the live tables, which
   * already include everything up to it.
   */
  seed(tx: ReadModelTx, shadow: { state: TableSpec; entries?: TableSpec | undefined }, from: Position): Promise<void>;
  /** Every difference between the read model (own and platform tables) and `expected`, a fresh fold (`wearon verify`). */
  verify(expected: FoldResult, readModel: ReadModel): Promise<Drift[]>;
  /** Exports gauges computed from the projection's state (after changes: once caught up, else at most every 10 s). */
  report?(readModel: ReadModel, metrics: Metrics): Promise<void>;
}

export const iso = (t: string) => new Date(t).toISOString();

/** The row already reflects this event (or a later one): applying it again changes nothing. */
export function notApplied(prev: Row, r: LedgerRecord): boolean {
  // compared as the numbers the row holds (pos, below): no BigInt per event on the rebuild's hot path
  const commit = Number(r.recorded.position.commit);
  const prevCommit = prev.last_commit as number;
  return commit < prevCommit || (commit === prevCommit && Number(r.recorded.position.prepare) <= (prev.last_prepare as number));
}

/** The row's position columns after this event. */
export const pos = (r: LedgerRecord) => ({ last_commit: Number(r.recorded.position.commit), last_prepare: Number(r.recorded.position.prepare) });

/** SQL: the row's position is at or before `p`. */
export const atOrBefore = (p: Position, commit: string, prepare: string) =>
  `(${commit} < ${p.commit} OR (${commit} = ${p.commit} AND ${prepare} <= ${p.prepare}))`;

/** The row's owner: user or store id, and the shopper hash of a resell account. */
export function ownerColumns(ref: AccountRef): { account: string; owner_id: string; shopper_hash: string | null } {
  const [ownerId, shopperHash] = ref.kind === 'shopper' ? ref.id.split('.') : [ref.id, null];
  return { account: accountIdOf(ref), owner_id: ownerId!, shopper_hash: shopperHash ?? null };
}

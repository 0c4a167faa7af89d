// How a rebuild writes: its flushes make progress while the next pages are read from a store that reads synchronously
// (SQLite), the Postgres rows travel as array literals or COPY text that read back unchanged (COPY for what a rebuild
// writes first: entries, and rows no earlier flush wrote), the swap renames the shadow
// over the live table with the live indexes (in Postgres waiting for, and retrying past, a reader that holds it), and
// its republish rewrites only the platform rows that differ.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pg from 'pg';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openSqliteEventStore, type SqliteEventStore } from '../../src/adapters/eventstore/sqlite/sqliteEventStore.ts';
import { START, type Position } from '../../src/app/ports/eventStore.ts';
import type { CheckpointedProcessor } from '../../src/app/consumer.ts';
import { readLog } from '../../src/app/log.ts';
import { foldKeyed, isolatingProcessor, keyedRecords, shadowTarget, targetProcessor } from '../../src/projections/projector.ts';
import { PROJECTIONS, PROJECTION_NAMES } from '../../src/projections/projections.ts';
import type { ReadModelTx, Row, TableSpec } from '../../src/projections/readModel.ts';
import { foldingProcessor, rebuildProjection } from '../../src/projections/rebuild.ts';
import { verifyReadModels } from '../../src/projections/verifyReadModels.ts';
import { scaled, waitFor } from '../support/deadlines.ts';
import { appendHistory, busyHistory } from '../support/ledgerHistory.ts';
import { pgReadModel, sqliteReadModel, type TestReadModel } from '../support/readModels.ts';
import { DATABASE_URL, postgresAvailable } from '../support/services.ts';

const logger = pino({ level: 'silent' });
const pgOk = await postgresAvailable();

let dir: string;
let store: SqliteEventStore;
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'wearon-rbw-'));
  store = openSqliteEventStore({ path: join(dir, 'ledger.sqlite') });
  await appendHistory(store, busyHistory());
});
afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const PLATFORM_TABLES = ['generation_sessions', 'store_generation_sessions', 'user_credits', 'store_credits', 'store_shopper_credits'];

/** Counts the rows updated in the platform tables (a trigger per table) from now on. */
async function countPlatformUpdates(t: TestReadModel, dialect: 'postgres' | 'sqlite'): Promise<() => Promise<Record<string, number>>> {
  await t.rm.query('CREATE TABLE platform_updates (tbl text)');
  if (dialect === 'postgres') {
    await t.rm.query(`CREATE FUNCTION count_platform_update() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO platform_updates VALUES (TG_TABLE_NAME); RETURN NULL; END $$`);
  }
  for (const tbl of PLATFORM_TABLES) {
    await t.rm.query(
      dialect === 'postgres'
        ? `CREATE TRIGGER ${tbl}_counted AFTER UPDATE ON ${tbl} FOR EACH ROW EXECUTE FUNCTION count_platform_update()`
        : `CREATE TRIGGER ${tbl}_counted AFTER UPDATE ON ${tbl} BEGIN INSERT INTO platform_updates VALUES ('${tbl}'); END`,
    );
  }
  return async () => {
    const rows = await t.rm.query('SELECT tbl, COUNT(*) AS n FROM platform_updates GROUP BY tbl');
    await t.rm.query('DELETE FROM platform_updates');
    return Object.fromEntries(rows.map((r) => [String(r.tbl), Number(r.n)]));
  };
}

/** A second rebuild republishes every row: only a row the platform holds differently is updated (restored). */
async function republishTouchesOnlyDrift(t: TestReadModel, dialect: 'postgres' | 'sqlite'): Promise<void> {
  const rebuildAll = async () => {
    for (const n of PROJECTION_NAMES) await rebuildProjection({ store, readModel: t.rm, projection: PROJECTIONS[n], logger });
  };
  await rebuildAll();
  const sessions = await t.rm.query("SELECT id, status FROM generation_sessions WHERE status = 'completed' ORDER BY id");
  const balances = await t.rm.query('SELECT COUNT(*) AS n FROM user_credits');
  expect(sessions.length).toBeGreaterThan(1);
  expect(Number(balances[0]!.n)).toBeGreaterThan(0);
  const updates = await countPlatformUpdates(t, dialect);
  await t.rm.query(`UPDATE generation_sessions SET status = 'failed' WHERE id = '${String(sessions[0]!.id)}'`); // the web app's doing
  expect(await updates()).toEqual({ generation_sessions: 1 });
  await rebuildAll();
  expect(await updates()).toEqual({ generation_sessions: 1 }); // the drifted row, restored; nothing else rewritten
  expect(await t.rm.query("SELECT id, status FROM generation_sessions WHERE status = 'completed' ORDER BY id")).toEqual(sessions);
  expect(await verifyReadModels(store, t.rm, logger)).toEqual([]);
}

describe('rebuild (SQLite read model)', () => {
  let t: TestReadModel;
  beforeEach(async () => {
    t = await sqliteReadModel();
    await t.rm.migrate();
  });
  afterEach(() => t.cleanup());

  it('a flush in flight commits while the next page is folded, not only when the rebuild waits for it', async () => {
    const p = PROJECTIONS['credit-balances'];
    const target = shadowTarget(p);
    for (const s of [target.state, target.entries!]) await t.rm.createTable(s);
    let page = 0;
    const runs: { from: number; to: number }[] = [];
    // A database in another process: its reply arrives on a later turn of the event loop (an I/O callback).
    const run = async <T>(fn: (tx: ReadModelTx) => Promise<T>): Promise<T> => {
      const from = page;
      await new Promise(setImmediate);
      const out = await t.rm.transaction(fn);
      runs.push({ from, to: page });
      return out;
    };
    const reread = (after: Position, until: Position) => readLog(store, { after, until, pageSize: 2, filter: p.reads });
    const processor = foldingProcessor(run, target, true, 4, 1000, isolatingProcessor(targetProcessor(run, target), () => false), reread);
    let cp = await processor.checkpoint();
    for await (const events of readLog(store, { after: START, pageSize: 2, filter: p.reads })) {
      page++;
      expect(await processor.apply(events, cp)).toMatchObject({ ok: true });
      cp = events[events.length - 1]!.position;
    }
    await processor.flush();
    const flushes = runs.slice(1, -1); // not the checkpoint read, nor the last flush (the rebuild waits for that one)
    expect(flushes.length).toBeGreaterThan(3);
    // Started by a page's fold, committed by the next page's: the pages read since never starved it.
    for (const f of flushes) expect(f.to - f.from, JSON.stringify(runs)).toBeLessThanOrEqual(1);
    const entries = await t.rm.readAll(target.entries!);
    expect(entries.length).toBe((await store.readAll({ maxCount: 10_000, filter: p.reads })).filter((e) => e.type.startsWith('Credit')).length);
  });

  it('the swap renames the shadow in: the live tables keep their names and indexes, no shadow is left', async () => {
    for (const n of PROJECTION_NAMES) await rebuildProjection({ store, readModel: t.rm, projection: PROJECTIONS[n], logger });
    for (const n of PROJECTION_NAMES) await rebuildProjection({ store, readModel: t.rm, projection: PROJECTIONS[n], logger }); // over a renamed one
    const schema = await t.rm.query("SELECT type, name, tbl_name FROM sqlite_schema WHERE tbl_name IN ('ledger_entries', 'credit_accounts') OR name LIKE 'rebuild%' ORDER BY name");
    expect(schema).toEqual([
      { type: 'table', name: 'credit_accounts', tbl_name: 'credit_accounts' },
      { type: 'table', name: 'ledger_entries', tbl_name: 'ledger_entries' },
      ...['account_global_commit', 'generation_id', 'occurred_at'].map((c) => ({ type: 'index', name: `ledger_entries_${c}_idx`, tbl_name: 'ledger_entries' })),
      { type: 'index', name: 'sqlite_autoindex_credit_accounts_1', tbl_name: 'credit_accounts' },
      { type: 'index', name: 'sqlite_autoindex_ledger_entries_1', tbl_name: 'ledger_entries' },
    ]);
    expect(await verifyReadModels(store, t.rm, logger)).toEqual([]);
  });

  it('a rebuild republishes into the platform tables only the rows that differ', () => republishTouchesOnlyDrift(t, 'sqlite'));
});

describe.skipIf(!pgOk)('Postgres rebuild writes', () => {
  let t: TestReadModel;
  beforeEach(async () => {
    t = await pgReadModel('rbw');
    await t.rm.migrate();
  });
  afterEach(() => t.cleanup());

  it('rows written as array literals or COPY text read back unchanged: quotes, backslashes, braces, NULL-like text, unicode', async () => {
    const spec: TableSpec = {
      name: 'literal_probe',
      key: 'k',
      columns: [
        { name: 'k', type: 'text', notNull: true },
        { name: 's', type: 'text' },
        { name: 'i', type: 'int' },
        { name: 'b', type: 'bigint' },
        { name: 'f', type: 'float' },
        { name: 'at', type: 'ts' },
      ],
    };
    await t.rm.createTable(spec);
    const texts = ['he said "hi"', 'back\\slash', '\\"', '"', '\\', 'a,b', '{x}', 'NULL', 'null', '', ' ', ' padded ', 'line\nbreak\ttab', 'cr\rlf', '\\N', '\t', 'ünï 🧵', "it's"];
    const rows: Row[] = texts.map((s, n) => ({
      k: `k${n}${s}`,
      s,
      i: n % 2 ? -n : 2 ** 31 - 1 - n,
      b: Number.MAX_SAFE_INTEGER - n,
      f: n === 0 ? 1e-7 : 0.0412 * n,
      at: new Date(Date.UTC(2026, 0, 1, 0, 0, n, 123)).toISOString(),
    }));
    rows.push({ k: 'nulls', s: null, i: null, b: null, f: null, at: null });
    await t.rm.transaction((tx) => tx.write(spec, rows));
    // upsert: every non-key column replaced
    const changed = rows.map((r) => ({ ...r, s: r.s === null ? 'now set' : `${r.s}"\\` }));
    await t.rm.transaction((tx) => tx.write(spec, changed));
    const byKey = (a: Row, b: Row) => String(a.k).localeCompare(String(b.k));
    expect([...(await t.rm.readAll(spec))].sort(byKey)).toEqual([...changed].sort(byKey));
    // Fresh entries (a rebuild's shadow) travel as COPY text; one that exists fails the write, which rolls back whole.
    const copied: TableSpec = { ...spec, name: 'copy_probe' };
    await t.rm.createTable(copied);
    await t.rm.transaction((tx) => tx.write(spec, [], { table: copied, rows, fresh: true }));
    expect([...(await t.rm.readAll(copied))].sort(byKey)).toEqual([...rows].sort(byKey));
    const again = t.rm.transaction((tx) => tx.write(spec, [{ ...rows[0]!, k: 'new' }], { table: copied, rows: rows.slice(0, 1), fresh: true }));
    await expect(again).rejects.toThrow(/duplicate key/);
    expect(await t.rm.query("SELECT k FROM literal_probe WHERE k = 'new'")).toEqual([]);
    expect((await t.rm.readAll(copied)).length).toBe(rows.length);
    // New state rows (keys the table cannot hold yet) travel as COPY text too, beside upserted ones; one that exists fails.
    const state: TableSpec = { ...spec, name: 'new_rows_probe' };
    await t.rm.createTable(state);
    await t.rm.transaction((tx) => tx.write(state, [], undefined, rows));
    await t.rm.transaction((tx) => tx.write(state, changed.slice(0, 2), undefined, [{ ...rows[0]!, k: 'added' }]));
    expect([...(await t.rm.readAll(state))].sort(byKey)).toEqual([...changed.slice(0, 2), ...rows.slice(2), { ...rows[0]!, k: 'added' }].sort(byKey));
    const existing = t.rm.transaction((tx) => tx.write(state, [{ ...rows[1]!, s: 'lost' }], undefined, [rows[2]!]));
    await expect(existing).rejects.toThrow(/duplicate key/);
    expect(await t.rm.query("SELECT k FROM new_rows_probe WHERE s = 'lost'")).toEqual([]);
  });

  it('a rebuild from empty COPYs each row once, then upserts its later versions: no flush fails over to the page-by-page path', async () => {
    const p = PROJECTIONS['session-status'];
    const target = shadowTarget(p);
    await t.rm.createTable(target.state);
    const written = { upserted: 0, new: 0 };
    // Counts what each flush hands the read model, which writes it as it always does.
    const counting = (tx: ReadModelTx): ReadModelTx =>
      new Proxy(tx, {
        get: (target, name) => {
          if (name !== 'write') return Reflect.get(target, name, target);
          return (table: TableSpec, rows: readonly Row[], entries?: Parameters<ReadModelTx['write']>[2], newRows: readonly Row[] = []) => {
            written.upserted += rows.length;
            written.new += newRows.length;
            return target.write(table, rows, entries, newRows);
          };
        },
      });
    const run = <T>(fn: (tx: ReadModelTx) => Promise<T>) => t.rm.transaction((tx) => fn(counting(tx)));
    const inner = isolatingProcessor(targetProcessor(run, target), () => false);
    let fallbacks = 0;
    const fallback: CheckpointedProcessor = { checkpoint: () => inner.checkpoint(), apply: (events, expected) => (fallbacks++, inner.apply(events, expected)) };
    const reread = (after: Position, until: Position) => readLog(store, { after, until, pageSize: 2, filter: p.reads });
    // Flushes of 3 events: a session's row is first written by one flush and changed by later ones.
    const processor = foldingProcessor(run, target, true, 3, 1000, fallback, reread);
    let cp = await processor.checkpoint();
    const events = await store.readAll({ maxCount: 10_000, filter: p.reads });
    for await (const page of readLog(store, { after: START, pageSize: 2, filter: p.reads })) {
      expect(await processor.apply(page, cp)).toMatchObject({ ok: true });
      cp = page[page.length - 1]!.position;
    }
    await processor.flush();
    expect(fallbacks).toBe(0);
    const expected = new Map<string, Row | undefined>();
    foldKeyed(p, keyedRecords(p, events), expected, [], new Set());
    const byKey = (a: Row, b: Row) => String(a.session_id).localeCompare(String(b.session_id));
    expect(expected.size).toBeGreaterThan(3);
    expect(written.new).toBe(expected.size);
    expect(written.upserted).toBeGreaterThan(0);
    expect([...(await t.rm.readAll(target.state))].sort(byKey)).toEqual([...expected.values()].map((r) => r!).sort(byKey));
  });

  it('the swap renames the indexed shadow in; a reader holding a live table past the lock timeout makes it retry, not fail', async () => {
    const schema = String((await t.rm.query('SELECT current_schema() AS s'))[0]!.s);
    for (const n of PROJECTION_NAMES) await rebuildProjection({ store, readModel: t.rm, projection: PROJECTIONS[n], logger });
    const reader = new pg.Client({ connectionString: DATABASE_URL });
    await reader.connect();
    const lines: string[] = [];
    const capture = pino({ level: 'warn' }, new Writable({ write: (chunk, _enc, done) => (lines.push(String(chunk)), done()) }));
    try {
      await reader.query(`SET search_path = ${schema}; BEGIN; SELECT COUNT(*) FROM ledger_entries`); // holds it until COMMIT
      const rebuilt = rebuildProjection({ store, readModel: t.rm, projection: PROJECTIONS['credit-balances'], logger: capture });
      await waitFor('the swap to retry', () => lines.some((l) => l.includes('rebuild_swap_retry') && l.includes('lock timeout')), scaled(20_000));
      await reader.query('COMMIT');
      await rebuilt;
    } finally {
      await reader.end();
    }
    // The live tables carry their own names, indexes and row security; no shadow is left; the read models are right.
    const indexes = await t.rm.query(
      "SELECT tablename, indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename IN ('ledger_entries', 'credit_accounts') ORDER BY indexname",
    );
    expect(indexes).toEqual(
      ['credit_accounts_pkey', 'ledger_entries_account_global_commit_idx', 'ledger_entries_generation_id_idx', 'ledger_entries_occurred_at_idx', 'ledger_entries_pkey'].map(
        (indexname) => ({ tablename: indexname.startsWith('ledger') ? 'ledger_entries' : 'credit_accounts', indexname }),
      ),
    );
    const tables = await t.rm.query(
      "SELECT relname, relrowsecurity, relpersistence FROM pg_class WHERE relnamespace = current_schema()::regnamespace AND relkind = 'r' AND (relname LIKE 'rebuild%' OR relname IN ('ledger_entries', 'credit_accounts')) ORDER BY relname",
    );
    expect(tables).toEqual(['credit_accounts', 'ledger_entries'].map((relname) => ({ relname, relrowsecurity: true, relpersistence: 'p' })));
    expect(await verifyReadModels(store, t.rm, logger)).toEqual([]);
  }, scaled(60_000));

  it('a rebuild republishes into the platform tables only the rows that differ', () => republishTouchesOnlyDrift(t, 'postgres'), scaled(30_000));
});

// Invariant 5 (ledger.md): live projection (random batch sizes), a rebuild from 0 and the pure fold give equal rows,
// and re-applying any batch changes nothing; for the Postgres and the SQLite read models, on the real SQLite event store.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { openSqliteEventStore } from '../../src/adapters/eventstore/sqlite/sqliteEventStore.ts';
import type { EventStore, Position, RecordedEvent } from '../../src/app/ports/eventStore.ts';
import { START, matchesFilter } from '../../src/app/ports/eventStore.ts';
import { decodeRecorded } from '../../src/app/recorded.ts';
import { applyEvents, commitBatch, liveTarget } from '../../src/projections/projector.ts';
import { readAfter } from '../../src/app/log.ts';
import { PROJECTIONS, PROJECTION_NAMES, fold } from '../../src/projections/projections.ts';
import { CheckpointConflictError, type ReadModel, type Row } from '../../src/projections/readModel.ts';
import { rebuildProjection } from '../../src/projections/rebuild.ts';
import { verifyReadModels } from '../../src/projections/verifyReadModels.ts';
import { actionArb, appendHistory, simulate } from '../support/ledgerHistory.ts';
import { pgReadModel, sqliteReadModel, type TestReadModel } from '../support/readModels.ts';
import { postgresAvailable } from '../support/services.ts';
import { scaled } from '../support/deadlines.ts';

const logger = pino({ level: 'silent' });
const pgOk = await postgresAvailable();

const PLATFORM = {
  generation_sessions: 'id, user_id, status, model_image_url, outfit_image_url, prompt_system, error_message, generated_image_url, processing_time_ms, completed_at, input_tokens, output_tokens, estimated_cost_usd',
  store_generation_sessions: 'id, store_id, shopper_email, status, model_image_url, outfit_image_url, prompt_system, request_id, error_message, generated_image_url, processing_time_ms, completed_at, input_tokens, output_tokens, estimated_cost_usd',
  user_credits: 'user_id, balance, total_earned, total_spent',
  store_credits: 'store_id, balance, total_purchased, total_spent',
  store_shopper_credits: 'store_id, shopper_email, shopper_hash, balance, total_purchased, total_spent',
  credit_transactions: 'ledger_event_id, user_id, amount, type, description, created_at',
  store_credit_transactions: 'ledger_event_id, store_id, amount, type, request_id, description, created_at',
};

/** Every row the projections own or publish (platform rows without generated columns). */
async function snapshot(rm: ReadModel): Promise<Record<string, unknown[]>> {
  const out: Record<string, unknown[]> = {};
  for (const n of PROJECTION_NAMES) {
    const p = PROJECTIONS[n];
    out[p.state.name] = await rm.readAll(p.state);
    if (p.entries) out[p.entries.name] = await rm.readAll(p.entries);
  }
  for (const [t, cols] of Object.entries(PLATFORM)) {
    const rows = await rm.query(`SELECT ${cols} FROM ${t} ORDER BY 1, 2`);
    out[t] = rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, typeof v === 'string' && /^\d{4}-\d\d-\d\d[T ]/.test(v) ? new Date(v).toISOString() : v])));
  }
  return out;
}

/** Live projection in batches of the given sizes (cycled) until caught up; returns the batches applied. */
async function projectLive(store: EventStore, rm: ReadModel, sizes: number[]): Promise<RecordedEvent[][]> {
  const batches: RecordedEvent[][] = [];
  for (const n of PROJECTION_NAMES) {
    const t = liveTarget(PROJECTIONS[n]);
    let i = 0;
    for (;;) {
      const cp = (await rm.transaction((tx) => tx.lockCheckpoint(n))).position;
      const events = await readAfter(store, cp, sizes[i++ % sizes.length]!);
      if (events.length === 0) break;
      await rm.transaction((tx) => commitBatch(tx, t, cp, events));
      batches.push(events);
    }
  }
  return batches;
}

function suite(kind: string, make: () => Promise<TestReadModel>) {
  it(`${kind}: live == rebuild from 0 == pure fold; re-applying a batch changes nothing`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wearon-p5-'));
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.array(actionArb, { minLength: 1, maxLength: 200 }),
          fc.array(fc.integer({ min: 1, max: 25 }), { minLength: 1, maxLength: 5 }),
          fc.nat(),
          async (actions, sizes, pick) => {
            const history = simulate(actions);
            const store = openSqliteEventStore({ path: join(dir, `ledger-${Math.random().toString(36).slice(2)}.sqlite`) });
            const t = await make();
            try {
              await t.rm.migrate();
              const half = Math.floor(history.length / 2);
              await appendHistory(store, history.slice(0, half));
              const b1 = await projectLive(store, t.rm, sizes);
              await appendHistory(store, history.slice(half), half);
              const b2 = await projectLive(store, t.rm, sizes);
              const live = await snapshot(t.rm);

              // pure fold == state rows
              const all = await store.readAll({ maxCount: 100_000 });
              for (const n of PROJECTION_NAMES) {
                const p = PROJECTIONS[n];
                // a rebuild reads only `reads`: every event the projection keys must be inside it
                const keyedOutside = all.filter((e) => {
                  const r = decodeRecorded(e);
                  return r !== null && p.keyOf(r) !== null && !matchesFilter(e.streamId, e.type, p.reads);
                });
                expect(keyedOutside.map((e) => `${e.streamId} ${e.type}`)).toEqual([]);
                const f = fold(p, all);
                const sortKey = (r: Row) => String(r[p.state.key]);
                expect(live[p.state.name]).toEqual([...f.rows.values()].sort((a, b) => (sortKey(a) < sortKey(b) ? -1 : 1)));
                if (p.entries) expect(live[p.entries.name]).toEqual([...f.entries].sort((a, b) => (String(a.event_id) < String(b.event_id) ? -1 : 1)));
              }
              expect(await verifyReadModels(store, t.rm, logger)).toEqual([]);

              // re-applying any batch: rows alone (row-level idempotence) and through the checkpoint (stale CAS)
              const batches = [...b1, ...b2];
              if (batches.length) {
                const batch = batches[pick % batches.length]!;
                for (const n of PROJECTION_NAMES) {
                  await t.rm.transaction((tx) => applyEvents(tx, liveTarget(PROJECTIONS[n]), batch));
                  const stale: Position = comparePrev(batch);
                  await expect(t.rm.transaction((tx) => commitBatch(tx, liveTarget(PROJECTIONS[n]), stale, batch))).rejects.toBeInstanceOf(CheckpointConflictError);
                }
                expect(await snapshot(t.rm)).toEqual(live);
              }

              // rebuild from 0 == live
              // flushEvents from the drawn sizes: several flushes, rows cached across them (rebuild.ts foldingProcessor)
              const flushEvents = sizes[0]! + 3;
              // and a cache that starts over now and then (so rows are loaded back), or never does
              const cachedRows = pick % 2 ? 1 : 200_000;
              for (const n of PROJECTION_NAMES) await rebuildProjection({ store, readModel: t.rm, projection: PROJECTIONS[n], logger, batchSize: 7, flushEvents, cachedRows });
              expect(await snapshot(t.rm)).toEqual(live);
              // repair from a position (`replay --from`): same rows
              if (all.length) {
                const from = all[pick % all.length]!.position;
                for (const n of PROJECTION_NAMES) await rebuildProjection({ store, readModel: t.rm, projection: PROJECTIONS[n], logger, batchSize: 5, from, flushEvents, cachedRows });
                expect(await snapshot(t.rm)).toEqual(live);
              }
              expect(await verifyReadModels(store, t.rm, logger)).toEqual([]);
            } finally {
              await store.close();
              await t.cleanup();
            }
          },
        ),
        { numRuns: kind === 'postgres' ? 12 : 25 },
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, scaled(240_000));
}

/** The checkpoint a batch was applied on top of (the position before its first event). */
function comparePrev(batch: RecordedEvent[]): Position {
  const first = batch[0]!.position.commit;
  return first === 0n ? START : { commit: first - 1n, prepare: first - 1n };
}

describe.skipIf(!pgOk)('invariant 5 (Postgres read model)', () => suite('postgres', () => pgReadModel('p5')));
describe('invariant 5 (SQLite read model)', () => suite('sqlite', () => sqliteReadModel()));

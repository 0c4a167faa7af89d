// The Postgres event store's figures (issue 14): sequential appends against a raw insert of the same row into a table of
// the same shape (goal >= 0.8x), concurrent appends against concurrent raw inserts, and reading the global log against
// a raw keyset scan of the same table, all in the same run and database. Baseline and store alternate in rounds, and
// medians are compared, because the machine's fsync speed drifts with other load.
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { openPgEventStore, type PgEventStore } from '../src/adapters/eventstore/postgres/pgEventStore.ts';
import type { EventMeta, NewEvent, Position } from '../src/app/ports/eventStore.ts';
import { silentLogger } from '../src/logger.ts';
import { DATABASE_URL, postgresAvailable } from '../tests/support/services.ts';
import type { BenchSuite, Figure } from './types.ts';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;

const meta = (): EventMeta => ({ requestId: 'bench', causationId: 'bench', correlationId: 'bench', workerId: 'bench', occurredAt: new Date().toISOString() });

/** The row the ledger writes most: one CreditDeducted. */
const deducted = (i: number): NewEvent => ({
  id: randomUUID(),
  type: 'CreditDeducted',
  data: { generationId: `gen-${i}`, amount: 1, requestId: `req-${i}` },
  metadata: meta(),
});

/** Rates of one-row writes `write(stream)`: one at a time, or `inFlight` at once, each lane on its own stream. */
function rates(write: (stream: string) => Promise<unknown>, prefix: string) {
  return {
    async sequential(n: number): Promise<number> {
      const started = performance.now();
      for (let i = 0; i < n; i++) await write(`${prefix}-seq`);
      return n / ((performance.now() - started) / 1000);
    },
    async concurrent(n: number, inFlight: number): Promise<number> {
      let next = 0;
      const started = performance.now();
      await Promise.all(Array.from({ length: inFlight }, async (_, lane) => {
        while (next++ < n) await write(`${prefix}-lane${lane}`);
      }));
      return n / ((performance.now() - started) / 1000);
    },
  };
}

/** Raw inserts of the same row, one autocommit statement each, into a copy of the events table (same columns and indexes). */
function rawInserts(pool: pg.Pool, table: string) {
  const revisions = new Map<string, number>();
  return rates((stream) => {
    const revision = revisions.get(stream) ?? 0;
    revisions.set(stream, revision + 1);
    const e = deducted(revision);
    return pool.query(
      `INSERT INTO ${table} (transaction_id, event_id, stream_id, revision, type, data, metadata) VALUES (pg_current_xact_id(), $1, $2, $3, $4, $5::jsonb, $6::jsonb)`,
      [e.id, stream, revision, e.type, JSON.stringify(e.data), JSON.stringify(e.metadata)],
    );
  }, 'credit-account-user-raw');
}

/** The store's appends of the same row, each with its expected revision. */
function storeAppends(store: PgEventStore) {
  const revisions = new Map<string, number>();
  return rates(async (stream) => {
    const revision = revisions.get(stream) ?? -1;
    const r = await store.append(stream, [deducted(revision + 1)], revision < 0 ? 'no_stream' : revision);
    revisions.set(stream, r.nextRevision);
  }, 'credit-account-user-store');
}

/** The whole table through the store's global read, in pages of 1000. */
async function readAllRate(store: PgEventStore): Promise<{ perS: number; events: number }> {
  const started = performance.now();
  let events = 0;
  let from: Position | 'start' = 'start';
  for (;;) {
    const page = await store.readAll({ fromPosition: from, maxCount: 1001 });
    const fresh = from === 'start' ? page : page.slice(1); // inclusive of `from`
    events += fresh.length;
    if (page.length < 1001) break;
    from = page.at(-1)!.position;
  }
  return { perS: events / ((performance.now() - started) / 1000), events };
}

/** The same rows by a raw keyset scan in pages of 1000 (no visibility rule, no mapping beyond the driver's). */
async function rawScanRate(pool: pg.Pool, table: string): Promise<number> {
  const started = performance.now();
  let events = 0;
  let after: [string, string] | null = null;
  for (;;) {
    const r: pg.QueryResult = after
      ? await pool.query(`SELECT transaction_id::text AS tx, seq, event_id, stream_id, revision, type, data, metadata, recorded_at FROM ${table} WHERE (transaction_id, seq) > ($1::xid8, $2::bigint) ORDER BY transaction_id, seq LIMIT 1000`, after)
      : await pool.query(`SELECT transaction_id::text AS tx, seq, event_id, stream_id, revision, type, data, metadata, recorded_at FROM ${table} ORDER BY transaction_id, seq LIMIT 1000`);
    events += r.rows.length;
    if (r.rows.length < 1000) break;
    const last = r.rows.at(-1) as { tx: string; seq: string };
    after = [last.tx, last.seq];
  }
  return events / ((performance.now() - started) / 1000);
}

export const pgStoreBench: BenchSuite = async (ctx) => {
  if (!(await postgresAvailable().catch(() => false))) {
    ctx.log('pgStore: SKIP (Postgres not reachable)');
    return [];
  }
  const figures: Figure[] = [];
  const schema = `bench_es_${process.pid}_${Date.now().toString(36)}`;
  const admin = new pg.Pool({ connectionString: DATABASE_URL, max: 16 });
  const store = await openPgEventStore({ connectionString: DATABASE_URL, schema, logger: silentLogger(), poolSize: 16 });
  const raw = `${schema}.raw_events`;
  try {
    await admin.query(`CREATE TABLE ${raw} (LIKE ${schema}.events INCLUDING ALL)`);
    const rawIns = rawInserts(admin, raw);
    const appends = storeAppends(store);
    const n = ctx.quick ? 300 : 3000;
    const rounds = ctx.quick ? 3 : 7;
    const perRound = Math.ceil(n / rounds);

    // (a) sequential: one append (one round trip, one commit) at a time
    await rawIns.sequential(20);
    await appends.sequential(20); // warm-up
    ctx.log(`pgStore: ${rounds} rounds of ${perRound} raw inserts, then ${perRound} appends (schema ${schema})`);
    const rawRates: number[] = [];
    const seqRates: number[] = [];
    const ratios: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const a = await rawIns.sequential(perRound);
      const b = await appends.sequential(perRound);
      rawRates.push(a);
      seqRates.push(b);
      ratios.push(b / a);
    }
    const rawSeq = median(rawRates);
    const seqRatio = median(ratios);
    figures.push({ name: 'pgstore.raw_insert.per_s', value: round(rawSeq), unit: 'rows/s' });
    figures.push({ name: 'pgstore.append.per_s', value: round(median(seqRates)), unit: 'appends/s', baseline: 'pgstore.raw_insert.per_s', ratio: round(seqRatio, 3), target: '>= 0.8x baseline', met: seqRatio >= 0.8 });

    // (b) concurrent: 16 in flight, each on its own stream; the same for raw inserts
    const inFlight = 16;
    const cn = ctx.quick ? 800 : 6000;
    const cRounds = ctx.quick ? 2 : 3;
    const rawC: number[] = [];
    const storeC: number[] = [];
    for (let r = 0; r < cRounds; r++) {
      rawC.push(await rawIns.concurrent(Math.ceil(cn / cRounds), inFlight));
      storeC.push(await appends.concurrent(Math.ceil(cn / cRounds), inFlight));
    }
    figures.push({ name: 'pgstore.raw_insert_concurrent.per_s', value: round(median(rawC)), unit: `rows/s (${inFlight} in flight)` });
    figures.push({
      name: 'pgstore.append_concurrent.per_s',
      value: round(median(storeC)),
      unit: `appends/s (${inFlight} in flight)`,
      baseline: 'pgstore.raw_insert_concurrent.per_s',
      ratio: round(median(storeC) / median(rawC), 3),
    });

    // (c) the global log read back in pages against a raw keyset scan of the same table
    await admin.query(`VACUUM ANALYZE ${schema}.events`);
    const readRates: number[] = [];
    const scanRates: number[] = [];
    let events = 0;
    for (let r = 0; r < 3; r++) {
      const read = await readAllRate(store);
      events = read.events;
      readRates.push(read.perS);
      scanRates.push(await rawScanRate(admin, `${schema}.events`));
    }
    figures.push({ name: 'pgstore.raw_scan.events_per_s', value: round(median(scanRates)), unit: `events/s (${events} events, pages of 1000)` });
    figures.push({
      name: 'pgstore.read_all.events_per_s',
      value: round(median(readRates)),
      unit: `events/s (${events} events, pages of 1000)`,
      baseline: 'pgstore.raw_scan.events_per_s',
      ratio: round(median(readRates) / median(scanRates), 3),
    });
    ctx.log(`pgStore: appends ${round(median(seqRates))}/s vs raw ${round(rawSeq)}/s (${round(seqRatio, 2)}x); concurrent ${round(median(storeC))}/s vs ${round(median(rawC))}/s; read-all ${round(median(readRates))}/s vs scan ${round(median(scanRates))}/s`);
    return figures;
  } finally {
    await store.close();
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
    await admin.end();
  }
};

// The Postgres event store on the real Postgres: the port contract unchanged, then what only Postgres shows: a live
// subscriber under many concurrent writers and long transactions (no gap, no repeat, while a naive `seq > last` reader
// of the same log misses events), wake-up by NOTIFY, the LISTEN connection's loss, readers held back by a foreign
// transaction, connection loss during appends, migrations (concurrent, ahead of time, least-privilege runtime role).
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { openPgEventStore } from '../../src/adapters/eventstore/postgres/pgEventStore.ts';
import { STORE_VERSION } from '../../src/adapters/eventstore/postgres/schema.ts';
import {
  DuplicateEventIdError,
  comparePositions,
  type RecordedEvent,
  type Subscription,
  type SubscriptionItem,
} from '../../src/app/ports/eventStore.ts';
import { silentLogger } from '../../src/logger.ts';
import { describeEventStoreContract, ev } from '../support/eventStoreContract.ts';
import { openTestPgEventStore, uniqueSchema, type TestPgEventStore } from '../support/pgEventStore.ts';
import { DATABASE_URL, postgresAvailable } from '../support/services.ts';
import { scaled, waitFor, within } from '../support/deadlines.ts';

const hasPg = await postgresAvailable();

async function client(connectionString = DATABASE_URL): Promise<pg.Client> {
  const c = new pg.Client({ connectionString });
  await c.connect();
  return c;
}

/** The next item, or a failure after `timeoutMs`. */
async function next(it: AsyncIterator<SubscriptionItem>, timeoutMs = 10_000): Promise<SubscriptionItem> {
  const r = await within('a subscription item', it.next(), timeoutMs);
  if (r.done) throw new Error('subscription ended');
  return r.value;
}

/** Calls the store's append function directly, inside the caller's transaction (a slow appender that has not committed). */
function rawAppend(c: pg.Client, schema: string, stream: string, events = [ev('Slow')]) {
  return c.query(`SELECT * FROM ${schema}.append_events($1, -2, $2::uuid[], $3::text[], $4::jsonb, $5::jsonb)`, [
    stream,
    events.map((e) => e.id),
    events.map((e) => e.type),
    JSON.stringify(events.map((e) => e.data)),
    JSON.stringify(events.map((e) => e.metadata)),
  ]);
}

describe.skipIf(!hasPg)('postgres event store (real Postgres)', () => {
  describeEventStoreContract('postgres', async () => {
    const t = await openTestPgEventStore();
    return { store: t.store, cleanup: t.cleanup };
  });

  describe('postgres specifics', () => {
    let t: TestPgEventStore | undefined;
    const clients: pg.Client[] = [];
    afterEach(async () => {
      for (const c of clients.splice(0)) await c.end().catch(() => undefined);
      await t?.cleanup();
      t = undefined;
    });

    it('delivers every committed event once and in order to a live subscriber while many writers and long transactions race', async () => {
      t = await openTestPgEventStore({ pollIntervalMs: 200 });
      const { schema } = t;
      const ns = `gap-${randomUUID().slice(0, 8)}-`;
      const writers = await Promise.all(Array.from({ length: 3 }, () => t!.reopen({ poolSize: 4 })));
      const started = Date.now();

      // The subscriber under test, checking order and repeats as events arrive.
      const sub: Subscription = t.store.subscribeToAll({ fromPosition: 'start', filter: { streamPrefixes: [ns] } });
      const delivered: RecordedEvent[] = [];
      const ids = new Set<string>();
      let repeats = 0;
      let outOfOrder = 0;
      let lateCommits = 0; // delivered after an event with a higher sequence: what a `seq > last` reader can skip
      let maxSeq = -1n;
      const consuming = (async () => {
        for await (const item of sub) {
          if (item.kind !== 'event') continue;
          const e = item.event;
          if (ids.has(e.id)) repeats++;
          ids.add(e.id);
          const prev = delivered.at(-1);
          if (prev && comparePositions(prev.position, e.position) >= 0) outOfOrder++;
          if (e.position.prepare < maxSeq) lateCommits++;
          if (e.position.prepare > maxSeq) maxSeq = e.position.prepare;
          delivered.push(e);
        }
      })();

      // The control: a naive reader following `seq > last` with no visibility rule.
      const naive = await client();
      clients.push(naive);
      const naiveSeen = new Set<string>();
      let naiveStop = false;
      const naiveReading = (async () => {
        let last = 0n;
        while (!naiveStop) {
          const r = await naive.query(`SELECT event_id, seq FROM ${schema}.events WHERE stream_id ^@ $1 AND seq > $2 ORDER BY seq LIMIT 1000`, [ns, last.toString()]);
          for (const row of r.rows) {
            naiveSeen.add(row.event_id);
            last = BigInt(row.seq);
          }
          await new Promise((res) => setTimeout(res, 5));
        }
      })();

      // 1. A scripted late commit: a transaction takes a sequence number, another append commits after it, the naive
      //    reader passes that one, and only then the first commits.
      const slow = await client();
      clients.push(slow);
      await slow.query('BEGIN');
      const slowEvent = ev('Slow');
      await rawAppend(slow, schema, `${ns}slow-0`, [slowEvent]);
      const fast = ev('Fast');
      await writers[0]!.append(`${ns}fast-0`, [fast], 'no_stream');
      await waitFor('the naive reader to pass the later event', async () => naiveSeen.has(fast.id), 10_000);
      await slow.query('COMMIT');

      // 2. Load: 12 appenders (1-3 events each, over three stores), and 4 clients holding transactions open 20-300 ms
      //    after their append, a quarter of which roll back.
      let committedBySlow = 1;
      let rolledBack = 0;
      const rolledBackIds = new Set<string>();
      const appenders = Array.from({ length: 12 }, (_, w) =>
        (async () => {
          const store = writers[w % writers.length]!;
          for (let i = 0; i < 50; i++) {
            const n = 1 + ((w + i) % 3);
            await store.append(`${ns}w${w}-${i}`, Array.from({ length: n }, (_, k) => ev('Load', { w, i, k })), 'no_stream');
          }
        })(),
      );
      const holders = Array.from({ length: 4 }, (_, h) =>
        (async () => {
          const c = await client();
          clients.push(c);
          for (let i = 0; i < 12; i++) {
            await c.query('BEGIN');
            const events = [ev('Held', { h, i })];
            await rawAppend(c, schema, `${ns}h${h}-${i}`, events);
            await new Promise((res) => setTimeout(res, 20 + ((h * 37 + i * 53) % 280)));
            if ((h + i) % 4 === 0) {
              await c.query('ROLLBACK');
              rolledBack++;
              for (const e of events) rolledBackIds.add(e.id);
            } else {
              await c.query('COMMIT');
              committedBySlow++;
            }
          }
        })(),
      );
      await Promise.all([...appenders, ...holders]);
      const writeSeconds = (Date.now() - started) / 1000;

      // The truth: every committed event of this test, in the store's order.
      const truth = (
        await naive.query(`SELECT event_id FROM ${schema}.events WHERE stream_id ^@ $1 ORDER BY transaction_id, seq`, [ns])
      ).rows.map((r) => r.event_id as string);
      await waitFor('the subscriber to deliver every committed event', async () => delivered.length >= truth.length, 30_000).catch((err) => {
        const missing = truth.filter((id) => !ids.has(id)).length;
        throw new Error(`${(err as Error).message}: delivered ${delivered.length} of ${truth.length}, ${missing} missing`);
      });
      naiveStop = true;
      await naiveReading;
      await sub.close();
      await consuming;

      const naiveMissed = truth.filter((id) => !naiveSeen.has(id)).length;
      console.log(
        `concurrency gap test: ${truth.length} events committed (${committedBySlow} by long transactions, ${rolledBack} rolled back) ` +
          `in ${writeSeconds.toFixed(1)} s by 12 appenders + 4 long-transaction clients; subscriber: ${delivered.length} delivered, ` +
          `${repeats} repeated, ${outOfOrder} out of order, ${lateCommits} committed after a higher sequence; naive seq reader missed ${naiveMissed}`,
      );
      expect(delivered.map((e) => e.id)).toEqual(truth);
      expect(repeats).toBe(0);
      expect(outOfOrder).toBe(0);
      expect(delivered.some((e) => rolledBackIds.has(e.id))).toBe(false);
      expect(ids.has(slowEvent.id)).toBe(true);
      // The workload did what the test is about: commits out of sequence order, which a naive reader skips.
      expect(lateCommits).toBeGreaterThan(0);
      expect(naiveSeen.has(slowEvent.id)).toBe(false);
      expect(naiveMissed).toBeGreaterThan(0);
    }, scaled(120_000));

    it('wakes a live subscription by NOTIFY at commit, and again after its LISTEN connection is cut', async () => {
      // A poll interval of ten minutes: anything delivered within the test's deadlines came by notification.
      t = await openTestPgEventStore({ pollIntervalMs: 600_000, applicationName: `wearon-test-${randomUUID().slice(0, 8)}` });
      const ns = `wake-${randomUUID().slice(0, 8)}-`;
      const sub = t.store.subscribeToAll({ fromPosition: 'start', filter: { streamPrefixes: [ns] } });
      const it = sub[Symbol.asyncIterator]();
      expect(await next(it)).toEqual({ kind: 'caughtUp' });
      const other = await t.reopen();
      await other.append(`${ns}a`, [ev('A', { i: 1 })], 'no_stream');
      expect(await next(it)).toMatchObject({ kind: 'event', event: { data: { i: 1 } } });

      const pid = await waitFor('the LISTEN connection', async () => t!.store.listenerPid());
      const admin = await client();
      clients.push(admin);
      await admin.query('SELECT pg_terminate_backend($1)', [pid]);
      await waitFor('a new LISTEN connection', async () => {
        const p = t!.store.listenerPid();
        return p !== null && p !== pid;
      });
      await other.append(`${ns}a`, [ev('A', { i: 2 })], 0);
      expect(await next(it)).toMatchObject({ kind: 'event', event: { data: { i: 2 } } });
      await sub.close();
    });

    it('holds global readers behind a foreign open transaction: reads wait for it (bounded), subscriptions catch up once it ends; stream reads are not held', async () => {
      t = await openTestPgEventStore({ pollIntervalMs: 100, settleTimeoutMs: 300 });
      const ns = `hold-${randomUUID().slice(0, 8)}-`;
      const sub = t.store.subscribeToAll({ fromPosition: 'start', filter: { streamPrefixes: [ns] } });
      const it = sub[Symbol.asyncIterator]();
      expect(await next(it)).toEqual({ kind: 'caughtUp' });

      const blocker = await client(); // e.g. a long migration on the same database, holding an xid
      clients.push(blocker);
      await blocker.query('BEGIN');
      await blocker.query('SELECT pg_current_xact_id()');
      const r = await t.store.append(`${ns}a`, [ev('A')], 'no_stream');
      // Committed and readable in its stream (optimistic concurrency needs that), but not in the global log while the
      // older transaction runs: a global read gives up after settleTimeoutMs with the settled prefix.
      expect((await t.store.readStream(`${ns}a`)).map((e) => e.revision)).toEqual([0]);
      expect(await t.store.readAll({ filter: { streamPrefixes: [ns] } })).toEqual([]);
      const head = await t.store.headPosition();
      expect(head === null || comparePositions(head, r.position) < 0).toBe(true);

      // A read that starts while it is held waits for the settlement instead (read-your-writes).
      const patient = await t.reopen({ settleTimeoutMs: 30_000 });
      const reading = patient.readAll({ filter: { streamPrefixes: [ns] } });
      // No NOTIFY from this COMMIT: the subscription's re-read finds the event. The 200 ms only aim the COMMIT at the
      // read's wait; a COMMIT that comes first on a busy machine leaves the same outcome, so nothing here depends on it.
      setTimeout(() => void blocker.query('COMMIT'), 200);
      expect((await reading).map((e) => e.streamId)).toEqual([`${ns}a`]);
      expect(await next(it)).toMatchObject({ kind: 'event', event: { streamId: `${ns}a` } });
      expect(comparePositions((await t.store.headPosition())!, r.position)).toBeGreaterThanOrEqual(0);
      await sub.close();
    });

    it('retries an append whose connection was cut, writing it once', async () => {
      const app = `wearon-test-${randomUUID().slice(0, 8)}`;
      t = await openTestPgEventStore({ applicationName: app, backoffInitialMs: 20 });
      await t.store.append('generation-warm', [ev('W')], 'no_stream'); // the pool has a connection to cut
      const admin = await client();
      clients.push(admin);
      const cut = await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [app]);
      expect(cut.rowCount).toBeGreaterThan(0);
      const e = ev('A');
      const result = await t.store.append('generation-cut', [e], 'no_stream');
      expect(result.nextRevision).toBe(0);
      // And a caller's own retry after an answer it never saw is recognised.
      expect(await t.store.append('generation-cut', [e], 'no_stream')).toEqual(result);
      expect((await t.store.readStream('generation-cut')).map((x) => x.id)).toEqual([e.id]);
    });

    it('recognises retries of any and stream_exists appends by id and refuses an id used in another stream', async () => {
      t = await openTestPgEventStore();
      const s = `generation-${randomUUID().slice(0, 8)}`;
      const a = ev('A');
      const first = await t.store.append(s, [a], 'any');
      expect(await t.store.append(s, [a], 'any')).toEqual(first);
      const b = ev('B');
      const second = await t.store.append(s, [b], 'stream_exists');
      expect(await t.store.append(s, [b], 'stream_exists')).toEqual(second);
      await expect(t.store.append(`${s}-other`, [a], 'no_stream')).rejects.toBeInstanceOf(DuplicateEventIdError);
      await expect(t.store.append(`${s}-other`, [ev('C'), b], 'no_stream')).rejects.toBeInstanceOf(DuplicateEventIdError);
      expect(await t.store.readStream(`${s}-other`)).toEqual([]); // nothing of a refused append stays
      expect((await t.store.readStream(s)).map((e) => e.id)).toEqual([a.id, b.id]);
    });
  });

  describe('postgres event store migrations', () => {
    const schemas: string[] = [];
    const roles: string[] = [];
    afterEach(async () => {
      const admin = await client();
      try {
        for (const s of schemas.splice(0)) await admin.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
        for (const r of roles.splice(0)) await admin.query(`DROP ROLE IF EXISTS ${r}`);
      } finally {
        await admin.end();
      }
    });

    it('migrates once when several processes open a fresh schema at the same time, and refuses an unmigrated one when told not to migrate', async () => {
      const schema = uniqueSchema('mig');
      schemas.push(schema);
      const open = (migrate?: boolean) => openPgEventStore({ connectionString: DATABASE_URL, schema, logger: silentLogger(), ...(migrate === undefined ? {} : { migrate }) });
      await expect(open(false)).rejects.toThrow(/wearon migrate/);
      const stores = await Promise.all(Array.from({ length: 4 }, () => open()));
      await stores[0]!.append('generation-m', [ev('A')], 'no_stream');
      for (const s of stores) expect(await s.streamRevision('generation-m')).toBe(0);
      await Promise.all(stores.map((s) => s.close()));
      const admin = await client();
      try {
        expect((await admin.query(`SELECT version FROM ${schema}.store_version`)).rows).toEqual([{ version: STORE_VERSION }]);
      } finally {
        await admin.end();
      }
      const again = await open(false); // migrated ahead of time: opens without DDL
      await again.close();
    });

    it('runs with a runtime role that may only read, insert and call the append function on a schema migrated ahead of time', async () => {
      const schema = uniqueSchema('mig');
      const role = `wearon_rt_${schema}`;
      schemas.push(schema);
      roles.push(role);
      const owner = await openPgEventStore({ connectionString: DATABASE_URL, schema, logger: silentLogger() });
      await owner.close();
      const admin = await client();
      try {
        await admin.query(`CREATE ROLE ${role} LOGIN`);
        await admin.query(`GRANT USAGE ON SCHEMA ${schema} TO ${role}`);
        await admin.query(`GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA ${schema} TO ${role}`);
        await admin.query(`GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA ${schema} TO ${role}`);
      } finally {
        await admin.end();
      }
      const url = new URL(DATABASE_URL);
      url.username = role;
      url.password = '';
      const runtime = await openPgEventStore({ connectionString: url.toString(), schema, logger: silentLogger() });
      try {
        const r = await runtime.append('generation-rt', [ev('A'), ev('B')], 'no_stream');
        expect(r.nextRevision).toBe(1);
        expect((await runtime.readAll({ maxCount: 10 })).length).toBe(2);
      } finally {
        await runtime.close();
        const c = await client();
        await c.query(`DROP OWNED BY ${role}`).finally(() => c.end());
      }
    });
  });
});


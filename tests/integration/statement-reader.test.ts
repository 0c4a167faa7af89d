// StatementReader (src/app/statements.ts) against the reference fold (credits.ts `statement`, what the CLI prints), on
// the embedded SQLite ledger: every page, in both orders, with any cursor, limit, date range and movement types, from a
// cold or a warm reader, equals the matching slice of the full statement; the CSV export is byte-identical; and pages
// read O(page) events, not the stream (counted at the store).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSqliteEventStore, type SqliteEventStore } from '../../src/adapters/eventstore/sqlite/sqliteEventStore.ts';
import { AggregateRepository } from '../../src/app/aggregates.ts';
import { statement, statementCsv, type StatementLine } from '../../src/app/credits.ts';
import type { EventStore, NewEvent } from '../../src/app/ports/eventStore.ts';
import { BLOCK, StatementReader, type StatementQuery } from '../../src/app/statements.ts';
import { ACCOUNT_EVENT_TYPES } from '../../src/domain/decode.ts';
import { accountStream } from '../../src/domain/streams.ts';

const ACCOUNT = 'store:reader-test';
const N = BLOCK * 7 + 37;
const T0 = Date.parse('2026-03-01T00:00:00Z');

/** A deterministic account history: grants, holds, captures, refunds, revocations; times mostly rising, some skew. */
function history(n: number, seed: number, firstRevision = 0): NewEvent[] {
  let x = seed;
  const rnd = () => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const out: NewEvent[] = [];
  for (let i = 0; i < n; i++) {
    const rev = firstRevision + i;
    const at = T0 + rev * 60_000 + (rnd() < 0.1 ? -Math.floor(rnd() * 5 * 60_000) : 0); // 10% come from a skewed clock
    const r = rnd();
    const [type, data] =
      rev % 97 === 0 || r < 0.05
        ? ['CreditsGranted', { amount: 50, reason: 'purchase', reference: `order-${rev}` }]
        : r < 0.08
          ? ['CreditsRevoked', { amount: 1, reason: 'correction, "quoted"', reference: `=fix-${rev}` }]
          : r < 0.55
            ? ['CreditDeducted', { generationId: `gen-${rev}`, amount: 1, requestId: `req-${rev}` }]
            : r < 0.9
              ? ['CreditCaptured', { generationId: `gen-${rev - 1}`, amount: 1 }]
              : ['CreditRefunded', { generationId: `gen-${rev - 1}`, amount: 1, reason: 'upstream_error' }];
    out.push({ id: randomUUID(), type, data, metadata: { requestId: `req-${rev}`, causationId: 'c', correlationId: 'c', workerId: 'w', occurredAt: new Date(at).toISOString() } });
  }
  return out;
}

async function write(store: EventStore, events: NewEvent[], after: number) {
  let rev = after;
  for (let i = 0; i < events.length; i += 500) {
    const r = await store.append(accountStream(ACCOUNT), events.slice(i, i + 500), rev < 0 ? 'no_stream' : rev);
    rev = r.nextRevision;
  }
  return rev;
}

/** What a page must be: the reference lines, filtered, ordered, from the cursor on, `limit` of them. */
function expected(all: StatementLine[], q: StatementQuery, head: number) {
  const types = q.types?.length ? new Set<string>(q.types) : null;
  const match = all.filter((l) => {
    const at = Date.parse(l.occurred_at);
    return (!types || types.has(l.type)) && at >= (q.since ?? -Infinity) && at < (q.until ?? Infinity);
  });
  const desc = q.order === 'desc';
  const start = q.from === undefined ? (desc ? head : 0) : desc ? Math.min(q.from, head) : q.from;
  const ordered = desc ? match.filter((l) => l.revision <= start).reverse() : match.filter((l) => l.revision >= start);
  const limit = q.limit ?? 1000;
  return { lines: ordered.slice(0, limit), next_revision: ordered[limit]?.revision ?? null };
}

/** Counts the events the store hands out (instrumentation of the dependency; the reader runs unchanged). */
function counting(store: EventStore) {
  const c = { events: 0 };
  const proxy = new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === 'readStream') {
        return async (...args: Parameters<EventStore['readStream']>) => {
          const r = await target.readStream(...args);
          c.events += r.length;
          return r;
        };
      }
      const v = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  return { store: proxy as EventStore, c };
}

describe('StatementReader', () => {
  let dir: string;
  let store: SqliteEventStore;
  let reference: StatementLine[];
  let head: number;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'wearon-statements-'));
    store = openSqliteEventStore({ path: path.join(dir, 'ledger.sqlite') });
    head = await write(store, history(N, 7), -1);
    reference = (await statement(store, ACCOUNT, { limit: Number.MAX_SAFE_INTEGER })).lines;
    expect(reference).toHaveLength(N);
  });

  afterAll(async () => {
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const query = fc.record(
    {
      order: fc.constantFrom<'asc' | 'desc'>('asc', 'desc'),
      from: fc.integer({ min: -3, max: N + 3 }),
      limit: fc.integer({ min: 1, max: 700 }),
      since: fc.integer({ min: -10, max: N + 10 }).map((m) => T0 + m * 60_000),
      until: fc.integer({ min: -10, max: N + 10 }).map((m) => T0 + m * 60_000),
      types: fc.subarray([...ACCOUNT_EVENT_TYPES], { minLength: 1 }),
    },
    { requiredKeys: ['order', 'limit'] },
  );

  it('pages equal the slices of the full statement, cold or warm, in any order, with any filter', async () => {
    const warm = new StatementReader(new AggregateRepository(store));
    await fc.assert(
      fc.asyncProperty(query, fc.boolean(), async (q, cold) => {
        const reader = cold ? new StatementReader(new AggregateRepository(store)) : warm;
        const page = await reader.page(ACCOUNT, q);
        const want = expected(reference, q, head);
        expect(page.lines).toEqual(want.lines);
        expect(page.next_revision).toBe(want.next_revision);
        expect(page.head_revision).toBe(head);
      }),
      { numRuns: 150 },
    );
  });

  it('walks a whole statement by next_revision in both orders', async () => {
    for (const order of ['asc', 'desc'] as const) {
      const reader = new StatementReader(new AggregateRepository(store));
      const seen: StatementLine[] = [];
      let from: number | undefined;
      do {
        const p = await reader.page(ACCOUNT, { order, limit: 97, ...(from === undefined ? {} : { from }) });
        seen.push(...p.lines);
        from = p.next_revision ?? undefined;
      } while (from !== undefined);
      expect(seen).toEqual(order === 'asc' ? reference : [...reference].reverse());
    }
  });

  it('exports CSV byte for byte as the CLI prints it, and filtered exports are the matching lines', async () => {
    const reader = new StatementReader(new AggregateRepository(store));
    const csv = async (filter = {}) => {
      let out = '';
      let header = true;
      for await (const page of reader.lines(ACCOUNT, filter)) {
        const t = statementCsv(page);
        out += header ? t : t.slice(t.indexOf('\n') + 1);
        header = false;
      }
      return out;
    };
    expect(await csv()).toBe(statementCsv(reference));
    const filter = { types: ['CreditsRevoked' as const] };
    expect(await csv(filter)).toBe(statementCsv(reference.filter((l) => l.type === 'CreditsRevoked')));
    expect(await csv()).toContain(`"correction, ""quoted"""`);
  });

  it('reads O(page) events per page: first pages from either end, and paging on after a jump', async () => {
    const { store: counted, c } = counting(store);
    const repo = new AggregateRepository(counted);
    const reader = new StatementReader(repo);
    await reader.page(ACCOUNT, { limit: 1 }); // warms the repository's folded state (snapshot + tail)
    for (const q of [{ order: 'desc' as const, limit: 50 }, { order: 'asc' as const, limit: 50 }]) {
      const fresh = new StatementReader(repo);
      c.events = 0;
      await fresh.page(ACCOUNT, q);
      expect(c.events, JSON.stringify(q)).toBeLessThanOrEqual(2 * BLOCK);
    }
    // A jump into the middle reads up to the nearer end once; the pages after it read a block or two each.
    const jumper = new StatementReader(repo);
    c.events = 0;
    let p = await jumper.page(ACCOUNT, { order: 'asc', from: 3 * BLOCK + 5, limit: 50 });
    expect(c.events).toBeLessThanOrEqual(4 * BLOCK);
    for (let i = 0; i < 10; i++) {
      c.events = 0;
      p = await jumper.page(ACCOUNT, { order: 'asc', from: p.next_revision!, limit: 50 });
      expect(c.events).toBeLessThanOrEqual(2 * BLOCK);
    }
  });

  it('stays right while the stream grows: complete blocks stay cached, the head block is re-read', async () => {
    const dir2 = mkdtempSync(path.join(tmpdir(), 'wearon-statements-grow-'));
    const s2 = openSqliteEventStore({ path: path.join(dir2, 'ledger.sqlite') });
    try {
      const reader = new StatementReader(new AggregateRepository(s2));
      let rev = await write(s2, history(BLOCK + 10, 3), -1);
      for (const extra of [1, BLOCK - 11, BLOCK + 3]) {
        await reader.page(ACCOUNT, { order: 'desc', limit: 20 });
        rev = await write(s2, history(extra, extra, rev + 1), rev);
        const all = (await statement(s2, ACCOUNT, { limit: Number.MAX_SAFE_INTEGER })).lines;
        for (const q of [{ order: 'desc' as const, limit: 30 }, { order: 'asc' as const, from: BLOCK - 5, limit: 40 }, { types: ['CreditsGranted' as const] }]) {
          const page = await reader.page(ACCOUNT, q);
          expect(page.lines).toEqual(expected(all, q, rev).lines);
        }
      }
    } finally {
      await s2.close();
      rmSync(dir2, { recursive: true, force: true });
    }
  });

  it('gives the balance over time: every event for a short stream, grouped blocks with their range for a long one', async () => {
    const reader = new StatementReader(new AggregateRepository(store));
    const long = await reader.balanceSeries(ACCOUNT, 3);
    expect(long.exact).toBe(false);
    expect(long.points.length).toBeLessThanOrEqual(3);
    let prevRevision = -1;
    for (const p of long.points) {
      expect(p.balance).toBe(reference[p.revision]!.balance);
      const span = reference.slice(prevRevision + 1, p.revision + 1).map((l) => l.balance);
      expect(p.low).toBe(Math.min(...span));
      expect(p.high).toBe(Math.max(...span));
      prevRevision = p.revision;
    }
    expect(prevRevision).toBe(head);
    const exact = await reader.balanceSeries(ACCOUNT, N + 1);
    expect(exact.exact).toBe(true);
    expect(exact.points.map((p) => p.balance)).toEqual(reference.map((l) => l.balance));
    expect((await reader.balanceSeries('user:nobody')).points).toEqual([]);
  });
});

// The ledger's figures (issue 2, item 7): durable appends/s next to a raw durable SQLite baseline measured in the same
// run and directory, group commit under concurrency, full generation cycles/s, and the time to load and decide on an
// account with 100 vs 100,000 events. Targets: appends >= 0.8x the baseline; 100k events <= 1.5x the time of 100.
import Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { openSqliteEventStore, type SqliteEventStore } from '../src/adapters/eventstore/sqlite/sqliteEventStore.ts';
import { ACCOUNT, AggregateRepository } from '../src/app/aggregates.ts';
import { grantCredits } from '../src/app/credits.ts';
import type { EventMeta, NewEvent } from '../src/app/ports/eventStore.ts';
import { GenerationSaga } from '../src/app/saga.ts';
import { decideAccount } from '../src/domain/account.ts';
import { accountStream } from '../src/domain/streams.ts';
import { silentLogger } from '../src/logger.ts';
import { MemoryResultStore, ScriptedGenerator, StaticInputImages } from '../tests/support/pipelineDoubles.ts';
import type { BenchSuite, Figure } from './types.ts';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;

const meta = (at: number): EventMeta => ({
  requestId: 'bench',
  causationId: 'bench',
  correlationId: 'bench',
  workerId: 'bench',
  occurredAt: new Date(at).toISOString(),
});

/** A realistic account event payload, the size the ledger writes. */
const deducted = (i: number, at: number): NewEvent => ({
  id: randomUUID(),
  type: 'CreditDeducted',
  data: { generationId: `gen-${i}`, amount: 1, requestId: `req-${i}` },
  metadata: meta(at),
});

/** Raw durable SQLite: WAL, synchronous=FULL, one one-row INSERT per transaction (one fsync each). */
function rawBaseline(file: string) {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec('CREATE TABLE events (global_position INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, stream_id TEXT NOT NULL, revision INTEGER NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL, metadata TEXT NOT NULL, UNIQUE (stream_id, revision))');
  const insert = db.prepare('INSERT INTO events (event_id, stream_id, revision, type, data, metadata) VALUES (?, ?, ?, ?, ?, ?)');
  let revision = 0;
  return {
    run(n: number): number {
      const started = performance.now();
      for (let i = 0; i < n; i++) {
        const e = deducted(revision, Date.now());
        insert.run(e.id, 'credit-account-user-raw', revision++, e.type, JSON.stringify(e.data), JSON.stringify(e.metadata));
      }
      return n / ((performance.now() - started) / 1000);
    },
    close: () => db.close(),
  };
}

/** Sequential single-event appends to one stream, each with the expected revision. */
function sequentialAppends(store: SqliteEventStore) {
  const stream = 'credit-account-user-seq';
  let revision = -1;
  return async (n: number): Promise<number> => {
    const started = performance.now();
    for (let i = 0; i < n; i++) {
      const r = await store.append(stream, [deducted(revision + 1, Date.now())], revision < 0 ? 'no_stream' : revision);
      revision = r.nextRevision;
    }
    return n / ((performance.now() - started) / 1000);
  };
}

/** `inFlight` appends outstanding at any time, each on its own stream with its expected revision. */
async function concurrentAppends(store: SqliteEventStore, n: number, inFlight: number): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async (_, lane) => {
      const stream = `credit-account-user-lane${lane}`;
      for (let rev = 0; next < n; rev++) {
        next += 1;
        await store.append(stream, [deducted(next, Date.now())], rev === 0 ? 'no_stream' : rev - 1);
      }
    }),
  );
  return n / ((performance.now() - started) / 1000);
}

function sagaFor(store: SqliteEventStore, workerId: string) {
  return new GenerationSaga({
    repo: new AggregateRepository(store),
    images: new StaticInputImages(),
    generator: new ScriptedGenerator({ advancePastLease: () => {}, requestShutdown: () => {} }),
    results: new MemoryResultStore(),
    workerId,
    clock: Date.now,
    logger: silentLogger(),
    options: { leaseMs: 60_000, maxAttempts: 3, max429Retries: 2, signedUrlTtlSeconds: 300 },
  });
}

/** request -> charge -> claim -> run (instant generator, in-memory results) -> complete -> capture. */
async function cycles(store: SqliteEventStore, n: number, lanes: number, tag: string): Promise<number> {
  const saga = sagaFor(store, `bench-${tag}`);
  const repo = new AggregateRepository(store);
  for (let lane = 0; lane < lanes; lane++) {
    await grantCredits(repo, `user:${tag}${lane}`, { amount: n + 10, reason: 'purchase', reference: 'bench' }, { requestId: 'bench', workerId: 'bench' });
  }
  let next = 0;
  let settled = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: lanes }, async (_, lane) => {
      while (next < n) {
        const id = `${tag}-${next++}`;
        await saga.request({
          sessionId: id, taskId: id, channel: 'b2c', account: `user:${tag}${lane}`, imageUrls: ['https://img.test/a.jpg', 'https://img.test/b.jpg'],
          prompt: id, requestId: id, payloadVersion: 1, requestedAt: new Date().toISOString(), cost: 1,
        });
        const outcome = await saga.drive(id);
        if (outcome.kind === 'settled' && outcome.status === 'completed') settled += 1;
      }
    }),
  );
  const perS = n / ((performance.now() - started) / 1000);
  if (settled !== n) throw new Error(`only ${settled} of ${n} cycles completed`);
  return perS;
}

/**
 * An account stream of `n` events as the saga writes them: a grant now and then, deductions each followed by a capture
 * (or a refund one time in ten), one minute apart. Written in batches of 1000 straight through the store.
 */
export async function writeAccount(store: SqliteEventStore, account: string, n: number, start: number): Promise<number> {
  const stream = accountStream(account);
  let revision = -1;
  let at = start;
  let g = 0;
  while (revision + 1 < n) {
    const batch: NewEvent[] = [];
    while (batch.length < 1000 && revision + 1 + batch.length < n) {
      const i = revision + 1 + batch.length;
      at += 60_000;
      // One pack of 1000 credits per ~1000 generations (2000 events): the economics of a busy store account.
      if (i % 2000 === 0) {
        batch.push({ id: randomUUID(), type: 'CreditsGranted', data: { amount: 1000, reason: 'purchase', reference: `order-${i}` }, metadata: meta(at) });
      } else if (i % 2 === 1) {
        batch.push(deducted(++g, at));
      } else {
        const settle = g % 10 === 0 ? 'CreditRefunded' : 'CreditCaptured';
        batch.push({ id: randomUUID(), type: settle, data: { generationId: `gen-${g}`, amount: 1, ...(settle === 'CreditRefunded' ? { reason: 'generation_failed' } : {}) }, metadata: meta(at) });
      }
    }
    const r = await store.append(stream, batch, revision < 0 ? 'no_stream' : revision);
    revision = r.nextRevision;
  }
  return at;
}

/** Median over `rounds` of the mean time of `iterations` load+decide calls; `fresh`: a new repository each call. */
async function loadAndDecide(store: SqliteEventStore, account: string, now: number, fresh: boolean, rounds: number, iterations: number) {
  const stream = accountStream(account);
  const warm = new AggregateRepository(store, { cacheSize: 10 });
  await warm.load(ACCOUNT, stream);
  const times: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const started = performance.now();
    for (let i = 0; i < iterations; i++) {
      const repo = fresh ? new AggregateRepository(store, { cacheSize: 10 }) : warm;
      const { state } = await repo.load(ACCOUNT, stream);
      const d = decideAccount(state, { type: 'Deduct', generationId: `new-${i}`, amount: 1, requestId: 'r', acceptedAt: new Date(now).toISOString(), now });
      if (!d.ok) throw new Error(`decide refused: ${d.code}`);
    }
    times.push((performance.now() - started) / iterations);
  }
  return median(times);
}

export const ledgerBench: BenchSuite = async (ctx) => {
  const figures: Figure[] = [];
  const n = ctx.quick ? 300 : 2000;

  // (a) durable appends. The machine's fsync speed drifts (other load), so the baseline and the ledger alternate in
  // rounds over the same directory and the medians are compared.
  const rounds = ctx.quick ? 3 : 7;
  const perRound = Math.ceil(n / rounds);
  ctx.log(`ledger: ${rounds} rounds of ${perRound} raw one-row transactions, then ${perRound} ledger appends (WAL, synchronous=FULL) in ${ctx.tmpDir}`);
  const raw = rawBaseline(path.join(ctx.tmpDir, 'raw.db'));
  // The store as the service opens it (auto: inline while commits are fast), and the writer thread for comparison.
  const store = openSqliteEventStore({ path: path.join(ctx.tmpDir, 'ledger.db') });
  const threadStore = openSqliteEventStore({ path: path.join(ctx.tmpDir, 'ledger-thread.db'), writer: 'thread' });
  try {
    const seqAppend = sequentialAppends(store);
    const threadAppend = sequentialAppends(threadStore);
    raw.run(20);
    await seqAppend(20); // warm-up (statements, writer start)
    await threadAppend(20);
    const rawRates: number[] = [];
    const seqRates: number[] = [];
    const threadRates: number[] = [];
    const ratios: number[] = [];
    const threadRatios: number[] = [];
    for (let r = 0; r < rounds; r++) {
      rawRates.push(raw.run(perRound));
      seqRates.push(await seqAppend(perRound));
      threadRates.push(await threadAppend(perRound));
      ratios.push(seqRates[r]! / rawRates[r]!);
      threadRatios.push(threadRates[r]! / rawRates[r]!);
    }
    raw.close();
    await threadStore.close();
    const rawMedian = median(rawRates);
    const seq = median(seqRates);
    const ratio = median(ratios);
    const fmt = (xs: number[]) => xs.map((x) => Math.round(x)).join(' ');
    ctx.log(`ledger: per round raw ${fmt(rawRates)}; ledger (${store.writer} writer) ${fmt(seqRates)}; writer thread ${fmt(threadRates)} appends/s`);
    ctx.log(`ledger: ${n * 4} appends, 64 in flight over distinct streams`);
    const conc = await concurrentAppends(store, n * 4, 64);
    figures.push(
      { name: 'ledger.append.raw_sqlite.per_s', value: round(rawMedian), unit: 'appends/s' },
      { name: 'ledger.append.sequential.per_s', value: round(seq), unit: 'appends/s', baseline: 'ledger.append.raw_sqlite.per_s', ratio: round(ratio, 2), target: '>= 0.8x baseline', met: ratio >= 0.8 },
      {
        name: 'ledger.append.sequential_writer_thread.per_s', value: round(median(threadRates)), unit: 'appends/s', baseline: 'ledger.append.raw_sqlite.per_s',
        ratio: round(median(threadRatios), 2),
      },
      { name: 'ledger.append.concurrent64.per_s', value: round(conc), unit: 'appends/s', baseline: 'ledger.append.raw_sqlite.per_s', ratio: round(conc / rawMedian, 2) },
    );

    // (b) generation cycles
    const c = ctx.quick ? 100 : 500;
    ctx.log(`ledger: ${c} generation cycles one at a time, then ${c * 2} with 16 in flight`);
    const cycSeq = await cycles(store, c, 1, 'seq');
    const cycConc = await cycles(store, c * 2, 16, 'conc');
    figures.push(
      { name: 'ledger.cycle.sequential.per_s', value: round(cycSeq), unit: 'cycles/s' },
      { name: 'ledger.cycle.concurrent16.per_s', value: round(cycConc), unit: 'cycles/s', baseline: 'ledger.cycle.sequential.per_s', ratio: round(cycConc / cycSeq, 2) },
    );

    // (c) load + decide, 100 vs 100,000 events
    const big = ctx.quick ? 20_000 : 100_000;
    const start = Date.parse('2025-01-01T00:00:00Z');
    ctx.log(`ledger: writing account streams of 100 and ${big} events`);
    const endSmall = await writeAccount(store, 'user:small', 100, start);
    const t0 = performance.now();
    const endBig = await writeAccount(store, 'user:big', big, start);
    ctx.log(`ledger: wrote ${big} events in ${Math.round(performance.now() - t0)} ms; first full fold (writes the snapshot)`);
    const t1 = performance.now();
    await new AggregateRepository(store).load(ACCOUNT, accountStream('user:big'));
    const firstFold = performance.now() - t1;
    await new AggregateRepository(store).load(ACCOUNT, accountStream('user:small'));
    const label = big === 100_000 ? '100k' : `${big / 1000}k`;
    for (const account of ['user:small', 'user:big']) {
      // The writer thread stores snapshots asynchronously: measure "cold" only once it is there.
      let snap = store.readSnapshot(accountStream(account));
      for (let i = 0; !snap && i < 100; i++) {
        await new Promise((r) => setTimeout(r, 20));
        snap = store.readSnapshot(accountStream(account));
      }
      ctx.log(`ledger: ${account} snapshot at revision ${snap?.revision ?? 'none'}, ${snap ? JSON.stringify(snap.state).length : 0} bytes of state`);
    }
    for (const fresh of [true, false]) {
      const kind = fresh ? 'cold' : 'warm';
      ctx.log(`ledger: load + decide (${kind}: ${fresh ? 'new repository, snapshot' : 'cached state'})`);
      const small = await loadAndDecide(store, 'user:small', endSmall + 1000, fresh, 7, fresh ? 200 : 1000);
      const large = await loadAndDecide(store, 'user:big', endBig + 1000, fresh, 7, fresh ? 200 : 1000);
      figures.push(
        { name: `ledger.account.${kind}.100_events.ms`, value: round(small, 4), unit: 'ms' },
        {
          name: `ledger.account.${kind}.${label}_events.ms`, value: round(large, 4), unit: 'ms', baseline: `ledger.account.${kind}.100_events.ms`,
          ratio: round(small / large, 2), target: '<= 1.5x the 100-event time', met: large <= 1.5 * small,
        },
      );
    }
    figures.push({ name: `ledger.account.first_full_fold.${label}_events.ms`, value: round(firstFold), unit: 'ms' });
  } finally {
    await store.close();
  }
  return figures;
};

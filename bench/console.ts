// The console's figures (issue 15): time to the first statement page of an account with 100,000 events (p95), cold
// (a fresh repository and reader, as after a restart: the account's snapshot, then one page) and warm (paging on),
// next to today's re-fold from revision 0 (credits.ts `statement`, measured in the same run) and a 100-event account;
// and the console's first load in bytes, raw and compressed (every file the page loads).
import path from 'node:path';
import { openSqliteEventStore } from '../src/adapters/eventstore/sqlite/sqliteEventStore.ts';
import { ACCOUNT, AggregateRepository } from '../src/app/aggregates.ts';
import { statement } from '../src/app/credits.ts';
import { StatementReader, type StatementQuery } from '../src/app/statements.ts';
import { accountStream } from '../src/domain/streams.ts';
import { loadConsoleAssets } from '../src/http/routes/console.ts';
import { writeAccount } from './ledger.ts';
import type { BenchSuite, Figure } from './types.ts';

const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;
const p95 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil(xs.length * 0.95) - 1)]!;

async function timed(n: number, fn: (i: number) => Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn(i);
    out.push(performance.now() - t);
  }
  return out;
}

export const consoleBench: BenchSuite = async (ctx) => {
  const figures: Figure[] = [];

  // (a) first load: every file of the console (index.html links them all), as served
  const assets = [...loadConsoleAssets().values()];
  const sum = (k: 'raw' | 'gzip' | 'br') => assets.reduce((a, x) => a + x[k].length, 0);
  const gzip = sum('gzip');
  figures.push(
    { name: 'console.load.files', value: assets.length, unit: 'files' },
    { name: 'console.load.raw_bytes', value: sum('raw'), unit: 'bytes' },
    { name: 'console.load.gzip_bytes', value: gzip, unit: 'bytes', target: '< 200 KB compressed', met: gzip < 200 * 1024 },
    { name: 'console.load.brotli_bytes', value: sum('br'), unit: 'bytes' },
  );
  ctx.log(`console: ${assets.length} files, ${sum('raw')} bytes raw, ${gzip} gzip, ${sum('br')} brotli`);

  // (b) statement pages
  const big = ctx.quick ? 20_000 : 100_000;
  const label = big === 100_000 ? '100k' : `${big / 1000}k`;
  const samples = ctx.quick ? 15 : 40;
  const store = openSqliteEventStore({ path: path.join(ctx.tmpDir, 'ledger.sqlite') });
  try {
    const start = Date.parse('2025-01-01T00:00:00Z');
    ctx.log(`console: writing accounts of 100 and ${big} events`);
    await writeAccount(store, 'store:small', 100, start);
    await writeAccount(store, 'store:big', big, start);
    for (const account of ['store:small', 'store:big']) {
      await new AggregateRepository(store).load(ACCOUNT, accountStream(account)); // the first full fold writes the snapshot
      for (let i = 0; !store.readSnapshot(accountStream(account)) && i < 100; i++) await new Promise((r) => setTimeout(r, 20));
    }
    const page = { order: 'desc' as const, limit: 50 };
    const cold = async (account: string, q: StatementQuery = page) => {
      const once = () => new StatementReader(new AggregateRepository(store)).page(account, q);
      await timed(5, once); // warm-up: compiled code paths, SQLite page cache
      return timed(samples, once);
    };

    ctx.log(`console: ${samples} cold first pages (newest first, 50 lines) of each account`);
    const small = p95(await cold('store:small'));
    const first = p95(await cold('store:big'));
    const firstOldest = p95(await cold('store:big', { order: 'asc', limit: 50 }));

    ctx.log('console: warm paging (a reader that served the first page pages on, newest first)');
    const warm = new StatementReader(new AggregateRepository(store));
    let next: number | null = (await warm.page('store:big', page)).next_revision;
    const paging = p95(await timed(samples, async () => {
      const p = await warm.page('store:big', { ...page, ...(next === null ? {} : { from: next }) });
      next = p.next_revision;
    }));
    ctx.log('console: a cold jump to the middle (reads up to the nearer end once), then a rare-type filter over the whole stream');
    const jumpStart = performance.now();
    const jumper = new StatementReader(new AggregateRepository(store));
    await jumper.page('store:big', { ...page, from: Math.floor(big / 2) });
    const jump = performance.now() - jumpStart;
    const rareCold = performance.now();
    await jumper.page('store:big', { types: ['CreditsGranted'], limit: 50 });
    const filteredCold = performance.now() - rareCold;
    const filteredWarm = p95(await timed(samples, () => jumper.page('store:big', { types: ['CreditsGranted'], limit: 50, order: 'desc' })));

    ctx.log(`console: baseline, ${Math.min(samples, 10)} re-folds from revision 0 for a page in the middle (credits.ts statement)`);
    const refold = p95(await timed(Math.min(samples, 10), () => statement(store, 'store:big', { fromRevision: Math.floor(big / 2), limit: 50 })));

    figures.push(
      { name: 'console.statement.first_page.100_events.p95_ms', value: round(small), unit: 'ms' },
      {
        name: `console.statement.first_page.${label}_events.p95_ms`, value: round(first), unit: 'ms', baseline: `console.statement.refold_page.${label}_events.p95_ms`,
        ratio: round(refold / first, 1), target: `<= 2x the 100-event page`, met: first <= 2 * Math.max(small, 0.5),
      },
      { name: `console.statement.first_page_oldest_first.${label}_events.p95_ms`, value: round(firstOldest), unit: 'ms' },
      { name: `console.statement.next_page_warm.${label}_events.p95_ms`, value: round(paging), unit: 'ms' },
      { name: `console.statement.jump_to_middle_cold.${label}_events.ms`, value: round(jump), unit: 'ms' },
      { name: `console.statement.rare_type_filter_cold.${label}_events.ms`, value: round(filteredCold), unit: 'ms' },
      { name: `console.statement.rare_type_filter_warm.${label}_events.p95_ms`, value: round(filteredWarm), unit: 'ms' },
      { name: `console.statement.refold_page.${label}_events.p95_ms`, value: round(refold), unit: 'ms' },
    );
  } finally {
    await store.close();
  }
  return figures;
};

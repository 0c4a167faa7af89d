import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { openSqliteEventStore } from '../../src/adapters/eventstore/sqlite/sqliteEventStore.ts';
import { describeEventStoreContract, ev } from '../support/eventStoreContract.ts';
import { waitFor } from '../support/deadlines.ts';

describeEventStoreContract('sqlite', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'wearon-es-'));
  const store = openSqliteEventStore({ path: path.join(dir, 'ledger.sqlite'), pollIntervalMs: 20 });
  return {
    store,
    cleanup: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

// The same contract with every writer placement: inline, the writer thread, and auto forced to hand over to the
// thread after its first commit (slowCommitMs 0), so a store's life spans both.
for (const writer of ['inline', 'thread'] as const) {
  describeEventStoreContract(`sqlite (${writer} writer)`, async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'wearon-es-'));
    const store = openSqliteEventStore({ path: path.join(dir, 'ledger.sqlite'), pollIntervalMs: 20, writer });
    return { store, cleanup: async () => (await store.close(), rmSync(dir, { recursive: true, force: true })) };
  });
}
describeEventStoreContract('sqlite (auto writer handing over to the thread)', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'wearon-es-'));
  const store = openSqliteEventStore({ path: path.join(dir, 'ledger.sqlite'), pollIntervalMs: 20, writer: 'auto', slowCommitMs: 0, warmupCommits: 0 });
  return { store, cleanup: async () => (await store.close(), rmSync(dir, { recursive: true, force: true })) };
});

describe('sqlite event store specifics', () => {
  it('auto writes inline while commits are fast and hands over to the thread once they are slow, losing nothing', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'wearon-es-'));
    const fast = openSqliteEventStore({ path: path.join(dir, 'fast.sqlite'), slowCommitMs: 10_000 });
    await fast.append('generation-a', [ev('A')], 'no_stream');
    expect(fast.writer).toBe('inline');
    await fast.close();
    const slow = openSqliteEventStore({ path: path.join(dir, 'slow.sqlite'), slowCommitMs: 0 });
    expect(slow.writer).toBe('inline');
    // The first 32 commits are the file's warm-up and never count; the next one is "slow" (above 0 ms).
    for (let i = 0; i < 33; i++) await slow.append(`generation-w${i}`, [ev('W')], 'no_stream');
    expect(slow.writer).toBe('thread');
    await Promise.all(Array.from({ length: 10 }, (_, i) => slow.append(`generation-${i}-b`, [ev('B')], 'no_stream')));
    await slow.append('generation-w0', [ev('C')], 0);
    expect((await slow.readAll({ maxCount: 100 })).map((e) => Number(e.position.commit))).toEqual(Array.from({ length: 44 }, (_, i) => i));
    await slow.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps every acknowledged append across a reopen, with a gap-free global position', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'wearon-es-'));
    const file = path.join(dir, 'ledger.sqlite');
    const a = openSqliteEventStore({ path: file });
    await Promise.all(Array.from({ length: 20 }, (_, i) => a.append(`generation-${i}`, [ev('A'), ev('B')], 'no_stream')));
    await a.close();
    const b = openSqliteEventStore({ path: file });
    const all = await b.readAll({ maxCount: 1000 });
    expect(all.map((e) => Number(e.position.commit))).toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(b.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(b.db.pragma('synchronous', { simple: true })).toBe(2); // FULL
    await b.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('fails only the conflicting append of a group commit', async () => {
    const store = openSqliteEventStore({ path: ':memory:' });
    const results = await Promise.allSettled([
      store.append('generation-x', [ev('A')], 'no_stream'),
      store.append('generation-x', [ev('B')], 'no_stream'),
      store.append('generation-y', [ev('C')], 'no_stream'),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((await store.readAll()).map((e) => e.type)).toEqual(['A', 'C']);
    await store.close();
  });

  it("wakes for another process's commit, which that process makes visible only after syncing its log", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'wearon-es-'));
    const file = path.join(dir, 'ledger.sqlite');
    const store = openSqliteEventStore({ path: file });
    await store.headPosition(); // the schema exists
    let wakes = 0;
    const off = store.onAppended(() => wakes++);
    // Another process, as the store's writer: WAL, synchronous=FULL. One commit per line it reads; it stays open, so
    // nothing else writes the log after a commit (closing the last other connection would).
    const writer = spawn(
      process.execPath,
      [
        '-e',
        `const db = new (require('better-sqlite3'))(process.argv[1]);
         db.pragma('journal_mode = WAL'); db.pragma('synchronous = FULL');
         const insert = db.prepare('INSERT INTO events (global_position, event_id, stream_id, revision, type, data, metadata, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
         require('node:readline').createInterface({ input: process.stdin }).on('line', (l) => {
           const n = Number(l);
           insert.run(n, 'e-' + n, 'generation-other', n, 'X', '{}', '{}', Date.now());
           process.stdout.write('ok\\n');
         });`,
        file,
      ],
      { cwd: process.cwd(), stdio: ['pipe', 'pipe', 'inherit'] },
    );
    const replies = createInterface({ input: writer.stdout! })[Symbol.asyncIterator]();
    try {
      for (let i = 0; i < 5; i++) {
        writer.stdin!.write(`${i}\n`);
        expect((await replies.next()).value).toBe('ok');
        // no later write and no poll: only a look at the head after the commit became visible wakes anyone
        await waitFor(`the wake for the other process's commit ${i}`, () => wakes >= i + 1, 10_000);
      }
      expect(wakes).toBe(5);
    } finally {
      off();
      writer.stdin!.end();
      await new Promise((resolve) => writer.once('exit', resolve));
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("signals each of its own appends once, though the log's watch reports them too", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'wearon-es-'));
    const file = path.join(dir, 'ledger.sqlite');
    const store = openSqliteEventStore({ path: file, writer: 'inline' }); // signals in the commit's own turn
    const other = openSqliteEventStore({ path: file });
    let wakes = 0;
    const off = store.onAppended(() => wakes++);
    try {
      for (let i = 0; i < 20; i++) await store.append(`generation-own-${i}`, [ev('A')], 'no_stream');
      // the watch reports another connection's append: the wake that shows its events have been seen
      await other.append('generation-other', [ev('B')], 'no_stream');
      await waitFor("the other connection's append to be signalled", () => wakes >= 21);
      expect(wakes).toBe(21);
    } finally {
      off();
      await other.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads a filtered log in position order: no per-page sort on the stream index', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'wearon-es-'));
    const store = openSqliteEventStore({ path: path.join(dir, 'ledger.sqlite') });
    const prepared: string[] = [];
    const prepare = store.db.prepare.bind(store.db);
    store.db.prepare = ((sql: string) => (prepared.push(sql), prepare(sql))) as typeof store.db.prepare;
    try {
      for (let i = 0; i < 40; i++) await store.append(i % 2 ? `generation-${i}` : `credit-account-user:${i}`, [ev('A'), ev('B')], 'no_stream');
      const page = await store.readAll({ fromPosition: 'start', maxCount: 10, filter: { streamPrefixes: ['generation-'] } });
      expect(page.map((e) => `${e.streamId} ${e.type}`)).toEqual([1, 3, 5, 7, 9].flatMap((i) => [`generation-${i} A`, `generation-${i} B`]));
      const sql = prepared.find((q) => q.startsWith('SELECT * FROM events WHERE global_position'))!;
      const plan = (store.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(0, 'generation-', 'generation-\uffff', 10) as { detail: string }[]).map((r) => r.detail);
      // the (stream_id, revision) index plus a sort of every match after the position, per page, made whole-log reads quadratic
      expect(plan).toEqual([expect.stringContaining('USING INTEGER PRIMARY KEY')]);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

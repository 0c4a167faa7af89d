import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openSqliteEventStore } from '../../src/adapters/eventstore/sqlite/sqliteEventStore.ts';
import { describeEventStoreContract, ev } from '../support/eventStoreContract.ts';

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

describe('sqlite event store specifics', () => {
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
});

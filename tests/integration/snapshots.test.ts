// Snapshots carry the version of the state's shape: one of another version (or from before versions) is ignored and
// the stream folded again, never loaded as the current shape. Real SQLite file, closed and reopened between steps.
import { rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openSqliteEventStore, type SqliteEventStore } from '../../src/adapters/eventstore/sqlite/sqliteEventStore.ts';
import { ACCOUNT, AggregateRepository } from '../../src/app/aggregates.ts';
import { ACCOUNT_STATE_VERSION, initialAccount } from '../../src/domain/account.ts';
import { accountStream, deterministicEventId } from '../../src/domain/streams.ts';
import { tempDir } from '../support/stack.ts';

const stream = accountStream('user:snap');
const meta = { requestId: 'r', causationId: 'c', correlationId: 'r', workerId: 'w', occurredAt: '2026-01-01T00:00:00.000Z' };
const grant = (i: number) => ({
  id: deterministicEventId(stream, `grant:${i}`),
  type: 'CreditsGranted',
  data: { amount: 1, reason: 'purchase', reference: `o-${i}` },
  metadata: meta,
});

describe('versioned snapshots', () => {
  const dir = tempDir('snapshots');
  let file = '';
  let store: SqliteEventStore | undefined;
  beforeEach((ctx) => void (file = path.join(dir, `${ctx.task.id}.sqlite`)));
  const reopen = async () => {
    await store?.close();
    store = openSqliteEventStore({ path: file, writer: 'inline' });
    return store;
  };
  afterEach(async () => {
    await store?.close();
    store = undefined;
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Appends `n` grants of 1 after revision `last`, returns the new last revision. */
  const appendGrants = async (s: SqliteEventStore, last: number, n: number) => {
    for (let i = last + 1; i <= last + n; i++) await s.append(stream, [grant(i)], i === 0 ? 'no_stream' : i - 1);
    return last + n;
  };
  const bogus = (balance: number) => ({ ...initialAccount(), balance, granted: balance });
  const freshLoad = async (s: SqliteEventStore) => (await new AggregateRepository(s).load(ACCOUNT, stream)).state;

  it('folds again over a snapshot without a version or of another version, and uses one of the current version', async () => {
    let s = await reopen();
    let last = await appendGrants(s, -1, 10);
    s.writeSnapshot(stream, last, bogus(1000)); // the shape before versions: the bare state
    s = await reopen();
    expect(s.readSnapshot(stream)).toMatchObject({ revision: 9, state: { balance: 1000 } });
    expect((await freshLoad(s)).balance).toBe(10);

    last = await appendGrants(s, last, 1);
    s.writeSnapshot(stream, last, { version: ACCOUNT_STATE_VERSION - 1, state: bogus(2000) });
    s = await reopen();
    expect((await freshLoad(s)).balance).toBe(11);

    // The current version is trusted (a snapshot is a cache): this one says 777, so the load says 777.
    last = await appendGrants(s, last, 1);
    s.writeSnapshot(stream, last, { version: ACCOUNT_STATE_VERSION, state: bogus(777) });
    s = await reopen();
    expect((await freshLoad(s)).balance).toBe(777);
  });

  it('writes snapshots with the state version', async () => {
    let s = await reopen();
    await appendGrants(s, -1, 501);
    expect((await freshLoad(s)).balance).toBe(501);
    s = await reopen(); // the snapshot rides along with the next commit, or the close
    expect(s.readSnapshot(stream)).toMatchObject({ revision: 500, state: { version: ACCOUNT_STATE_VERSION, state: { balance: 501 } } });
  });
});

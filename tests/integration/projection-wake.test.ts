// Issue 17: a caught-up projector wakes when something is appended, not on its idle timer. The poll here is an hour,
// so an event that reaches the read model at all was brought by the store's append signal: this process's appends
// (SQLite), another process's appends on the same SQLite file (the store watches its write-ahead log) and another
// process's appends through NOTIFY (Postgres).
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openSqliteEventStore } from '../../src/adapters/eventstore/sqlite/sqliteEventStore.ts';
import { openSqliteReadModel } from '../../src/adapters/readmodel/sqlite/sqliteReadModel.ts';
import type { EventStore, NewEvent } from '../../src/app/ports/eventStore.ts';
import { accountStream } from '../../src/domain/streams.ts';
import { silentLogger } from '../../src/logger.ts';
import { Projector } from '../../src/projections/projector.ts';
import { PROJECTIONS } from '../../src/projections/projections.ts';
import type { ReadModel } from '../../src/projections/readModel.ts';
import { openTestPgEventStore } from '../support/pgEventStore.ts';
import { postgresAvailable } from '../support/services.ts';
import { scaled, waitFor } from '../support/deadlines.ts';

const pgOk = await postgresAvailable();
const HOUR = 3_600_000;

function grant(amount: number): NewEvent {
  const id = randomUUID();
  return {
    id,
    type: 'CreditsGranted',
    data: { amount, reason: 'purchase', reference: id },
    metadata: { requestId: 'test', causationId: id, correlationId: id, workerId: 'w1', occurredAt: new Date().toISOString() },
  };
}

async function balanceOf(rm: ReadModel, account: string): Promise<number | null> {
  const rows = await rm.query('SELECT balance FROM credit_accounts WHERE account = ?', [account]);
  return rows.length ? Number(rows[0]!.balance) : null;
}

/** The projector brought the account to `balance`: the append reached the read model. */
function waitForBalance(rm: ReadModel, account: string, balance: number): Promise<boolean> {
  return waitFor(`${account} at ${balance} (the projector was woken)`, async () => (await balanceOf(rm, account)) === balance, 15_000);
}

/** Starts a caught-up projector with an hour-long poll, then appends through `writer` and expects the rows. */
async function wakesOnAppend(store: EventStore, writer: EventStore, rm: ReadModel): Promise<void> {
  const projector = new Projector({ store, readModel: rm, projection: PROJECTIONS['credit-balances'], logger: silentLogger(), pollMs: HOUR });
  try {
    await rm.migrate();
    const a = `user:${randomUUID()}`;
    await writer.append(accountStream(a), [grant(3)], 'no_stream');
    projector.start();
    await waitForBalance(rm, a, 3); // catching up needs no signal; from here on it waits
    for (const [amount, total] of [[4, 7], [5, 12]] as const) {
      await writer.append(accountStream(a), [grant(amount)], 'any');
      await waitForBalance(rm, a, total);
    }
    expect(await balanceOf(rm, a)).toBe(12);
  } finally {
    await projector.stop();
  }
}

describe('a caught-up projector wakes on appends', () => {
  it('SQLite store: appends of this process', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wearon-wake-'));
    const store = openSqliteEventStore({ path: join(dir, 'ledger.sqlite') });
    const rm = openSqliteReadModel({ path: join(dir, 'readmodels.sqlite') });
    try {
      await wakesOnAppend(store, store, rm);
    } finally {
      await rm.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, scaled(60_000));

  it('SQLite store: appends of another connection to the same file (as `wearon project` beside `wearon worker`), through the file watch', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wearon-wake-file-'));
    const store = openSqliteEventStore({ path: join(dir, 'ledger.sqlite'), pollIntervalMs: HOUR });
    const other = openSqliteEventStore({ path: join(dir, 'ledger.sqlite') }); // its appends never call `store`'s listeners
    const rm = openSqliteReadModel({ path: join(dir, 'readmodels.sqlite') });
    try {
      await wakesOnAppend(store, other, rm);
    } finally {
      await rm.close();
      await other.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, scaled(60_000));

  it.skipIf(!pgOk)('Postgres store: appends of another process, through NOTIFY', async () => {
    const t = await openTestPgEventStore({ pollIntervalMs: HOUR });
    const other = await t.reopen();
    const dir = mkdtempSync(join(tmpdir(), 'wearon-wake-pg-'));
    const rm = openSqliteReadModel({ path: join(dir, 'readmodels.sqlite') });
    try {
      await wakesOnAppend(t.store, other, rm);
    } finally {
      await rm.close();
      await t.cleanup();
      rmSync(dir, { recursive: true, force: true });
    }
  }, scaled(60_000));
});

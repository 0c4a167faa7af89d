// The inbox consumer (src/bridge/consumer.ts) on the platform fixture (real Postgres): a command applied to the ledger
// whose mark was lost (a crash between the two) is applied again as a no-op; a command of a type this worker does not
// know stays pending with the reason; a payload that can never apply is rejected with it; NOTIFY wakes the consumer.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSqliteEventStore } from '../../src/adapters/eventstore/sqlite/sqliteEventStore.ts';
import { AggregateRepository } from '../../src/app/aggregates.ts';
import { accountView } from '../../src/app/credits.ts';
import type { EventStore } from '../../src/app/ports/eventStore.ts';
import { handlerOf } from '../../src/bridge/commands.ts';
import { InboxConsumer } from '../../src/bridge/consumer.ts';
import { applyBridge } from '../../src/bridge/install.ts';
import { inboxDrifts } from '../../src/bridge/verify.ts';
import { openPgReadModel } from '../../src/adapters/readmodel/postgres/pgReadModel.ts';
import { silentLogger } from '../../src/logger.ts';
import { createPlatformDatabase, type PlatformDatabase } from '../support/platform/database.ts';
import { PlatformDriver } from '../support/platform/driver.ts';
import { postgresAvailable } from '../support/services.ts';
import { waitFor } from '../support/stack.ts';

const pgOk = await postgresAvailable();
const logger = silentLogger();

describe.skipIf(!pgOk)('bridge inbox consumer (platform fixture, real Postgres)', () => {
  let db: PlatformDatabase;
  let dir: string;
  let store: EventStore;
  let repo: AggregateRepository;
  const deps = () => ({ repo, workerId: 'test', clock: () => Date.now(), logger });
  const row = async (id: string) =>
    (await db.pool.query('SELECT outcome, reason, attempts, last_error FROM wearon.credit_inbox WHERE id = $1', [id])).rows[0];

  beforeAll(async () => {
    db = await createPlatformDatabase();
    const readModel = openPgReadModel({ connectionString: db.url });
    await readModel.migrate();
    await readModel.close();
    await applyBridge(db.url, 'up');
    dir = mkdtempSync(join(tmpdir(), 'wearon-inbox-'));
    store = openSqliteEventStore({ path: join(dir, 'ledger.sqlite') });
    repo = new AggregateRepository(store);
  });
  afterAll(async () => {
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
    await db?.cleanup();
  });

  it('re-applies a command whose mark was lost as a no-op: the signup bonus is granted once', async () => {
    const { userId } = await new PlatformDriver({ pool: db.pool }).signUp({ email: 'lost-mark@example.com' });
    const [cmd] = (await db.pool.query(`SELECT id::text AS id, type, payload FROM wearon.credit_inbox WHERE payload ->> 'account' = $1`, [`user:${userId}`])).rows;
    // The worker applied it to the ledger and died before its mark committed.
    const handler = handlerOf(cmd.type)!;
    expect(await handler.handle(deps(), { id: cmd.id, type: cmd.type, payload: handler.parse(cmd.payload), createdAt: new Date().toISOString() })).toEqual({ outcome: 'applied' });
    expect(await row(cmd.id)).toMatchObject({ outcome: null });

    const consumer = new InboxConsumer({ connectionString: db.url, deps: deps(), logger });
    try {
      expect(await consumer.drain()).toMatchObject({ applied: 1, pending: 0 });
    } finally {
      await consumer.stop();
    }
    expect(await row(cmd.id)).toMatchObject({ outcome: 'applied', reason: null });
    expect(await accountView(repo, `user:${userId}`)).toMatchObject({ balance: 10, granted: 10, revision: 0 });
  });

  it('leaves an unknown command type pending with the reason, rejects a payload that can never apply, and verify names what is pending', async () => {
    const id = async (sql: string) => (await db.pool.query<{ id: string }>(sql)).rows[0]!.id;
    const unknown = await id(`SELECT wearon.record_credit_command('overage_intent', '{"store":"s"}')::text AS id`);
    const invalid = await id(`SELECT wearon.record_credit_command('grant', '{"account":"user:x","amount":-3,"reason":"purchase"}')::text AS id`);
    const consumer = new InboxConsumer({ connectionString: db.url, deps: deps(), logger });
    try {
      expect(await consumer.drain()).toMatchObject({ rejected: 1, pending: 1 });
    } finally {
      await consumer.stop();
    }
    expect(await row(unknown)).toMatchObject({ outcome: null, attempts: 1, last_error: expect.stringContaining('no handler for command type "overage_intent"') });
    expect(await row(invalid)).toMatchObject({ outcome: 'rejected', reason: expect.stringContaining('invalid_amount') });
    const readModel = openPgReadModel({ connectionString: db.url });
    try {
      expect(await inboxDrifts(readModel, 60)).toEqual([]); // younger than the grace
      expect(await inboxDrifts(readModel, 0)).toEqual([expect.objectContaining({ projection: 'bridge', key: unknown })]);
    } finally {
      await readModel.close();
    }
    await db.pool.query(`UPDATE wearon.credit_inbox SET processed_at = now(), outcome = 'rejected', reason = 'test cleanup' WHERE id = $1`, [unknown]);
  });

  it('is woken by the platform commit (NOTIFY), long before its poll', async () => {
    const consumer = new InboxConsumer({ connectionString: db.url, deps: deps(), logger, pollMs: 60_000 });
    await consumer.start();
    try {
      await waitFor('the first pass', async () => (await db.pool.query(`SELECT count(*)::int AS n FROM wearon.credit_inbox WHERE processed_at IS NULL`)).rows[0].n === 0, 5000);
      const { userId } = await new PlatformDriver({ pool: db.pool }).signUp({ email: 'notified@example.com' });
      await waitFor('the signup bonus applied', async () => (await accountView(repo, `user:${userId}`)).balance === 10, 5000);
    } finally {
      await consumer.stop();
    }
  });
});

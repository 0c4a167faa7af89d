// Credit history where the platform reads it (issue 16): the credit-history projection writes one row per credit
// movement into the platform's credit_transactions / store_credit_transactions (platform-schema fixture on real
// Postgres), `wearon replay credit-history` rebuilds them without duplicates and without touching the platform's own
// rows, and `wearon verify` reconciles them per account against the balance change since the import.
//
// The platform's users and stores exist before the import (its own signup trigger and add_store_credits wrote their
// pre-import history); after the import the ledger is driven as the worker drives it once intake has a task (the
// bridge that turns the platform's calls into ledger commands is another part of the issue).
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AggregateRepository } from '../../src/app/aggregates.ts';
import { grantCredits, revokeCredits } from '../../src/app/credits.ts';
import { transferCredits } from '../../src/app/transfers.ts';
import { readAfter } from '../../src/app/log.ts';
import type { EventStore } from '../../src/app/ports/eventStore.ts';
import { GenerationSaga, type RequestInput } from '../../src/app/saga.ts';
import { importBalancesCommand } from '../../src/cli/commands/import-balances.ts';
import { verifyCommand } from '../../src/cli/commands/ledger.ts';
import { replayCommand } from '../../src/cli/commands/replay.ts';
import type { CliCommand } from '../../src/cli/command.ts';
import { openEventStore } from '../../src/compose/ledger.ts';
import { loadConfig, type Config } from '../../src/config.ts';
import { hashShopperEmail } from '../../src/domain/streams.ts';
import { silentLogger } from '../../src/logger.ts';
import { commitBatch, liveTarget } from '../../src/projections/projector.ts';
import { PROJECTIONS, PROJECTION_NAMES } from '../../src/projections/projections.ts';
import { historyPlatformMigration } from '../../src/projections/schema.ts';
import { migrationFile } from '../../src/bridge/migration.ts';
import { openPgReadModel, type PgReadModel } from '../../src/adapters/readmodel/postgres/pgReadModel.ts';
import { MemoryResultStore, ScriptedGenerator, StaticInputImages } from '../support/pipelineDoubles.ts';
import { createPlatformDatabase, type PlatformDatabase } from '../support/platform/database.ts';
import { PlatformDriver } from '../support/platform/driver.ts';
import { seedStore, storeCredits, storeHistory, userCredits, userHistory } from '../support/platform/seed.ts';

/** Rows appended in the same millisecond list in ledger order (the platform's own order for them is random). */
const inLedgerOrder = { ledgerOrder: true };
import { postgresAvailable } from '../support/services.ts';
import { tempDir } from '../support/stack.ts';

const pgOk = await postgresAvailable();
const logger = silentLogger();

interface World {
  db: PlatformDatabase;
  config: Config;
  dataDir: string;
  store: EventStore;
  closeStore: () => Promise<void>;
  rm: PgReadModel;
  repo: AggregateRepository;
  saga: GenerationSaga;
  generator: ScriptedGenerator;
  driver: PlatformDriver;
}

/** Runs a CLI command as `wearon <name> args` would; returns exit code and stdout lines. */
async function cli(w: World, command: CliCommand, args: string[] = []): Promise<{ code: number; out: string[] }> {
  const out: string[] = [];
  const code = await command.run(args, { config: w.config, logger, out: (l) => out.push(l), err: () => {} });
  return { code, out };
}

/** Every projection caught up with the log, batch by batch, as the live projectors do. */
async function catchUp(w: World): Promise<void> {
  for (const n of PROJECTION_NAMES) {
    const target = liveTarget(PROJECTIONS[n]);
    for (;;) {
      const cp = (await w.rm.transaction((tx) => tx.lockCheckpoint(n))).position;
      const events = await readAfter(w.store, cp, 7);
      if (events.length === 0) break;
      await w.rm.transaction((tx) => commitBatch(tx, target, cp, events));
    }
  }
}

/** verify --json: exit code and the drifts it names. */
async function verify(w: World) {
  const r = await cli(w, verifyCommand, ['--json']);
  const report = JSON.parse(r.out.join('\n')) as { ok: boolean; violations: unknown[]; drifts: Array<Record<string, unknown>> };
  return { code: r.code, ...report };
}

const ledgerRows = async (w: World, table: 'credit_transactions' | 'store_credit_transactions') =>
  (await w.db.pool.query(`SELECT * FROM public.${table} WHERE ledger_event_id IS NOT NULL ORDER BY created_at, ledger_event_id`)).rows;

function b2c(userId: string, requestId = `req-${randomUUID()}`): RequestInput {
  const sessionId = randomUUID();
  return {
    sessionId, taskId: `task-${sessionId}`, channel: 'b2c', account: `user:${userId}`, imageUrls: ['https://img.test/model.jpg'],
    prompt: sessionId, requestId, payloadVersion: 1, requestedAt: new Date().toISOString(), cost: 1,
  };
}
const b2b = (account: string, requestId: string): RequestInput => ({ ...b2c('x', requestId), channel: 'b2b', account });

describe.skipIf(!pgOk)('credit history in the platform tables (platform-schema fixture, real Postgres)', () => {
  let w: World;

  beforeEach(async () => {
    const db = await createPlatformDatabase();
    const dataDir = tempDir('history');
    const config = loadConfig({ DATA_DIR: dataDir, DATABASE_URL: db.url, POSE_ENABLED: 'false', WORKER_ID: 'history-test' });
    const ledger = await openEventStore(config, logger);
    const store = ledger.value;
    const rm = openPgReadModel({ connectionString: db.url, logger });
    await rm.migrate();
    const repo = new AggregateRepository(store);
    const generator = new ScriptedGenerator({ advancePastLease: () => {}, requestShutdown: () => {} });
    const saga = new GenerationSaga({
      repo, images: new StaticInputImages(), generator, results: new MemoryResultStore(), workerId: 'history-test', clock: () => Date.now(), logger,
      options: { leaseMs: 60_000, maxAttempts: 1, max429Retries: 0, signedUrlTtlSeconds: 300 },
    });
    w = { db, config, dataDir, store, closeStore: ledger.close, rm, repo, saga, generator, driver: new PlatformDriver({ pool: db.pool }) };
  });

  afterEach(async () => {
    await w.closeStore();
    await w.rm.close();
    await w.db.cleanup();
    rmSync(w.dataDir, { recursive: true, force: true });
  });

  /** A user who signed up before the cut-over (10 credits, the platform's signup_bonus row), then the import. */
  async function importedUser(): Promise<string> {
    const { userId } = await w.driver.signUp({ email: `${randomUUID().slice(0, 8)}@example.com` });
    return userId;
  }

  async function runImport(): Promise<void> {
    expect((await cli(w, importBalancesCommand)).code).toBe(0);
  }

  it('B2C: a deduction row when the hold is taken, nothing on capture, a refund row on failure; verify reconciles', async () => {
    const userId = await importedUser();
    await runImport();
    const ok = b2c(userId);
    const failed = b2c(userId);
    w.generator.script(failed.prompt, ['moderation']);
    for (const r of [ok, failed]) {
      await w.saga.request(r);
      expect(await w.saga.drive(r.sessionId)).toMatchObject({ kind: 'settled' });
    }
    await catchUp(w);

    // The platform's own pre-import row stays; the ledger's rows follow it, in the platform's types and signs.
    expect(await userHistory(w.db.pool, userId, inLedgerOrder)).toEqual([
      { amount: 10, type: 'signup_bonus', description: 'Welcome bonus: 10 free credits' },
      { amount: -1, type: 'generation', description: 'Virtual try-on generation' },
      { amount: -1, type: 'generation', description: 'Virtual try-on generation' },
      { amount: 1, type: 'refund', description: 'Generation failed - refund' },
    ]);
    const rows = await ledgerRows(w, 'credit_transactions');
    expect(rows).toHaveLength(3);
    expect(new Set(rows.map((r) => r.ledger_event_id)).size).toBe(3);
    expect(await userCredits(w.db.pool, userId)).toEqual({ balance: 9, total_in: 10, total_spent: 1 });
    const v = await verify(w);
    expect(v.drifts).toEqual([]);
    expect(v.code).toBe(0);
  });

  it('a paid session in flight at the import: its deduction shows once (the platform\'s row), its refund once (ours)', async () => {
    const userId = await importedUser();
    // What the platform's generation.create did before the cut-over: deduct_credits, then the queued session row.
    const sessions: string[] = [];
    for (let i = 0; i < 2; i++) {
      await w.db.pool.query("SELECT public.deduct_credits($1, 1, 'Virtual try-on generation')", [userId]);
      const { rows } = await w.db.pool.query(
        "INSERT INTO public.generation_sessions (user_id, model_image_url, prompt_system, credits_used) VALUES ($1, 'https://img.test/m.jpg', $2, 1) RETURNING id",
        [userId, `in-flight-${i}`],
      );
      sessions.push(rows[0].id);
    }
    await runImport(); // opening grant 10 (balance 8 + 2 held), both holds re-created
    w.generator.script('in-flight-1', ['moderation']);
    for (const id of sessions) expect(await w.saga.drive(id)).toMatchObject({ kind: 'settled' });
    await catchUp(w);

    expect(await userHistory(w.db.pool, userId, inLedgerOrder)).toEqual([
      { amount: 10, type: 'signup_bonus', description: 'Welcome bonus: 10 free credits' },
      { amount: -1, type: 'generation', description: 'Virtual try-on generation' },
      { amount: -1, type: 'generation', description: 'Virtual try-on generation' },
      { amount: 1, type: 'refund', description: 'Generation failed - refund' },
    ]);
    expect(await userCredits(w.db.pool, userId)).toMatchObject({ balance: 9 });
    const v = await verify(w);
    expect(v.drifts).toEqual([]);
    expect(v.code).toBe(0);
  });

  it('grants, revocations and B2B movements: one row each, with the platform types, request ids that never collide', async () => {
    const userId = await importedUser();
    const { storeId } = await seedStore(w.db.pool, { credits: 5 });
    await runImport();
    const ctx = { requestId: 'test', workerId: 'test' };
    const user = `user:${userId}`;
    const store = `store:${storeId}`;
    const shopper = `shopper:${storeId}:gus@example.com`;
    await grantCredits(w.repo, user, { amount: 3, reason: 'adjustment', reference: 'support:ticket-7' }, ctx);
    await grantCredits(w.repo, user, { amount: 20, reason: 'purchase', reference: 'order:b2c-1' }, ctx);
    await revokeCredits(w.repo, user, { amount: 2, reason: 'chargeback', reference: 'support:ticket-8' }, ctx);
    await grantCredits(w.repo, store, { amount: 350, reason: 'subscription', reference: 'paddle:subscription:req_sub_1' }, ctx);
    await grantCredits(w.repo, store, { amount: 10, reason: 'purchase', reference: 'paddle:purchase:req_buy_1' }, ctx);
    // A Shopify shopper purchase: the transfer process moves both legs (store pool -> shopper pool).
    expect(await transferCredits(w.repo, { from: store, to: shopper, amount: 4, transferId: '1001' }, ctx)).toEqual({ status: 'completed' });
    // Two generations with one client request id (the platform's route would answer the second with a 500), one fails;
    // and a shopper's generation.
    const first = b2b(store, 'req_dup');
    const second = b2b(store, 'req_dup');
    const hash = hashShopperEmail('gus@example.com');
    const resell = { ...b2b(`shopper:${storeId}.${hash}`, 'req_shop'), shopperHash: hash }; // intake's form: the email hashed
    w.generator.script(second.prompt, ['5xx']);
    for (const r of [first, second, resell]) {
      await w.saga.request(r);
      expect(await w.saga.drive(r.sessionId)).toMatchObject({ kind: 'settled' });
    }
    await catchUp(w);

    expect((await userHistory(w.db.pool, userId, inLedgerOrder)).slice(1)).toEqual([
      { amount: 3, type: 'adjustment', description: 'Credit adjustment (support:ticket-7)' },
      { amount: 20, type: 'purchase', description: 'Credit purchase (order:b2c-1)' },
      { amount: -2, type: 'adjustment', description: 'Credit adjustment (support:ticket-8: chargeback)' },
    ]);
    expect(await storeHistory(w.db.pool, storeId, inLedgerOrder)).toEqual([
      { amount: 5, type: 'purchase', request_id: expect.stringMatching(/^seed:/), description: 'Seed credits' }, // the platform's, before the import
      { amount: 350, type: 'subscription', request_id: 'paddle:subscription:req_sub_1', description: 'Subscription credits (paddle:subscription:req_sub_1)' },
      { amount: 10, type: 'purchase', request_id: 'paddle:purchase:req_buy_1', description: 'Credit purchase (paddle:purchase:req_buy_1)' },
      { amount: -4, type: 'deduction', request_id: 'transfer:1001', description: 'Shopper credit purchase for order 1001' },
      { amount: 4, type: 'transfer', request_id: 'transfer:1001', description: `Shopper credit purchase (transfer:1001) (shopper_hash=${hash})` },
      { amount: -1, type: 'deduction', request_id: first.sessionId, description: 'B2B generation (request req_dup)' },
      { amount: -1, type: 'deduction', request_id: second.sessionId, description: 'B2B generation (request req_dup)' },
      { amount: 1, type: 'refund', request_id: second.sessionId, description: 'Generation failed - refund' },
      { amount: -1, type: 'deduction', request_id: resell.sessionId, description: `B2B shopper generation (request req_shop) (shopper_hash=${hash})` },
    ]);
    expect(await storeCredits(w.db.pool, storeId)).toMatchObject({ balance: 5 + 350 + 10 - 4 - 1 });
    const v = await verify(w);
    expect(v.violations).toEqual([]);
    expect(v.drifts).toEqual([]);
    expect(v.code).toBe(0);
  });

  it('wearon replay credit-history rebuilds without duplicates, repairs altered rows and never touches the platform rows', async () => {
    const userId = await importedUser();
    await runImport();
    for (const outcome of ['ok', 'moderation'] as const) {
      const r = b2c(userId);
      w.generator.script(r.prompt, [outcome]);
      await w.saga.request(r);
      await w.saga.drive(r.sessionId);
    }
    await grantCredits(w.repo, `user:${userId}`, { amount: 5, reason: 'signup_bonus', reference: `signup:${userId}` }, { requestId: 't', workerId: 't' });
    await catchUp(w);
    const before = await userHistory(w.db.pool, userId, inLedgerOrder);
    expect(before).toHaveLength(5);
    const owned = await ledgerRows(w, 'credit_transactions');
    // An altered row of the projection's (its description) and one the platform wrote before the import.
    await w.db.pool.query("UPDATE public.credit_transactions SET description = 'edited' WHERE ledger_event_id = $1", [owned[0]!.ledger_event_id]);
    await w.db.pool.query("UPDATE public.credit_transactions SET description = 'platform note' WHERE ledger_event_id IS NULL");

    for (let i = 0; i < 2; i++) expect((await cli(w, replayCommand, ['credit-history'])).code).toBe(0);
    const after = await userHistory(w.db.pool, userId, inLedgerOrder);
    expect(after).toEqual([{ ...before[0], description: 'platform note' }, ...before.slice(1)]);
    expect((await ledgerRows(w, 'credit_transactions')).map((r) => r.ledger_event_id)).toEqual(owned.map((r) => r.ledger_event_id));
    // The live projector goes on from the swapped-in checkpoint without writing anything twice.
    await catchUp(w);
    expect(await userHistory(w.db.pool, userId, inLedgerOrder)).toEqual(after);
    expect((await verify(w)).drifts).toEqual([]);
    // `replay all` too.
    expect((await cli(w, replayCommand, ['all'])).code).toBe(0);
    expect(await userHistory(w.db.pool, userId, inLedgerOrder)).toEqual(after);
  });

  it('verify names a missing, an altered and a foreign history row, and platform writes behind the ledger after the import', async () => {
    const userId = await importedUser();
    const other = await importedUser();
    const { storeId } = await seedStore(w.db.pool); // empty at the import: no opening grant, only its opening totals
    await runImport();
    for (const u of [userId, other]) {
      const r = b2c(u);
      await w.saga.request(r);
      await w.saga.drive(r.sessionId);
    }
    await catchUp(w);
    expect((await verify(w)).code).toBe(0);
    const [mine, theirs] = [userId, other].map(async (u) =>
      (await w.db.pool.query('SELECT ledger_event_id FROM public.credit_transactions WHERE user_id = $1 AND ledger_event_id IS NOT NULL', [u])).rows[0]!.ledger_event_id as string);
    await w.db.pool.query('DELETE FROM public.credit_transactions WHERE ledger_event_id = $1', [await mine]);
    await w.db.pool.query('UPDATE public.credit_transactions SET amount = -3 WHERE ledger_event_id = $1', [await theirs]);
    const v = await verify(w);
    expect(v.code).toBe(1);
    expect(v.drifts).toEqual(expect.arrayContaining([
      expect.objectContaining({ projection: 'credit-history', table: 'credit_transactions', key: await mine, kind: 'missing', account: `user:${userId}` }),
      expect.objectContaining({ table: 'credit_transactions', key: await theirs, kind: 'mismatch', column: 'amount', expected: -1, actual: -3 }),
      expect.objectContaining({ table: 'credit_transactions', account: `user:${userId}`, column: 'sum(amount) since import', expected: -1, actual: 0 }),
      expect.objectContaining({ table: 'credit_transactions', account: `user:${other}`, column: 'sum(amount) since import', expected: -1, actual: -3 }),
    ]));

    // Repaired by a replay; then the platform's own code moves credits after the import (no bridge installed): its
    // refund_credits row is history the ledger never saw.
    expect((await cli(w, replayCommand, ['credit-history'])).code).toBe(0);
    expect((await verify(w)).drifts).toEqual([]);
    await w.db.pool.query("SELECT public.refund_credits($1, 1, 'Stuck job recovery')", [userId]);
    await w.db.pool.query("INSERT INTO public.credit_transactions (user_id, amount, type, description, ledger_event_id) VALUES ($1, 7, 'refund', 'x', $2)", [other, randomUUID()]);
    await w.db.pool.query(`SELECT public.add_store_credits($1, 10, 'purchase', 'req_after_import')`, [storeId]);
    const after = await verify(w);
    expect(after.drifts).toEqual(expect.arrayContaining([
      expect.objectContaining({ account: `store:${storeId}`, table: 'store_credit_transactions', column: 'sum(amount) since import', expected: 0, actual: 10 }),
      expect.objectContaining({ account: `user:${userId}`, column: 'sum(amount) since import', expected: -1, actual: 0 }),
      expect.objectContaining({ table: 'credit_transactions', kind: 'unexpected', account: `user:${other}` }),
      expect.objectContaining({ account: `user:${other}`, column: 'sum(amount) since import', expected: -1, actual: 6 }),
    ]));
    // The platform's rows from before the import never count.
    expect(after.drifts.filter((d) => d.column === 'sum(amount) since import')).toHaveLength(3);
  });

  it('migrate extends the platform type CHECKs once and adds ledger_event_id (unique); the printable down migration undoes it', async () => {
    const checks = async () =>
      (await w.db.pool.query(
        `SELECT conrelid::regclass::text AS t, pg_get_constraintdef(oid) AS def, convalidated FROM pg_constraint
         WHERE conname IN ('credit_transactions_type_check', 'store_credit_transactions_type_check') ORDER BY 1`,
      )).rows;
    const extended = await checks();
    expect(extended.map((c) => c.t)).toEqual(['credit_transactions', 'store_credit_transactions']);
    for (const v of ['signup_bonus', 'generation', 'refund', 'purchase', 'subscription', 'adjustment', 'transfer']) expect(extended[0].def).toContain(`'${v}'`);
    for (const v of ['deduction', 'refund', 'purchase', 'subscription', 'overage', 'adjustment', 'transfer']) expect(extended[1].def).toContain(`'${v}'`);
    const { userId } = await w.driver.signUp({ email: 'check@example.com' });
    const insert = (type: string, eventId: string | null) =>
      w.db.pool.query('INSERT INTO public.credit_transactions (user_id, amount, type, ledger_event_id) VALUES ($1, 1, $2, $3)', [userId, type, eventId]);
    await expect(insert('bogus', null)).rejects.toThrow(/credit_transactions_type_check/);
    const id = randomUUID();
    await insert('adjustment', id);
    await expect(insert('adjustment', id)).rejects.toThrow(/credit_transactions_ledger_event_id_key/);
    // A second migrate finds everything in place and changes nothing.
    await w.rm.migrate();
    expect(await checks()).toEqual(extended);

    const { up, down } = historyPlatformMigration();
    // The same changes land in the platform's migration history: the printed bridge file carries them.
    for (const statement of up) expect(migrationFile('up').sql).toContain(`${statement};`);
    for (const s of down) await w.db.pool.query(s);
    const restored = await checks();
    expect(restored.map((c) => c.convalidated)).toEqual([false, false]); // the rows of added types already written stay
    expect(restored[0].def).not.toContain("'adjustment'");
    await expect(w.db.pool.query("INSERT INTO public.credit_transactions (user_id, amount, type) VALUES ($1, 1, 'adjustment')", [userId]))
      .rejects.toThrow(/credit_transactions_type_check/);
    const cols = await w.db.pool.query("SELECT 1 FROM information_schema.columns WHERE column_name = 'ledger_event_id' AND table_schema = 'public'");
    expect(cols.rowCount).toBe(0);
    for (const s of up) await w.db.pool.query(s);
    for (const s of up) await w.db.pool.query(s); // idempotent, as a re-applied migration file must be
    await insert('transfer', randomUUID());
  });
});

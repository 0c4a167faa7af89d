// import-balances against the platform-schema fixture (real Postgres): the platform's totals stay continuous through
// the import and a replay, a second import picks up accounts created since the first (and changes nothing else), and
// the bridge replaces the platform's shopper purchase function even as deployed (broken on Postgres 15).
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyBridge } from '../../src/bridge/install.ts';
import type { CliCommand } from '../../src/cli/command.ts';
import { importBalancesCommand } from '../../src/cli/commands/import-balances.ts';
import { verifyCommand } from '../../src/cli/commands/ledger.ts';
import { migrateCommand } from '../../src/cli/commands/migrate.ts';
import { replayCommand } from '../../src/cli/commands/replay.ts';
import { loadConfig, type Config } from '../../src/config.ts';
import { silentLogger } from '../../src/logger.ts';
import { openPgReadModel } from '../../src/adapters/readmodel/postgres/pgReadModel.ts';
import { createPlatformDatabase, type PlatformDatabase } from '../support/platform/database.ts';
import { PlatformDriver } from '../support/platform/driver.ts';
import { seedStore, storeCredits, userCredits } from '../support/platform/seed.ts';
import { postgresAvailable } from '../support/services.ts';
import { tempDir } from '../support/stack.ts';

const pgOk = await postgresAvailable();
const logger = silentLogger();
const email = () => `u-${randomUUID().slice(0, 8)}@example.com`;

describe.skipIf(!pgOk)('import-balances on the platform fixture (real Postgres)', () => {
  let db: PlatformDatabase;
  let config: Config;
  const cli = async (command: CliCommand, args: string[] = []) => {
    const out: string[] = [];
    const code = await command.run(args, { config, logger, out: (l) => out.push(l), err: () => undefined });
    return { code, out: out.join('\n') };
  };

  beforeAll(async () => {
    db = await createPlatformDatabase();
    config = loadConfig({ DATA_DIR: tempDir('import'), DATABASE_URL: db.url });
  });
  afterAll(async () => {
    await db?.cleanup();
  });

  it('keeps total_earned / total_spent / total_purchased continuous, through a replay; a second run takes only new accounts', async () => {
    const driver = new PlatformDriver({ pool: db.pool });
    const { userId } = await driver.signUp({ email: email() });
    // The example: a user at 2/10/8 became 2/2/0.
    await db.pool.query('UPDATE user_credits SET balance = 2, total_earned = 10, total_spent = 8 WHERE user_id = $1', [userId]);
    const { storeId } = await seedStore(db.pool, { credits: 50 });
    await db.pool.query('UPDATE store_credits SET balance = 30, total_spent = 20 WHERE store_id = $1', [storeId]);
    const { userId: broke } = await driver.signUp({ email: email() });
    await db.pool.query('UPDATE user_credits SET balance = 0, total_earned = 10, total_spent = 10 WHERE user_id = $1', [broke]);

    expect((await cli(migrateCommand)).code).toBe(0);
    const first = JSON.parse((await cli(importBalancesCommand)).out);
    expect(first).toMatchObject({ imported: 2, credits: 32, skippedZero: 1, failed: 0 });
    expect((await cli(replayCommand, ['all'])).code).toBe(0); // rebuilds and publishes every account
    expect(await userCredits(db.pool, userId)).toEqual({ balance: 2, total_in: 10, total_spent: 8 });
    expect(await storeCredits(db.pool, storeId)).toEqual({ balance: 30, total_in: 50, total_spent: 20 });
    expect(await userCredits(db.pool, broke)).toEqual({ balance: 0, total_in: 10, total_spent: 10 }); // untouched

    // An account created after the first import (the platform still wrote credits then): the second run takes it,
    // and only it.
    const { userId: late } = await driver.signUp({ email: email() });
    const second = JSON.parse((await cli(importBalancesCommand)).out);
    expect(second).toMatchObject({ imported: 1, credits: 10, skippedExisting: 2, skippedZero: 1, failed: 0 });
    expect((await cli(replayCommand, ['all'])).code).toBe(0);
    expect(await userCredits(db.pool, late)).toEqual({ balance: 10, total_in: 10, total_spent: 0 });
    expect(await userCredits(db.pool, userId)).toEqual({ balance: 2, total_in: 10, total_spent: 8 });
    const verify = await cli(verifyCommand, ['--json', '--quiescent']);
    expect(JSON.parse(verify.out)).toMatchObject({ ok: true, violations: [], drifts: [] });
  });
});

describe.skipIf(!pgOk)('the bridge over the shopper purchase function as deployed (broken on Postgres 15)', () => {
  let db: PlatformDatabase;
  beforeAll(async () => {
    db = await createPlatformDatabase({ shopperPurchaseRpc: 'as-deployed' });
    const readModel = openPgReadModel({ connectionString: db.url });
    await readModel.migrate();
    await readModel.close();
  });
  afterAll(async () => {
    await db?.cleanup();
  });

  it('answers processed with the bridge, and the down migration restores the deployed (failing) body', async () => {
    const { storeId } = await seedStore(db.pool, { credits: 10, billingMode: 'resell_mode', shopifyProductId: '1' });
    const call = (order: string) => db.pool.query(`SELECT status FROM public.process_store_shopper_purchase($1, 'Dee@Example.com', $2, 2, 3.0)`, [storeId, order]);
    await expect(call('501')).rejects.toThrow(/ambiguous/);
    await applyBridge(db.url, 'up');
    expect((await call('502')).rows).toEqual([{ status: 'processed' }]);
    await db.pool.query(`UPDATE wearon.credit_inbox SET processed_at = now(), outcome = 'rejected', reason = 'no worker in this test'`);
    await applyBridge(db.url, 'down');
    await expect(call('503')).rejects.toThrow(/ambiguous/);
  });
});

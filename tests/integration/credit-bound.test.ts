// The ledger's bound on credits (MAX_CREDITS = 2^31 - 1, issue 11 item 1) at every entry point: HTTP grants (400/422 in
// the one error shape), the CLI, import-balances; and the bound itself lands exactly in the Postgres read models.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSqliteEventStore } from '../../src/adapters/eventstore/sqlite/sqliteEventStore.ts';
import { AggregateRepository } from '../../src/app/aggregates.ts';
import { CreditCommandRejected, grantCredits, revokeCredits } from '../../src/app/credits.ts';
import { grantCommand } from '../../src/cli/commands/ledger.ts';
import { loadConfig } from '../../src/config.ts';
import { MAX_CREDITS } from '../../src/domain/account.ts';
import { accountStream } from '../../src/domain/streams.ts';
import { silentLogger } from '../../src/logger.ts';
import { startService, type Service } from '../../src/compose/service.ts';
import { importBalances } from '../../src/projections/importBalances.ts';
import { consume } from '../../src/app/consumer.ts';
import { liveTarget, targetProcessor } from '../../src/projections/projector.ts';
import { PROJECTIONS, PROJECTION_NAMES } from '../../src/projections/projections.ts';
import { verifyReadModels } from '../../src/projections/verifyReadModels.ts';
import { pgReadModel, sqliteReadModel } from '../support/readModels.ts';
import { postgresAvailable } from '../support/services.ts';
import { freePort, tempDir } from '../support/stack.ts';
import { scaled } from '../support/deadlines.ts';

const logger = silentLogger();
const pgOk = await postgresAvailable();
const ctx = { requestId: 'test', workerId: 'test' };

describe('the credit bound at the HTTP and CLI entry points', () => {
  let service: Service;
  let base: string;
  let dataDir: string;
  const token = 'bound-token-0123456789';
  const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const grant = (account: string, amount: number, reference: string) =>
    fetch(`${base}/v1/accounts/${encodeURIComponent(account)}/grants`, {
      method: 'POST',
      headers: { ...auth, 'x-request-id': `req_${reference}` },
      body: JSON.stringify({ amount, reason: 'purchase', reference }),
    });

  beforeAll(async () => {
    const port = await freePort();
    dataDir = tempDir('bound');
    const config = loadConfig({ DATA_DIR: dataDir, HOST: '127.0.0.1', PORT: String(port), API_TOKEN: token, POSE_ENABLED: 'false' });
    service = await startService(config, { http: true, worker: false, projections: false }, logger);
    base = `http://127.0.0.1:${port}`;
  });
  afterAll(() => service.stop());

  it('answers 400 with the amount field for a grant above the bound (the probe: 3000000000 answered 201)', async () => {
    const account = `user:${randomUUID()}`;
    const r = await grant(account, 3_000_000_000, 'big-1');
    expect(r.status).toBe(400);
    expect(r.headers.get('x-request-id')).toBe('req_big-1');
    const body = (await r.json()) as { error: { code: string; details: { fields: { path: string; message: string }[] } }; request_id: string };
    expect(body).toMatchObject({ error: { code: 'invalid_request' }, request_id: 'req_big-1' });
    expect(body.error.details.fields.map((f) => f.path)).toEqual(['amount']);
    expect((await fetch(`${base}/v1/accounts/${account}`, { headers: auth })).status).toBe(404); // nothing recorded
  });

  it('takes a grant of exactly the bound, and refuses one more credit with 422 credit_bound_exceeded', async () => {
    const account = `user:${randomUUID()}`;
    expect((await grant(account, MAX_CREDITS, 'max-1')).status).toBe(201);
    const r = await grant(account, 1, 'one-more');
    expect(r.status).toBe(422);
    expect(r.headers.get('x-request-id')).toBe('req_one-more');
    const body = (await r.json()) as { error: { code: string; message: string }; request_id: string };
    expect(body).toEqual({ error: { code: 'credit_bound_exceeded', message: expect.stringContaining(String(MAX_CREDITS)) }, request_id: 'req_one-more' });
    const view = (await (await fetch(`${base}/v1/accounts/${account}`, { headers: auth })).json()) as { balance: number; granted: number };
    expect(view).toMatchObject({ balance: MAX_CREDITS, granted: MAX_CREDITS });
  });

  it('the CLI grant refuses beyond the bound with a clear message and exit 1', async () => {
    const config = loadConfig({ DATA_DIR: dataDir });
    const account = `user:${randomUUID()}`;
    for (const [amount, code] of [['3000000000', 'invalid_amount'], ['9007199254740991', 'invalid_amount']] as const) {
      const out: string[] = [];
      const err: string[] = [];
      const exit = await grantCommand.run([account, amount, '--reason', 'purchase', '--reference', `cli-${amount}`], {
        config, logger, out: (l) => out.push(l), err: (l) => err.push(l),
      });
      expect(exit).toBe(1);
      expect(out).toEqual([]);
      expect(err.join('\n')).toBe(`refused (${code}): amount must be a whole number of credits from 1 to ${MAX_CREDITS}`);
    }
  });
});

describe('the credit bound in import-balances', () => {
  it('refuses an opening balance beyond the bound (the embedded read model holds it; the ledger does not take it)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wearon-bound-'));
    const store = openSqliteEventStore({ path: join(dir, 'ledger.sqlite') });
    const t = await sqliteReadModel();
    try {
      await t.rm.migrate();
      const big = randomUUID();
      const fine = randomUUID();
      await t.rm.query('INSERT INTO user_credits (user_id, balance, total_earned, total_spent) VALUES (?, 3000000000, 3000000000, 0)', [big]);
      await t.rm.query('INSERT INTO user_credits (user_id, balance, total_earned, total_spent) VALUES (?, ?, 0, 0)', [fine, MAX_CREDITS]);
      const r = await importBalances(store, t.rm, logger);
      expect(r).toMatchObject({ imported: 1, credits: MAX_CREDITS, failed: 1 });
      expect(await store.streamRevision(accountStream(`user:${big}`))).toBeNull();
      expect(await store.streamRevision(accountStream(`user:${fine}`))).toBe(0);
    } finally {
      await store.close();
      await t.cleanup();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(!pgOk)('the credit bound in the Postgres read models', () => {
  it('a balance and totals at the bound project exactly into credit_accounts, ledger_entries and user_credits', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wearon-bound-pg-'));
    const store = openSqliteEventStore({ path: join(dir, 'ledger.sqlite') });
    const t = await pgReadModel('bound');
    try {
      await t.rm.migrate();
      const repo = new AggregateRepository(store);
      const user = randomUUID();
      const account = `user:${user}`;
      await grantCredits(repo, account, { amount: MAX_CREDITS - 5, reason: 'purchase', reference: 'a' }, ctx);
      await revokeCredits(repo, account, { amount: MAX_CREDITS - 5, reason: 'correction', reference: 'r' }, ctx);
      await grantCredits(repo, account, { amount: MAX_CREDITS, reason: 'purchase', reference: 'b' }, ctx);
      // The probe's stall: before the bound this grant was accepted and the projector failed on it forever.
      const refused = await grantCredits(repo, account, { amount: 1, reason: 'purchase', reference: 'c' }, ctx).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(CreditCommandRejected);
      expect(refused).toMatchObject({ code: 'credit_bound_exceeded' });
      for (const n of PROJECTION_NAMES) {
        await consume({ store, processor: targetProcessor((fn) => t.rm.transaction(fn), liveTarget(PROJECTIONS[n])), batchSize: 100, until: await store.headPosition() });
      }
      expect(await t.rm.query('SELECT balance, total_earned, total_spent FROM user_credits WHERE user_id = ?', [user])).toEqual([
        { balance: MAX_CREDITS, total_earned: MAX_CREDITS, total_spent: 0 },
      ]);
      expect(await t.rm.query('SELECT balance, granted FROM credit_accounts WHERE account = ?', [account])).toEqual([{ balance: MAX_CREDITS, granted: MAX_CREDITS }]);
      const entries = await t.rm.query('SELECT amount, credits, balance_after FROM ledger_entries WHERE account = ? ORDER BY global_commit', [account]);
      expect(entries).toEqual([
        { amount: MAX_CREDITS - 5, credits: MAX_CREDITS - 5, balance_after: MAX_CREDITS - 5 },
        { amount: -(MAX_CREDITS - 5), credits: MAX_CREDITS - 5, balance_after: 0 },
        { amount: MAX_CREDITS, credits: MAX_CREDITS, balance_after: MAX_CREDITS },
      ]);
      expect(await verifyReadModels(store, t.rm, logger)).toEqual([]);
    } finally {
      await store.close();
      await t.cleanup();
      rmSync(dir, { recursive: true, force: true });
    }
  }, scaled(60_000));
});

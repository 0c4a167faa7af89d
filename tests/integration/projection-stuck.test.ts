// Issue 11 item 1: a projector that cannot apply an event stops there loudly instead of retrying the same batch
// silently forever: the events before it are committed, the event is named in the logs, on /health (the projectors'
// probe), in `wearon projections` (exit 1) and by the stuck gauge (the alert's input); `wearon verify` reports the
// projection as behind, with how far and the event. Once the cause is gone the projector carries on by itself.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { openSqliteEventStore, type SqliteEventStore } from '../../src/adapters/eventstore/sqlite/sqliteEventStore.ts';
import { START, formatPosition, type NewEvent } from '../../src/app/ports/eventStore.ts';
import { readAfter } from '../../src/app/log.ts';
import { projectionsCommand } from '../../src/cli/commands/projections.ts';
import { verifyCommand } from '../../src/cli/commands/ledger.ts';
import { loadConfig } from '../../src/config.ts';
import { MAX_CREDITS } from '../../src/domain/account.ts';
import { accountStream } from '../../src/domain/streams.ts';
import { createMetrics } from '../../src/metrics.ts';
import { Projector, commitBatch, liveTarget, projectionStatus, projectorsProbe } from '../../src/projections/projector.ts';
import { PROJECTIONS } from '../../src/projections/projections.ts';
import { openSqliteReadModel } from '../../src/adapters/readmodel/sqlite/sqliteReadModel.ts';
import { verifyReadModels } from '../../src/projections/verifyReadModels.ts';
import { rebuildProjection } from '../../src/projections/rebuild.ts';
import { silentLogger } from '../../src/logger.ts';
import { pgReadModel } from '../support/readModels.ts';
import { postgresAvailable } from '../support/services.ts';
import { scaled, waitFor } from '../support/deadlines.ts';

const pgOk = await postgresAvailable();

function capturingLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { logger, lines };
}

/** Appends one event as it is stored, bypassing the domain (which would refuse it): what a bug or an old writer leaves. */
async function appendRaw(store: SqliteEventStore, account: string, type: string, data: unknown): Promise<string> {
  const id = randomUUID();
  const event: NewEvent = {
    id,
    type,
    data,
    metadata: { requestId: 'test', causationId: id, correlationId: id, workerId: 'w1', occurredAt: new Date().toISOString() },
  };
  await store.append(accountStream(account), [event], 'any');
  return id;
}

describe.skipIf(!pgOk)('a projector that cannot apply an event (Postgres read model)', () => {
  it('a balance the read model refuses (2 x MAX_CREDITS, out of range for integer) stops it there, loudly', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wearon-stuck-'));
    const store = openSqliteEventStore({ path: join(dir, 'ledger.sqlite') });
    const t = await pgReadModel('stuck');
    const { logger, lines } = capturingLogger();
    const metrics = createMetrics();
    const projector = new Projector({ store, readModel: t.rm, projection: PROJECTIONS['credit-balances'], logger, metrics, stuckRetryMaxMs: 200 });
    try {
      await t.rm.migrate();
      const a = `user:${randomUUID()}`;
      const b = `user:${randomUUID()}`;
      await appendRaw(store, a, 'CreditsGranted', { amount: MAX_CREDITS, reason: 'purchase', reference: 'r1' });
      const first = await store.headPosition();
      // Decodable (a whole positive amount), but the balance it makes does not fit the read model's integer columns.
      const poison = await appendRaw(store, a, 'CreditsGranted', { amount: MAX_CREDITS, reason: 'purchase', reference: 'r2' });
      await appendRaw(store, b, 'CreditsGranted', { amount: 5, reason: 'purchase', reference: 'r3' });
      projector.start();

      const failure = await waitFor('the projector to name the event it is stuck at', () => projector.failure);
      expect(failure).toMatchObject({ eventId: poison, eventType: 'CreditsGranted', streamId: accountStream(a), revision: 1 });
      expect(failure.error).toMatch(/out of range/);
      // the event before it is committed, the one after it is not
      const status = (await projectionStatus(store, t.rm)).find((s) => s.projection === 'credit-balances')!;
      expect(status.checkpoint).toBe(formatPosition(first!));
      expect(status.failure).toMatchObject({ eventId: poison });
      expect(await t.rm.query('SELECT account, balance FROM credit_accounts')).toEqual([{ account: a, balance: MAX_CREDITS }]);
      // health degraded, gauge set, the event named in an error log line
      await expect(projectorsProbe([projector])()).rejects.toThrow(poison);
      // a rebuild stops at the same event, and names it
      await expect(rebuildProjection({ store, readModel: t.rm, projection: PROJECTIONS['credit-balances'], logger: silentLogger() })).rejects.toThrow(
        new RegExp(`cannot apply event ${poison} \\(CreditsGranted, ${accountStream(a)}@1, position 1/1\\): value "4294967294" is out of range`),
      );
      // ...also when a later flush of the rebuild fails, one in flight while the next page is folded (a page and a flush per event)
      await expect(
        rebuildProjection({ store, readModel: t.rm, projection: PROJECTIONS['credit-balances'], logger: silentLogger(), batchSize: 1, flushEvents: 1 }),
      ).rejects.toThrow(new RegExp(`cannot apply event ${poison} \\(CreditsGranted`));
      expect((await metrics.projectionStuck.get()).values).toEqual([expect.objectContaining({ labels: { projection: 'credit-balances' }, value: 1 })]);
      expect(lines.find((l) => l.msg === 'projection_stuck')).toMatchObject({ level: 50, projection: 'credit-balances', event: { eventId: poison } });
      // it keeps trying (backing off), without ever getting past the event
      await waitFor('a few attempts', () => (projector.failure?.attempts ?? 0) >= 3);
      expect((await projectionStatus(store, t.rm)).find((s) => s.projection === 'credit-balances')!.checkpoint).toBe(formatPosition(first!));

      // verify: behind, by how much, and the event
      const drifts = await verifyReadModels(store, t.rm, logger, { catchUpMs: 0 });
      expect(drifts.filter((d) => d.kind === 'behind' && d.projection === 'credit-balances')).toEqual([
        expect.objectContaining({ behind: 2, actual: formatPosition(first!), expected: formatPosition((await store.headPosition())!), failure: expect.objectContaining({ eventId: poison }) }),
      ]);

    } finally {
      await projector.stop();
      await store.close();
      await t.cleanup();
      rmSync(dir, { recursive: true, force: true });
    }
  }, scaled(60_000));
});

describe('a projector that cannot apply an event (SQLite read model, the CLI)', () => {
  it('an undecodable event: `wearon projections` names it and exits 1, `wearon verify` fails with how far behind', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wearon-stuck-cli-'));
    const store = openSqliteEventStore({ path: join(dir, 'ledger.sqlite') });
    const rm = openSqliteReadModel({ path: join(dir, 'readmodels.sqlite') });
    const { logger } = capturingLogger();
    // Every projection decodes every event: each one stops at it.
    const projectors = Object.values(PROJECTIONS).map((projection) => new Projector({ store, readModel: rm, projection, logger, stuckRetryMaxMs: 200 }));
    const names = Object.keys(PROJECTIONS);
    try {
      await rm.migrate();
      projectors[0]!.start(); // one running before the event arrives, the others started after it
      const a = `user:${randomUUID()}`;
      await appendRaw(store, a, 'CreditsGranted', { amount: 3, reason: 'purchase', reference: 'r1' });
      const poison = await appendRaw(store, a, 'CreditsGranted', { amount: 'three', reason: 'purchase', reference: 'r2' });
      await appendRaw(store, a, 'CreditsGranted', { amount: 4, reason: 'purchase', reference: 'r3' });
      for (const p of projectors.slice(1)) p.start();
      await waitFor('every projector to stop at the event', () => projectors.every((p) => p.failure));
      for (const p of projectors) expect(p.failure).toMatchObject({ eventId: poison, error: expect.stringMatching(/amount "three"/) });
      for (const p of projectors) await p.stop(); // the CLI is another process's view: the failure is on the checkpoint row

      const config = loadConfig({ DATA_DIR: dir });
      const out: string[] = [];
      const ctx = { config, logger, out: (l: string) => void out.push(l), err: () => undefined };
      expect(await projectionsCommand.run([], ctx)).toBe(1);
      expect(out.filter((l) => l.startsWith('STUCK'))).toEqual(
        names.map((n) => expect.stringMatching(new RegExp(`^STUCK ${n} is stuck at event ${poison} \\(CreditsGranted, credit-account-user-.*@1, position 1/1\\) since .*amount "three"`))),
      );
      out.length = 0;
      expect(await projectionsCommand.run(['--json'], ctx)).toBe(1);
      expect(JSON.parse(out[0]!).find((r: { projection: string }) => r.projection === 'credit-balances')).toMatchObject({ checkpoint: '0/0', failure: { eventId: poison } });
      out.length = 0;
      expect(await verifyCommand.run([], ctx)).toBe(1);
      expect(out.filter((l) => l.startsWith('BEHIND'))).toEqual(
        names.map((n) => expect.stringMatching(new RegExp(`^BEHIND ${n}: checkpoint 0/0, head 2/2, 2 event\\(s\\) behind; ${n} is stuck at event ${poison}`))),
      );
    } finally {
      for (const p of projectors) await p.stop();
      await rm.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, scaled(60_000));

  it('once the cause is gone (a trigger that refused the row is dropped), the projector carries on by itself', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wearon-unstuck-'));
    const store = openSqliteEventStore({ path: join(dir, 'ledger.sqlite') });
    const rm = openSqliteReadModel({ path: join(dir, 'readmodels.sqlite') });
    const { logger, lines } = capturingLogger();
    const metrics = createMetrics();
    const projector = new Projector({ store, readModel: rm, projection: PROJECTIONS['credit-balances'], logger, metrics, stuckRetryMaxMs: 200 });
    try {
      await rm.migrate();
      await rm.query(`CREATE TRIGGER refuse_big BEFORE INSERT ON credit_accounts WHEN NEW.balance > 100 BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`);
      const a = `user:${randomUUID()}`;
      await appendRaw(store, a, 'CreditsGranted', { amount: 3, reason: 'purchase', reference: 'r1' });
      const big = await appendRaw(store, `user:${randomUUID()}`, 'CreditsGranted', { amount: 500, reason: 'purchase', reference: 'r2' });
      await appendRaw(store, a, 'CreditsGranted', { amount: 4, reason: 'purchase', reference: 'r3' });
      projector.start();
      expect(await waitFor('the projector to stop at the event', () => projector.failure)).toMatchObject({ eventId: big, error: 'refused by the test' });
      expect((await metrics.projectionStuck.get()).values[0]!.value).toBe(1);
      await rm.query('DROP TRIGGER refuse_big');
      await waitFor('the projector to carry on', async () => (await projectionStatus(store, rm)).find((s) => s.projection === 'credit-balances')!.lag === 0);
      await waitFor('the failure to clear', () => projector.failure === null);
      expect((await projectionStatus(store, rm)).find((s) => s.projection === 'credit-balances')!.failure).toBeNull();
      expect((await metrics.projectionStuck.get()).values[0]!.value).toBe(0);
      expect(lines.find((l) => l.msg === 'projection_unstuck')).toMatchObject({ event: { eventId: big } });
      expect((await rm.query('SELECT balance FROM credit_accounts ORDER BY balance')).map((r) => r.balance)).toEqual([7, 500]);
    } finally {
      await projector.stop();
      await rm.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, scaled(60_000));

  it('verify reports a projection that is behind (no projector running) and waits for one that catches up', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wearon-behind-'));
    const store = openSqliteEventStore({ path: join(dir, 'ledger.sqlite') });
    const rm = openSqliteReadModel({ path: join(dir, 'readmodels.sqlite') });
    const { logger } = capturingLogger();
    const projectors = Object.values(PROJECTIONS).map((projection) => new Projector({ store, readModel: rm, projection, logger }));
    try {
      await rm.migrate();
      for (let i = 0; i < 3; i++) await appendRaw(store, `user:${randomUUID()}`, 'CreditsGranted', { amount: 3, reason: 'purchase', reference: `r${i}` });
      const drifts = await verifyReadModels(store, rm, logger, { catchUpMs: 0 });
      expect(drifts.filter((d) => d.kind === 'behind').map((d) => [d.projection, d.behind, d.actual, d.expected])).toEqual(
        Object.keys(PROJECTIONS).map((name) => [name, 3, null, '2/2']),
      );
      for (const p of projectors) p.start();
      expect(await verifyReadModels(store, rm, logger, { catchUpMs: 10_000 })).toEqual([]);
    } finally {
      for (const p of projectors) await p.stop();
      await rm.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, scaled(60_000));
});

describe('a batch that reaches back before the checkpoint', () => {
  it('applies only its fresh events, even when one it is already past cannot be decoded', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wearon-stuck-behind-'));
    const store = openSqliteEventStore({ path: join(dir, 'ledger.sqlite') });
    const rm = openSqliteReadModel({ path: join(dir, 'readmodels.sqlite') });
    const target = liveTarget(PROJECTIONS['credit-balances']);
    try {
      await rm.migrate();
      const a = `user:${randomUUID()}`;
      await appendRaw(store, a, 'CreditsGranted', { amount: 3, reason: 'purchase', reference: 'r1' });
      const poison = await appendRaw(store, a, 'CreditsGranted', { amount: 'three', reason: 'purchase', reference: 'r2' });
      await appendRaw(store, a, 'CreditsGranted', { amount: 4, reason: 'purchase', reference: 'r3' });
      const batch = await readAfter(store, START, 10);
      const past = batch.find((e) => e.id === poison)!.position;
      // The projection is past the poison (e.g. another instance moved on), and this instance's batch still holds it.
      await rm.transaction(async (tx) => (await tx.lockCheckpoint(target.checkpoint), tx.setCheckpoint(target.checkpoint, past, 2)));
      expect(await rm.transaction((tx) => commitBatch(tx, target, past, batch))).toBe(1);
      expect(await rm.query('SELECT balance FROM credit_accounts WHERE account = ?', [a])).toEqual([{ balance: 4 }]);
    } finally {
      await rm.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// `serve`'s projectors in a worker thread (src/compose/projectionThread.ts): they project what the worker appends,
// answer /health and /metrics through the main thread, log through its logger, come back after the thread dies, and a
// thread that cannot start fails the start with its reason.
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AggregateRepository } from '../../src/app/aggregates.ts';
import { grantCredits } from '../../src/app/credits.ts';
import { openEventStore } from '../../src/compose/ledger.ts';
import { startProjectionThread } from '../../src/compose/projectionThread.ts';
import { openReadModel } from '../../src/compose/readModel.ts';
import { startService, type Service } from '../../src/compose/service.ts';
import { loadConfig } from '../../src/config.ts';
import { createLogger, silentLogger } from '../../src/logger.ts';
import { freePort, tempDir, waitFor } from '../support/stack.ts';

const USER = '00000000-0000-4000-8000-0000000007a1';
const ctx = { requestId: 'test', workerId: 'test' };

/** A logger whose lines the test can read. */
function capturingLogger(): { logger: ReturnType<typeof createLogger>; lines: () => Array<Record<string, unknown>> } {
  const out: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _e, done) {
      out.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  return { logger: createLogger({ level: 'info', stream }), lines: () => out.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe('serve: the projectors in a thread of their own', () => {
  let service: Service;
  let base: string;
  const log = capturingLogger();

  beforeAll(async () => {
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    const config = loadConfig({ DATA_DIR: tempDir('projection-thread'), HOST: '127.0.0.1', PORT: String(port), POSE_ENABLED: 'false', VERIFY_INTERVAL_MS: '0' });
    expect(config.PROJECTIONS_THREAD).toBe(true); // the default
    service = await startService(config, { http: true, worker: true, projections: true }, log.logger);
  });
  afterAll(() => service?.stop());

  it('projects what this process appends; /health, /metrics and the logs come through the main thread', async () => {
    const grant = await fetch(`${base}/v1/accounts/user:${USER}/grants`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ amount: 7, reason: 'purchase', reference: 'thread-1' }),
    });
    expect(grant.status).toBe(201);
    await waitFor('the grant in the credit-balances read model', async () => {
      const { projections } = (await (await fetch(`${base}/v1/projections`)).json()) as { projections: Array<{ projection: string; events: number }> };
      return projections.find((p) => p.projection === 'credit-balances')?.events === 1;
    });
    const health = (await waitFor('the projections probe', async () => {
      const h = (await (await fetch(`${base}/health`)).json()) as { checks: Record<string, { ok: boolean; active?: string[] }> };
      return h.checks.projections?.ok && h;
    })) as { checks: Record<string, { active?: string[] }> };
    expect(health.checks.projections!.active).toEqual(['session-status', 'credit-balances', 'credit-history']);

    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/^wearon_projection_events_total\{projection="credit-balances"\} 1$/m);
    // one family each: the thread's metrics are merged into this process's, not appended as a second copy
    expect(metrics.match(/^# TYPE wearon_projection_events_total /gm)).toHaveLength(1);
    expect(metrics.match(/^# TYPE wearon_process_cpu_seconds_total /gm)).toHaveLength(1);

    const locked = log.lines().filter((l) => l.msg === 'projection_lock_acquired');
    expect(locked.map((l) => l.projection).sort()).toEqual(['credit-balances', 'credit-history', 'session-status']);
    expect(locked.every((l) => l.thread === 'projections' && l.worker_id === service.workerId)).toBe(true);
  });
});

describe('the projection thread on its own', () => {
  it('is restarted after it dies, fails the probe meanwhile, and carries on from its checkpoints', async () => {
    const dataDir = tempDir('projection-thread-restart');
    const config = loadConfig({ DATA_DIR: dataDir, POSE_ENABLED: 'false' });
    const log = capturingLogger();
    const store = await openEventStore(config, silentLogger());
    const readModel = await openReadModel(config, silentLogger());
    const thread = await startProjectionThread(config, store.value, log.logger);
    const repo = new AggregateRepository(store.value);
    const balanceOf = async () => (await readModel.value.query('SELECT balance FROM credit_accounts WHERE account = ?', [`user:${USER}`]))[0]?.balance;
    try {
      await grantCredits(repo, `user:${USER}`, { amount: 3, reason: 'purchase', reference: 'r-1' }, ctx);
      await waitFor('the first grant projected', async () => (await balanceOf()) === 3);

      await thread.value.terminate();
      await expect(thread.value.probe()).rejects.toThrow(/not running/);
      await grantCredits(repo, `user:${USER}`, { amount: 4, reason: 'purchase', reference: 'r-2' }, ctx);
      // The dead thread's SQLite read-model locks go stale first (15 s, as after a crash of the process).
      await waitFor('the second grant projected by the restarted thread', async () => (await balanceOf()) === 7, 60_000);
      await waitFor('the probe healthy again', () => thread.value.probe().then(() => true, () => false));
      expect(log.lines().filter((l) => l.msg === 'projection_thread_exited')).toHaveLength(1);
    } finally {
      await thread.close();
      await readModel.close();
      await store.close();
    }
  });

  it('fails the start with the reason when its projectors cannot start', async () => {
    const config = loadConfig({ DATA_DIR: tempDir('projection-thread-fail'), POSE_ENABLED: 'false', DATABASE_URL: `postgres://nobody@127.0.0.1:${await freePort()}/none` });
    const store = await openEventStore(config, silentLogger());
    try {
      await expect(startProjectionThread(config, store.value, silentLogger())).rejects.toThrow(/ECONNREFUSED|connect/);
    } finally {
      await store.close();
    }
  });
});

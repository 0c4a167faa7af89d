// On EventStoreDB (the in-process stand-in with the real client), /metrics counts each append once: the aggregate
// repository is the one owner of the append metrics, the adapter counts only its own resubscriptions.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { startService, type Service } from '../../src/compose/service.ts';
import { loadConfig } from '../../src/config.ts';
import { silentLogger } from '../../src/logger.ts';
import { startFakeEsdb, type FakeEsdb } from '../support/fakeEsdb/index.ts';
import { freePort, tempDir } from '../support/stack.ts';

describe('append metrics on EventStoreDB', () => {
  let fake: FakeEsdb;
  let service: Service;
  let base: string;
  const dataDir = tempDir('esdb-metrics');

  beforeAll(async () => {
    fake = await startFakeEsdb();
    const port = await freePort();
    const config = loadConfig({ DATA_DIR: dataDir, HOST: '127.0.0.1', PORT: String(port), EVENTSTORE_URL: fake.connectionString, POSE_ENABLED: 'false' });
    service = await startService(config, { http: true, worker: false, projections: false }, silentLogger());
    base = `http://127.0.0.1:${port}`;
  });
  afterAll(async () => {
    await service?.stop();
    await fake?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('counts every appended event once', async () => {
    for (const reference of ['m-1', 'm-2', 'm-3']) {
      const r = await fetch(`${base}/v1/accounts/user:metrics/grants`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ amount: 1, reason: 'purchase', reference }),
      });
      expect(r.status).toBe(201);
    }
    // a repeated reference appends nothing, and counts nothing
    expect((await fetch(`${base}/v1/accounts/user:metrics/grants`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ amount: 1, reason: 'purchase', reference: 'm-1' }) })).status).toBe(200);
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(text).toMatch(/^wearon_ledger_append_seconds_count\{store="esdb"\} 3$/m);
    expect(text).toMatch(/^wearon_ledger_append_conflicts_total 0$/m);
  });
});

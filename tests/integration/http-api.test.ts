// The /v1 API in-process on the real service composition (SQLite ledger): bearer-token guard, the one error shape,
// request ids, and the grant -> account -> statement path.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { silentLogger } from '../../src/logger.ts';
import { startService, type Service } from '../../src/compose/service.ts';
import { freePort, tempDir } from '../support/stack.ts';

describe('/v1 with API_TOKEN', () => {
  let service: Service;
  let base: string;
  const token = 'test-token-0123456789';
  const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };

  beforeAll(async () => {
    const port = await freePort();
    const config = loadConfig({ DATA_DIR: tempDir('http'), HOST: '127.0.0.1', PORT: String(port), API_TOKEN: token, POSE_ENABLED: 'false' });
    service = await startService(config, { http: true, worker: true, projections: false }, silentLogger());
    base = `http://127.0.0.1:${port}`;
  });
  afterAll(() => service.stop());

  it('refuses a missing or wrong token with the JSON error shape, and echoes the caller request id', async () => {
    for (const headers of [{}, { authorization: 'Bearer nope' }, { authorization: token }] as Record<string, string>[]) {
      const r = await fetch(`${base}/v1/accounts/user:a`, { headers: { ...headers, 'x-request-id': 'req_abc-1' } });
      expect(r.status).toBe(401);
      expect(r.headers.get('x-request-id')).toBe('req_abc-1');
      expect(await r.json()).toEqual({ error: { code: 'unauthorized', message: expect.any(String) }, request_id: 'req_abc-1' });
    }
  });

  it('grants idempotently and reads the account and its statement', async () => {
    const grant = (reference: string) =>
      fetch(`${base}/v1/accounts/store:s1/grants`, { method: 'POST', headers: auth, body: JSON.stringify({ amount: 7, reason: 'subscription', reference }) });
    expect((await grant('sub-1')).status).toBe(201);
    expect((await grant('sub-1')).status).toBe(200);
    const account = (await (await fetch(`${base}/v1/accounts/store:s1`, { headers: auth })).json()) as { balance: number; granted: number };
    expect(account).toMatchObject({ balance: 7, granted: 7 });
    const st = (await (await fetch(`${base}/v1/accounts/store:s1/statement`, { headers: auth })).json()) as { lines: { type: string; balance: number }[] };
    expect(st.lines).toEqual([expect.objectContaining({ type: 'CreditsGranted', balance: 7, reference: 'sub-1' })]);
  });

  it("store uninstall over HTTP: recorded once, then the store's tasks answer 422 store_uninstalled, nothing charged", async () => {
    const store = '5f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0';
    const task = { task_id: 't', channel: 'b2b', store_id: store, session_id: 's-later-1', image_urls: ['https://x.test/m.jpg'], prompt: '', request_id: 'r-1', version: 1, created_at: new Date().toISOString() };
    const uninstall = () => fetch(`${base}/v1/stores/${store}/uninstall`, { method: 'POST', headers: auth, body: JSON.stringify({ reference: 'shopify-1' }) });
    const first = await uninstall();
    expect(first.status).toBe(200);
    expect(await first.json()).toMatchObject({ applied: true, ended: {}, store: { store_id: store, uninstalled_at: expect.any(String) } });
    expect(await (await uninstall()).json()).toMatchObject({ applied: false });
    const later = await fetch(`${base}/v1/generations`, { method: 'POST', headers: auth, body: JSON.stringify(task) });
    expect(later.status).toBe(422);
    const body = (await later.json()) as { error: { code: string; message: string } };
    expect(body.error).toMatchObject({ code: 'store_uninstalled', message: expect.stringContaining(`store ${store} was uninstalled`) });
    expect((await fetch(`${base}/v1/accounts/store:${store}`, { headers: auth })).status).toBe(404); // no movement at all
    expect(await (await fetch(`${base}/v1/stores/${store}`, { headers: auth })).json()).toMatchObject({ exists: true, billing: null });
    expect((await fetch(`${base}/v1/stores/${store}/uninstall`, { method: 'POST', headers: auth, body: '{}' })).status).toBe(400);
  });

  it('answers bad input with 400 and field errors, unknown accounts and routes with 404', async () => {
    const bad = await fetch(`${base}/v1/accounts/store:s1/grants`, { method: 'POST', headers: auth, body: JSON.stringify({ amount: -1, reason: 'gift' }) });
    expect(bad.status).toBe(400);
    const body = (await bad.json()) as { error: { code: string; details: { fields: { path: string }[] } } };
    expect(body.error.code).toBe('invalid_request');
    expect(body.error.details.fields.map((f) => f.path).sort()).toEqual(['amount', 'reason', 'reference']);
    expect((await fetch(`${base}/v1/accounts/robot:x`, { headers: auth })).status).toBe(400);
    expect((await fetch(`${base}/v1/accounts/user:nobody`, { headers: auth })).status).toBe(404);
    expect((await fetch(`${base}/v1/generations/unknown-session`, { headers: auth })).status).toBe(404);
    const missing = await fetch(`${base}/nope`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe('not_found');
  });
});

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

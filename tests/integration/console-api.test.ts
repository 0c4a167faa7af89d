// The console's HTTP side in-process on the real service composition (SQLite ledger, projections): static files with
// their headers and size budget, the admin API, and the refusals that keep other sites and rebound host names out.
// Requests are shaped as a browser on another origin would send them (Origin, Sec-Fetch-Site, text/plain bodies).
import http from 'node:http';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { hashShopperEmail } from '../../src/domain/streams.ts';
import { CONSOLE_CSP } from '../../src/http/routes/console.ts';
import { silentLogger } from '../../src/logger.ts';
import { startService, type Service } from '../../src/compose/service.ts';
import { freePort, tempDir, waitFor } from '../support/stack.ts';

/** A raw request (fetch cannot set Host or Sec-Fetch-Site the way a browser does). */
function raw(port: number, o: { method?: string; path: string; headers?: Record<string, string>; body?: string }) {
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: o.method ?? 'GET', path: o.path, headers: o.headers ?? {}, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(o.body);
  });
}
const json = (b: Buffer) => JSON.parse(b.toString('utf8'));
const CONSOLE = { 'content-type': 'application/json', 'x-wearon-console': '1' };

describe('console and /v1/admin without API_TOKEN (loopback mode)', () => {
  let service: Service;
  let port: number;
  let base: string;
  const get = async (p: string) => {
    const r = await fetch(`${base}${p}`);
    return { status: r.status, body: (await r.json()) as Record<string, any> };
  };

  beforeAll(async () => {
    port = await freePort();
    const config = loadConfig({ DATA_DIR: tempDir('console-api'), HOST: '127.0.0.1', PORT: String(port), POSE_ENABLED: 'false', VERIFY_INTERVAL_MS: '0' });
    service = await startService(config, { http: true, worker: true, projections: true }, silentLogger());
    base = `http://127.0.0.1:${port}`;
  });
  afterAll(() => service?.stop());

  it('serves the console with a strict CSP, compression, ETag revalidation, and a first load under 200 KB compressed', async () => {
    const redirect = await raw(port, { path: '/console', headers: { host: `127.0.0.1:${port}` } });
    expect(redirect.status).toBe(302);
    expect(redirect.headers.location).toBe('/console/');
    const page = await raw(port, { path: '/console/', headers: { host: `localhost:${port}`, 'accept-encoding': 'gzip' } });
    expect(page.status).toBe(200);
    expect(page.headers['content-security-policy']).toBe(CONSOLE_CSP);
    expect(CONSOLE_CSP).toMatch(/default-src 'none'.*script-src 'self'/);
    expect(CONSOLE_CSP).not.toMatch(/unsafe-inline|unsafe-eval/);
    expect(page.headers).toMatchObject({ 'content-encoding': 'gzip', 'cache-control': 'no-cache', 'x-frame-options': 'DENY', 'x-content-type-options': 'nosniff' });
    const html = gunzipSync(page.body).toString('utf8');
    expect(html).not.toMatch(/<script>|<style>|\son[a-z]+=/i); // nothing inline for the CSP to refuse
    const again = await raw(port, { path: '/console/', headers: { host: `localhost:${port}`, 'if-none-match': String(page.headers.etag) } });
    expect(again.status).toBe(304);
    // Everything the page loads: itself and the files it links.
    const files = [...html.matchAll(/(?:href|src)="\/console\/([^"]+)"/g)].map((m) => m[1]!);
    expect(files).toEqual(expect.arrayContaining(['app.js', 'style.css', 'api.js']));
    let gz = page.body.length;
    for (const f of new Set(files)) {
      const r = await raw(port, { path: `/console/${f}`, headers: { host: `localhost:${port}`, 'accept-encoding': 'gzip' } });
      expect(r.status, f).toBe(200);
      gz += r.body.length;
    }
    expect(gz).toBeLessThan(200 * 1024);
    expect((await raw(port, { path: '/console/../package.json', headers: { host: `localhost:${port}` } })).status).toBe(404);
  });

  it('refuses requests addressed to another host name (DNS rebinding), reads included', async () => {
    for (const path of ['/console/', '/v1/admin/verify', '/v1/accounts/user:x']) {
      const r = await raw(port, { path, headers: { host: `rebound.example:${port}` } });
      expect(r.status, path).toBe(403);
      expect(json(r.body).error.code).toBe('forbidden_host');
    }
    expect((await raw(port, { path: '/health/live', headers: { host: 'rebound.example' } })).status).toBe(200); // not guarded
  });

  it('refuses cross-site state changes however they are shaped, and starts nothing', async () => {
    const host = `127.0.0.1:${port}`;
    const attempts: { headers: Record<string, string>; body: string; code: string }[] = [
      // an HTML form on another site (text/plain needs no preflight)
      { headers: { host, 'content-type': 'text/plain', origin: 'http://evil.example', 'sec-fetch-site': 'cross-site' }, body: '{}', code: 'cross_site_request' },
      // fetch(..., {mode: 'no-cors'}) from an old browser: no Sec-Fetch-Site, but an Origin
      { headers: { host, 'content-type': 'text/plain', origin: 'http://evil.example' }, body: '{}', code: 'cross_site_request' },
      // a same-site subdomain is still another origin
      { headers: { host, ...CONSOLE, 'sec-fetch-site': 'same-site' }, body: '{}', code: 'cross_site_request' },
      // sandboxed frame
      { headers: { host, ...CONSOLE, origin: 'null' }, body: '{}', code: 'cross_site_request' },
      // no custom header (what any simple request looks like)
      { headers: { host, 'content-type': 'application/json' }, body: '{}', code: 'console_header_required' },
      // the header but not JSON
      { headers: { host, 'content-type': 'text/plain', 'x-wearon-console': '1' }, body: '{}', code: 'json_required' },
    ];
    for (const a of attempts) {
      for (const path of ['/v1/admin/verify', '/v1/admin/projections/credit-balances/replay']) {
        const r = await raw(port, { method: 'POST', path, headers: a.headers, body: a.body });
        expect(r.status, `${path} ${JSON.stringify(a.headers)}`).toBeGreaterThanOrEqual(403);
        expect(json(r.body).error.code).toBe(a.code);
      }
    }
    const grant = await raw(port, {
      method: 'POST',
      path: '/v1/accounts/user:victim/grants',
      headers: { host, 'content-type': 'application/json', origin: 'http://evil.example', 'sec-fetch-site': 'cross-site' },
      body: JSON.stringify({ amount: 5, reason: 'purchase', reference: 'csrf' }),
    });
    expect(grant.status).toBe(403);
    expect((await get('/v1/accounts/user:victim')).status).toBe(404);
    expect((await get('/v1/admin/verify')).body).toMatchObject({ running: null, last: null });
    expect((await get('/v1/admin/replay')).body).toMatchObject({ running: null, last: null });
    // A preflight gets no CORS grant, so a browser never sends the real request.
    const pre = await raw(port, {
      method: 'OPTIONS',
      path: '/v1/admin/verify',
      headers: { host, origin: 'http://evil.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-wearon-console,content-type' },
    });
    expect(pre.headers['access-control-allow-origin']).toBeUndefined();
    expect(pre.headers['access-control-allow-headers']).toBeUndefined();
    // The console itself (same origin) gets through.
    const ok = await raw(port, { method: 'POST', path: '/v1/admin/verify', headers: { host, ...CONSOLE, origin: `http://${host}`, 'sec-fetch-site': 'same-origin' }, body: '{}' });
    expect(ok.status).toBe(202);
    await waitFor('the verification to finish', async () => (await get('/v1/admin/verify')).body.last);
  });

  it('finds accounts (a shopper by store and email, hashed), filters statements, and reports verify and replay', async () => {
    const post = (p: string, body: unknown) => fetch(`${base}${p}`, { method: 'POST', headers: CONSOLE, body: JSON.stringify(body) });
    const found = await post('/v1/admin/accounts/find', { kind: 'shopper', id: 'store9', shopper_email: ' Ann@Example.com ' });
    expect(await found.json()).toEqual({ account: `shopper:store9.${hashShopperEmail('ann@example.com')}` });
    expect((await post('/v1/admin/accounts/find', { kind: 'shopper', id: 'store9' })).status).toBe(400);
    expect((await post('/v1/admin/accounts/find', { kind: 'user', id: 'bad id!' })).status).toBe(400);

    for (const [amount, reference] of [[3, 'a'], [4, 'b'], [5, 'c']] as const) {
      const r = await fetch(`${base}/v1/accounts/user:filter/grants`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ amount, reason: 'purchase', reference }) });
      expect(r.status).toBe(201);
    }
    const desc = await get('/v1/accounts/user:filter/statement?order=desc&limit=2');
    expect(desc.body.lines.map((l: { balance: number }) => l.balance)).toEqual([12, 7]);
    expect(desc.body).toMatchObject({ next_revision: 0, head_revision: 2 });
    expect((await get('/v1/accounts/user:filter/statement?types=CreditsRevoked')).body.lines).toEqual([]);
    expect((await get('/v1/accounts/user:filter/statement?since=2999-01-01')).body.lines).toEqual([]);
    expect((await get('/v1/accounts/user:filter/statement?since=yesterday')).status).toBe(400);
    expect((await get('/v1/accounts/user:filter/statement?types=Gift')).status).toBe(400);
    const csv = await fetch(`${base}/v1/admin/accounts/user:filter/statement.csv?types=CreditsGranted`);
    expect(csv.headers.get('content-disposition')).toBe('attachment; filename="statement-user_filter.csv"');
    expect((await csv.text()).trim().split('\n')).toHaveLength(4);

    const series = await get('/v1/admin/accounts/user:filter/balance-series');
    expect(series.body.points.map((p: { balance: number }) => p.balance)).toEqual([3, 7, 12]);

    // verify: the last result is there with its summary and read-model comparison
    await waitFor('no verification running', async () => (await get('/v1/admin/verify')).body.running === null);
    expect((await post('/v1/admin/verify', {})).status).toBe(202);
    const done = await waitFor('verify to finish', async () => {
      const v = (await get('/v1/admin/verify')).body;
      return v.running === null && v.last?.trigger === 'console' && v.last.result?.summary.events >= 3 && v.last;
    });
    expect(done).toMatchObject({ state: 'done', result: { ok: true, violation_count: 0, drift_count: 0 } });

    // replay: runs to done and swaps in; a second start while one runs answers 409 with the running job
    const started = await post('/v1/admin/projections/credit-balances/replay', {});
    expect(started.status).toBe(202);
    const busy = await post('/v1/admin/projections/session-status/replay', {});
    if (busy.status === 409) expect(((await busy.json()) as any).error).toMatchObject({ code: 'already_running', details: { job: { subject: 'credit-balances' } } });
    else expect(busy.status).toBe(202); // the first one had already finished
    const replayed = await waitFor('replay to finish', async () => {
      const r = (await get('/v1/admin/replay')).body;
      return r.running === null && r.last?.state === 'done' && r.last;
    });
    expect(replayed.result.checkpoint).toMatch(/^\d+\/\d+$/);
    expect((await post('/v1/admin/projections/nope/replay', {})).status).toBe(404);

    expect((await get('/v1/admin/dead-letters')).body.error.code).toBe('no_queue');
    expect((await get('/v1/admin/generations/nope/events')).status).toBe(404);
    const lag = (await get('/v1/admin/charts/lag')).body;
    expect(lag).toMatchObject({ interval_ms: 10_000, window_ms: 3_600_000 });
    expect(lag.samples.length).toBeGreaterThan(0);
    const hours = (await get('/v1/admin/charts/generations?hours=6')).body.hours;
    expect(hours).toHaveLength(6);
  });
});

describe('console and /v1/admin with API_TOKEN', () => {
  let service: Service;
  let port: number;
  const token = 'console-token-0123456789';

  beforeAll(async () => {
    port = await freePort();
    const config = loadConfig({ DATA_DIR: tempDir('console-token'), HOST: '127.0.0.1', PORT: String(port), API_TOKEN: token, POSE_ENABLED: 'false', VERIFY_INTERVAL_MS: '0' });
    service = await startService(config, { http: true, worker: false, projections: false }, silentLogger());
  });
  afterAll(() => service?.stop());

  it('serves the page to anyone, the data only with the token, whatever the host name', async () => {
    const host = 'wearon.example';
    expect((await raw(port, { path: '/console/', headers: { host } })).status).toBe(200);
    const denied = await raw(port, { path: '/v1/admin/verify', headers: { host } });
    expect(denied.status).toBe(401);
    const allowed = await raw(port, { path: '/v1/admin/verify', headers: { host, authorization: `Bearer ${token}` } });
    expect(allowed.status).toBe(200);
    expect(json(allowed.body)).toMatchObject({ running: null, read_models: false });
    // with the token, a cross-site request is still refused before anything runs
    const csrf = await raw(port, { method: 'POST', path: '/v1/admin/verify', headers: { host, authorization: `Bearer ${token}`, ...CONSOLE, 'sec-fetch-site': 'cross-site' }, body: '{}' });
    expect(csrf.status).toBe(403);
    const projections = await raw(port, { path: '/v1/admin/charts/lag', headers: { host, authorization: `Bearer ${token}` } });
    expect(json(projections.body).error.code).toBe('projections_not_running');
  });
});

// Local result store and the signed /files route, through the real fastify server.
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { PipelineError } from '../../src/app/ports/pipeline.ts';
import { createLocalResultStore, loadOrCreateSigningSecret, type LocalResultStore } from '../../src/adapters/storage/local.ts';
import { filesRoutes } from '../../src/http/routes/files.ts';
import { createHttpServer } from '../../src/http/server.ts';
import { createLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';

let dir: string;
let app: FastifyInstance;
let store: LocalResultStore;
let clock = Date.parse('2026-06-01T00:00:00Z');
const ctx = { requestId: 'r' };
const jpeg = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 4, 0xff, 0xd9]);

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'wearon-local-store-'));
  const secret = await loadOrCreateSigningSecret(dir);
  store = createLocalResultStore({ dataDir: dir, publicBaseUrl: 'http://files.test/', secret, now: () => clock });
  app = createHttpServer({ logger: createLogger({ level: 'silent' }), metrics: createMetrics({ defaults: false }) });
  await app.register(filesRoutes({ store }));
  await app.ready();
});
afterAll(async () => {
  await app.close();
  await rm(dir, { recursive: true, force: true });
});

const local = (url: string) => url.replace('http://files.test', '');

describe('signing secret', () => {
  it('is generated once per data dir with mode 0600 and reused', async () => {
    const a = await loadOrCreateSigningSecret(dir);
    const b = await loadOrCreateSigningSecret(dir);
    expect(a).toBe(b);
    expect(a.length).toBeGreaterThanOrEqual(32);
    expect((await stat(path.join(dir, 'url-signing.key'))).mode & 0o777).toBe(0o600);
    expect(await loadOrCreateSigningSecret(dir, 'configured-secret-value')).toBe('configured-secret-value');
  });
});

describe('local result store', () => {
  it('writes, overwrites (upsert) and serves at a signed URL', async () => {
    await store.put('generated/user-1/sess-1.jpg', Buffer.from('first'), 'image/jpeg', ctx);
    await store.put('generated/user-1/sess-1.jpg', jpeg, 'image/jpeg', ctx);
    expect((await readdir(path.join(dir, 'results/generated/user-1'))).sort()).toEqual(['sess-1.jpg']); // no temp files left
    const url = await store.signedUrl('generated/user-1/sess-1.jpg', 21_600, ctx);
    expect(url).toMatch(/^http:\/\/files\.test\/files\/generated\/user-1\/sess-1\.jpg\?expires=\d+&sig=[\w-]+$/);
    clock += 60_000;
    const res = await app.inject({ method: 'GET', url: local(url) });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('image/jpeg');
    expect(res.rawPayload.equals(jpeg)).toBe(true);
  });

  it('answers 410 after expiry and 403 for tampering, in the JSON error shape', async () => {
    await store.put('stores/st-1/generated/s2.jpg', jpeg, 'image/jpeg', ctx);
    const url = local(await store.signedUrl('stores/st-1/generated/s2.jpg', 60, ctx));
    clock += 61_000;
    const expired = await app.inject({ method: 'GET', url });
    expect(expired.statusCode).toBe(410);
    expect(expired.json()).toMatchObject({ error: { code: 'url_expired' }, request_id: expect.any(String) });

    const u = new URL(url, 'http://x');
    const later = String(Number(u.searchParams.get('expires')) + 3600);
    const forgedExpiry = await app.inject({ method: 'GET', url: `${u.pathname}?expires=${later}&sig=${u.searchParams.get('sig')}` });
    expect(forgedExpiry.statusCode).toBe(403);
    expect(forgedExpiry.json().error.code).toBe('invalid_signature');

    const fresh = new URL(local(await store.signedUrl('stores/st-1/generated/s2.jpg', 60, ctx)), 'http://x');
    const otherFile = await app.inject({ method: 'GET', url: `/files/generated/user-1/sess-1.jpg${fresh.search}` });
    expect(otherFile.statusCode).toBe(403);
    const noSig = await app.inject({ method: 'GET', url: fresh.pathname });
    expect(noSig.statusCode).toBe(403);
    const ok = await app.inject({ method: 'GET', url: `${fresh.pathname}${fresh.search}` });
    expect(ok.statusCode).toBe(200);
  });

  it('refuses traversal and odd paths', async () => {
    for (const bad of ['../escape.jpg', 'generated/../../x.jpg', '/abs.jpg', 'a//b.jpg', '.hidden/x.jpg', 'generated/u/.jpg']) {
      const err = await store.put(bad, jpeg, 'image/jpeg', ctx).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PipelineError);
      expect((err as PipelineError).code).toBe('storage_failed');
    }
    for (const url of ['/files/..%2f..%2furl-signing.key?expires=9999999999&sig=x', '/files/%2e%2e/url-signing.key', '/files/generated/user-1/..%2f..%2f..%2furl-signing.key']) {
      const res = await app.inject({ method: 'GET', url });
      expect([403, 404]).toContain(res.statusCode);
      expect(res.body).not.toMatch(/^[0-9a-f]{64}/);
    }
  });

  it('answers 404 for a validly signed URL of a missing file', async () => {
    const url = local(await store.signedUrl('generated/nobody/none.jpg', 60, ctx));
    expect((await app.inject({ method: 'GET', url })).statusCode).toBe(404);
  });
});

// SSRF-safe image download against real local HTTP servers (no mocks): refused address classes, redirects,
// content checks, size caps and timeouts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { blockedReason } from '../../src/adapters/images/ipPolicy.ts';
import { ImageFetchError, safeFetch, sniffImageType } from '../../src/adapters/images/safeFetch.ts';
import { startImageServer, type ImageServer } from '../support/imageServer.ts';

let srv: ImageServer;
let png: Buffer;
let jpeg: Buffer;
const allow = ['127.0.0.1'];

async function fetchError(url: string, opts: Parameters<typeof safeFetch>[1] = { allowHosts: allow }): Promise<ImageFetchError> {
  const err = await safeFetch(url, opts).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ImageFetchError);
  return err as ImageFetchError;
}

beforeAll(async () => {
  srv = await startImageServer();
  png = await sharp({ create: { width: 32, height: 24, channels: 4, background: { r: 255, g: 0, b: 0, alpha: 0.5 } } }).png().toBuffer();
  jpeg = await sharp({ create: { width: 32, height: 24, channels: 3, background: 'blue' } }).jpeg().toBuffer();
  srv.serve('/a.png', png, 'image/png');
  srv.serve('/a.jpg', jpeg, 'image/jpeg; charset=binary');
  srv.serve('/html', Buffer.from('<!doctype html><html><body>hello world</body></html>'), 'text/html');
  srv.serve('/disguised', Buffer.from('<!doctype html><html><body>not a png at all</body></html>'), 'image/png');
  // real image bytes under a non-image content type
  srv.serve('/octet', png, 'application/octet-stream');
  srv.route('/redirect', (_req, res) => {
    res.writeHead(302, { location: srv.url('/a.png') });
    res.end();
  });
  srv.route('/redirect-internal', (_req, res) => {
    res.writeHead(307, { location: 'http://169.254.169.254/latest/meta-data/' });
    res.end();
  });
  srv.route('/500', (_req, res) => {
    res.writeHead(500, { 'content-type': 'text/plain' });
    res.end('boom');
  });
  srv.route('/big-declared', (_req, res) => {
    res.writeHead(200, { 'content-type': 'image/png', 'content-length': 50_000 });
    res.write(png);
    // never finishes: the length alone must be refused
  });
  srv.route('/big-stream', (_req, res) => {
    res.writeHead(200, { 'content-type': 'image/png' }); // chunked, no Content-Length
    res.write(png);
    const chunk = Buffer.alloc(4096, 1);
    const timer = setInterval(() => {
      if (!res.write(chunk)) return;
    }, 1);
    res.on('close', () => clearInterval(timer));
  });
  srv.route('/slow-headers', (_req, res) => {
    const t = setTimeout(() => {
      res.writeHead(200, { 'content-type': 'image/png' });
      res.end(png);
    }, 5_000);
    res.on('close', () => clearTimeout(t));
  });
  srv.route('/stalled-body', (_req, res) => {
    res.writeHead(200, { 'content-type': 'image/png', 'content-length': png.length + 100 });
    res.write(png); // then nothing
  });
});

afterAll(async () => {
  await srv.close();
});

describe('address policy', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.255.0.9', 'loopback'],
    ['10.0.0.1', 'private'],
    ['172.16.5.4', 'private'],
    ['192.168.0.10', 'private'],
    ['100.64.0.1', 'cgnat'],
    ['169.254.169.254', 'link-local'],
    ['0.0.0.0', 'this-network'],
    ['224.0.0.251', 'multicast'],
    ['240.0.0.1', 'reserved'],
    ['255.255.255.255', 'reserved'],
    ['192.0.2.1', 'documentation'],
    ['198.51.100.7', 'documentation'],
    ['203.0.113.9', 'documentation'],
    ['198.18.0.1', 'benchmarking'],
    ['::1', 'loopback'],
    ['::', 'unspecified'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::ffff:10.0.0.1', 'private'],
    ['64:ff9b::a9fe:a9fe', 'link-local'], // NAT64 of 169.254.169.254
    ['2002:c0a8:0101::1', 'private'], // 6to4 of 192.168.1.1
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local'],
    ['fc00::1', 'unique-local'],
    ['fd00:ec2::254', 'unique-local'],
    ['ff02::1', 'multicast'],
    ['2001:db8::1', 'documentation'],
    ['2001::1', 'ietf-protocol'], // Teredo
    ['::127.0.0.1', 'reserved'], // IPv4-compatible (deprecated)
  ])('refuses %s (%s)', (ip, reason) => {
    expect(blockedReason(ip)).toBe(reason);
  });

  it.each(['8.8.8.8', '1.1.1.1', '::ffff:8.8.8.8', '2606:4700:4700::1111', '2a00:1450:4001::200e'])('allows public %s', (ip) => {
    expect(blockedReason(ip)).toBeNull();
  });
});

describe('safeFetch refuses internal targets before connecting', () => {
  it.each([
    'http://127.0.0.1:PORT/a.png',
    'http://localhost:PORT/a.png', // a name that resolves to loopback
    'http://[::1]:PORT/a.png',
    'http://[::ffff:127.0.0.1]:PORT/a.png',
    'http://[fe80::1]:PORT/a.png',
    'http://[fc00::1]:PORT/a.png',
    'http://2130706433:PORT/a.png', // decimal form of 127.0.0.1
    'http://0x7f.1:PORT/a.png',
    'http://169.254.169.254/latest/meta-data/',
    'http://10.0.0.1/x.png',
    'http://100.100.100.200/x.png',
  ])('%s', async (template) => {
    const url = template.replace('PORT', String(srv.port));
    const before = srv.hits.get('/a.png') ?? 0;
    const err = await fetchError(url, {});
    expect(err.code).toBe('blocked_address');
    expect(srv.hits.get('/a.png') ?? 0).toBe(before);
  });

  it('refuses non-http schemes and credentials', async () => {
    expect((await fetchError('file:///etc/passwd')).code).toBe('invalid_url');
    expect((await fetchError('ftp://127.0.0.1/a.png')).code).toBe('invalid_url');
    expect((await fetchError('not a url')).code).toBe('invalid_url');
    expect((await fetchError(`http://user:pw@127.0.0.1:${srv.port}/a.png`)).code).toBe('invalid_url');
  });

  it('reports names that do not resolve', async () => {
    expect((await fetchError('http://no-such-host.invalid/a.png', {})).code).toBe('dns_failed');
  });
});

describe('safeFetch on an allowed host', () => {
  it('downloads a PNG and a JPEG and reports the sniffed type', async () => {
    const a = await safeFetch(srv.url('/a.png'), { allowHosts: allow });
    expect(a.bytes.equals(png)).toBe(true);
    expect(a.contentType).toBe('image/png');
    const b = await safeFetch(srv.url('/a.jpg'), { allowHosts: allow });
    expect(b.contentType).toBe('image/jpeg');
    expect(b.bytes.length).toBe(jpeg.length);
  });

  it('matches allowHosts by name too (localhost)', async () => {
    const a = await safeFetch(`http://localhost:${srv.port}/a.png`, { allowHosts: ['localhost'] });
    expect(a.contentType).toBe('image/png');
  });

  it('does not follow redirects', async () => {
    const before = srv.hits.get('/a.png') ?? 0;
    const err = await fetchError(srv.url('/redirect'));
    expect(err.code).toBe('redirect');
    expect(err.status).toBe(302);
    expect((await fetchError(srv.url('/redirect-internal'))).code).toBe('redirect');
    expect(srv.hits.get('/a.png') ?? 0).toBe(before);
  });

  it('refuses error statuses', async () => {
    const err = await fetchError(srv.url('/500'));
    expect(err.code).toBe('bad_status');
    expect(err.status).toBe(500);
    expect((await fetchError(srv.url('/missing'))).code).toBe('bad_status');
  });

  it('refuses a wrong content type even when the bytes are an image', async () => {
    expect((await fetchError(srv.url('/html'))).code).toBe('not_image');
    expect((await fetchError(srv.url('/octet'))).code).toBe('not_image');
  });

  it('refuses HTML served as image/png (magic bytes disagree)', async () => {
    expect((await fetchError(srv.url('/disguised'))).code).toBe('not_image');
  });

  it('refuses a declared Content-Length above the cap', async () => {
    expect((await fetchError(srv.url('/big-declared'), { allowHosts: allow, maxBytes: 10_000 })).code).toBe('too_large');
  });

  it('aborts a chunked stream once it passes the cap', async () => {
    expect((await fetchError(srv.url('/big-stream'), { allowHosts: allow, maxBytes: 64 * 1024 })).code).toBe('too_large');
  });

  it('times out when headers are late', async () => {
    expect((await fetchError(srv.url('/slow-headers'), { allowHosts: allow, timeoutMs: 300 })).code).toBe('timeout');
  });

  it('times out when the body stalls after headers', async () => {
    expect((await fetchError(srv.url('/stalled-body'), { allowHosts: allow, timeoutMs: 300 })).code).toBe('timeout');
  });

  it("propagates the caller's abort reason", async () => {
    const ctl = new AbortController();
    const reason = new Error('shutting down');
    setTimeout(() => ctl.abort(reason), 50);
    const err = await safeFetch(srv.url('/slow-headers'), { allowHosts: allow, signal: ctl.signal }).catch((e: unknown) => e);
    expect(err).toBe(reason);
  });
});

describe('sniffImageType', () => {
  it('knows the supported formats and nothing else', async () => {
    const webp = await sharp({ create: { width: 4, height: 4, channels: 3, background: 'red' } }).webp().toBuffer();
    const gif = await sharp({ create: { width: 4, height: 4, channels: 3, background: 'red' } }).gif().toBuffer();
    expect(sniffImageType(png)).toBe('image/png');
    expect(sniffImageType(jpeg)).toBe('image/jpeg');
    expect(sniffImageType(webp)).toBe('image/webp');
    expect(sniffImageType(gif)).toBe('image/gif');
    expect(sniffImageType(Buffer.from('%PDF-1.7 ........'))).toBeNull();
  });
});

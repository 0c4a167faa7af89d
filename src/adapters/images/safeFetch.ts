// SSRF-safe download of one image URL (fixes BUG-8 of the original worker).
// - http(s) only, no credentials in the URL;
// - the host is resolved once (all addresses), every address must be public unicast (see ipPolicy.ts), and the
//   socket connects to the address that was checked (custom `lookup`, so there is no second resolution to rebind);
// - no redirects; content type AND magic bytes must both say image; streaming size cap; one total timeout.
// Hosts listed in `allowHosts` skip the address check (development and tests only).
import dns from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { LookupFunction } from 'node:net';
import { blockedReason } from './ipPolicy.ts';

export type ImageFetchErrorCode =
  | 'invalid_url'
  | 'blocked_address'
  | 'dns_failed'
  | 'bad_status'
  | 'redirect'
  | 'not_image'
  | 'too_large'
  | 'timeout'
  | 'network';

export class ImageFetchError extends Error {
  override readonly name = 'ImageFetchError';
  constructor(
    readonly code: ImageFetchErrorCode,
    message: string,
    options: { cause?: unknown; status?: number } = {},
  ) {
    super(message, { cause: options.cause });
    this.status = options.status;
  }
  /** HTTP status for `bad_status` / `redirect`. */
  readonly status: number | undefined;
}

export interface SafeFetchOptions {
  allowHosts?: readonly string[];
  timeoutMs?: number;
  maxBytes?: number;
  signal?: AbortSignal;
}

export interface FetchedImage {
  bytes: Buffer;
  /** The format the bytes really have (from the magic bytes), e.g. `image/jpeg`. */
  contentType: string;
  url: string;
}

export const DEFAULT_MAX_BYTES = 10 * 1024 * 1024;
export const DEFAULT_TIMEOUT_MS = 30_000;

/** Content types we accept in the response header (parameters stripped, lower-cased). */
const IMAGE_TYPES: Record<string, string> = {
  'image/jpeg': 'image/jpeg',
  'image/jpg': 'image/jpeg',
  'image/pjpeg': 'image/jpeg',
  'image/png': 'image/png',
  'image/webp': 'image/webp',
  'image/gif': 'image/gif',
  'image/avif': 'image/avif',
};

/**
 * The image format named by the first bytes, or null. HEIC is deliberately absent: sharp's prebuilt libvips
 * cannot decode HEVC, so such an upload could never be used anyway.
 */
export function sniffImageType(b: Buffer): string | null {
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'image/jpeg';
  if (b.length >= 8 && b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) return 'image/png';
  if (b.length >= 12 && b.toString('latin1', 0, 4) === 'RIFF' && b.toString('latin1', 8, 12) === 'WEBP') return 'image/webp';
  if (b.length >= 6 && /^GIF8[79]a$/.test(b.toString('latin1', 0, 6))) return 'image/gif';
  if (b.length >= 12 && b.toString('latin1', 4, 8) === 'ftyp') {
    const brand = b.toString('latin1', 8, 12);
    if (brand === 'avif' || brand === 'avis') return 'image/avif';
  }
  return null;
}

const hostKey = (h: string) => h.toLowerCase().replace(/^\[|\]$/g, '');

function isAllowed(u: URL, allowHosts: readonly string[] | undefined): boolean {
  if (!allowHosts?.length) return false;
  const host = hostKey(u.hostname);
  const hostPort = `${host}:${u.port || (u.protocol === 'https:' ? '443' : '80')}`;
  return allowHosts.some((a) => {
    const k = hostKey(a.trim());
    return k === host || k === hostPort || a.trim().toLowerCase() === u.host.toLowerCase();
  });
}

function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/** Resolves the host once and returns the address to connect to, after checking every address it has. */
async function resolveChecked(host: string, checkAddresses: boolean, signal: AbortSignal): Promise<{ address: string; family: 4 | 6 }> {
  const literal = net.isIP(host);
  let addresses: { address: string; family: number }[];
  if (literal) addresses = [{ address: host, family: literal }];
  else {
    try {
      addresses = await abortable(dns.promises.lookup(host, { all: true, verbatim: true }), signal);
    } catch (err) {
      if (signal.aborted) throw err;
      throw new ImageFetchError('dns_failed', `cannot resolve ${host}`, { cause: err });
    }
    if (addresses.length === 0) throw new ImageFetchError('dns_failed', `no address for ${host}`);
  }
  if (checkAddresses) {
    for (const a of addresses) {
      const reason = blockedReason(a.address);
      if (reason) throw new ImageFetchError('blocked_address', `refusing to fetch from ${reason} address ${a.address}`);
    }
  }
  const first = addresses[0]!;
  return { address: first.address, family: first.family === 6 ? 6 : 4 };
}

export async function safeFetch(url: string, opts: SafeFetchOptions = {}): Promise<FetchedImage> {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;

  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ImageFetchError('invalid_url', 'not a valid URL');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ImageFetchError('invalid_url', `scheme ${u.protocol} not allowed`);
  if (u.username || u.password) throw new ImageFetchError('invalid_url', 'credentials in URL not allowed');
  const host = hostKey(u.hostname);
  if (!host) throw new ImageFetchError('invalid_url', 'URL has no host');

  const timer = AbortSignal.timeout(timeoutMs);
  const signal = opts.signal ? AbortSignal.any([opts.signal, timer]) : timer;
  // Our timer firing is `timeout`; the caller's own abort propagates as the caller's reason.
  const rethrow = (err: unknown): never => {
    if (opts.signal?.aborted) throw opts.signal.reason;
    if (timer.aborted) throw new ImageFetchError('timeout', `image download exceeded ${timeoutMs} ms`, { cause: err });
    throw err;
  };

  try {
    const target = await resolveChecked(host, !isAllowed(u, opts.allowHosts), signal);
    return await download(u, target, maxBytes, signal);
  } catch (err) {
    return rethrow(err);
  }
}

function download(u: URL, target: { address: string; family: 4 | 6 }, maxBytes: number, signal: AbortSignal): Promise<FetchedImage> {
  // Pin the connection to the checked address; TLS still verifies the certificate against the URL's host name.
  const lookup: LookupFunction = (_hostname, options, cb) => {
    if ((options as { all?: boolean }).all) (cb as (e: null, a: dns.LookupAddress[]) => void)(null, [target]);
    else cb(null, target.address, target.family);
  };
  const mod = u.protocol === 'https:' ? https : http;
  return new Promise<FetchedImage>((resolve, reject) => {
    let settled = false;
    const fail = (err: unknown) => {
      if (settled) return;
      settled = true;
      req.destroy();
      reject(err);
    };
    const req = mod.request(
      u,
      {
        method: 'GET',
        agent: false,
        lookup,
        signal,
        headers: { accept: 'image/*', 'accept-encoding': 'identity', 'user-agent': 'wearon-worker image-fetch' },
      },
      (res) => {
        const status = res.statusCode ?? 0;
        if (status >= 300 && status < 400) return fail(new ImageFetchError('redirect', `redirects are not followed (HTTP ${status})`, { status }));
        if (status < 200 || status >= 300) return fail(new ImageFetchError('bad_status', `image host answered HTTP ${status}`, { status }));
        const declared = IMAGE_TYPES[(res.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase()];
        if (!declared) return fail(new ImageFetchError('not_image', `content type ${JSON.stringify(res.headers['content-type'] ?? '')} is not a supported image`));
        const length = Number(res.headers['content-length']);
        if (Number.isFinite(length) && length > maxBytes) {
          return fail(new ImageFetchError('too_large', `image is ${length} bytes, limit ${maxBytes}`));
        }
        const chunks: Buffer[] = [];
        let size = 0;
        let sniffed: string | null | undefined;
        res.on('data', (chunk: Buffer) => {
          if (settled) return;
          size += chunk.length;
          if (size > maxBytes) return fail(new ImageFetchError('too_large', `image exceeds ${maxBytes} bytes`));
          chunks.push(chunk);
          // Reject a non-image as soon as enough bytes are in, instead of buffering up to the cap.
          if (sniffed === undefined && size >= 16) {
            sniffed = sniffImageType(Buffer.concat(chunks));
            if (!sniffed) fail(new ImageFetchError('not_image', 'body is not an image (magic bytes)'));
          }
        });
        res.on('end', () => {
          if (settled) return;
          const bytes = Buffer.concat(chunks);
          const kind = sniffed ?? sniffImageType(bytes);
          if (!kind) return fail(new ImageFetchError('not_image', 'body is not an image (magic bytes)'));
          settled = true;
          resolve({ bytes, contentType: kind, url: u.href });
        });
        res.on('error', (err) => fail(new ImageFetchError('network', 'image download failed', { cause: err })));
        res.on('aborted', () => fail(new ImageFetchError('network', 'image download aborted by the server')));
      },
    );
    req.on('error', (err) => fail(signal.aborted ? err : new ImageFetchError('network', `cannot download image: ${(err as NodeJS.ErrnoException).code ?? err.message}`, { cause: err })));
    req.end();
  });
}

// /console: the finance and ops console, plain HTML/CSS/ES modules from src/console (copied to dist/console by the
// build), loaded into memory at start with gzip and brotli copies. Without API_TOKEN it answers loopback clients only,
// like /v1; with a token the page itself is public (it holds no data) and every call it makes carries the token.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { HttpError } from '../errors.ts';
import { bearerAuth } from '../auth.ts';

export const CONSOLE_DIR = fileURLToPath(new URL('../../console/', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** Scripts and styles from this origin only, no inline code, no framing; calls go to this origin only. */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  // result previews: local signed /files/ URLs, or Supabase Storage over https
  "img-src 'self' https: data:",
  "connect-src 'self'",
  "form-action 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');

export interface ConsoleAsset {
  name: string;
  type: string;
  etag: string;
  raw: Buffer;
  gzip: Buffer;
  br: Buffer;
}

/** Every file of the console, compressed once. The bench reports their sizes (the first load fetches them all). */
export function loadConsoleAssets(dir = CONSOLE_DIR): Map<string, ConsoleAsset> {
  const assets = new Map<string, ConsoleAsset>();
  for (const name of readdirSync(dir)) {
    const type = TYPES[path.extname(name)];
    if (!type) continue;
    const raw = readFileSync(path.join(dir, name));
    assets.set(name, {
      name,
      type,
      etag: `"${createHash('sha256').update(raw).digest('base64url').slice(0, 22)}"`,
      raw,
      gzip: gzipSync(raw, { level: 9 }),
      br: brotliCompressSync(raw, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }),
    });
  }
  if (!assets.has('index.html')) throw new Error(`console assets missing: no index.html in ${dir}`);
  return assets;
}

function send(req: FastifyRequest, reply: FastifyReply, a: ConsoleAsset) {
  void reply
    .header('content-type', a.type)
    .header('etag', a.etag)
    // revalidate every time: file names carry no version, and a 304 costs one small round trip
    .header('cache-control', 'no-cache')
    .header('vary', 'accept-encoding')
    .header('content-security-policy', CONSOLE_CSP)
    .header('x-content-type-options', 'nosniff')
    .header('x-frame-options', 'DENY')
    .header('referrer-policy', 'no-referrer')
    .header('cross-origin-opener-policy', 'same-origin')
    .header('cross-origin-resource-policy', 'same-origin')
    .header('permissions-policy', 'camera=(), microphone=(), geolocation=(), payment=()');
  if (req.headers['if-none-match'] === a.etag) return reply.code(304).send();
  const accept = String(req.headers['accept-encoding'] ?? '');
  if (/\bbr\b/.test(accept)) return reply.header('content-encoding', 'br').send(a.br);
  if (/\bgzip\b/.test(accept)) return reply.header('content-encoding', 'gzip').send(a.gzip);
  return reply.send(a.raw);
}

export function consoleRoutes(o: { apiToken?: string; assets?: Map<string, ConsoleAsset> }): FastifyPluginAsync {
  const assets = o.assets ?? loadConsoleAssets();
  return async (app) => {
    // The page holds no data: with a token it loads freely (every call it makes sends the token); without, loopback only.
    if (!o.apiToken) await app.register(bearerAuth(undefined));
    app.get('/console', async (_req, reply) => reply.redirect('/console/', 302));
    app.get('/console/', async (req, reply) => send(req, reply, assets.get('index.html')!));
    app.get<{ Params: { file: string } }>('/console/:file', async (req, reply) => {
      const a = assets.get(req.params.file);
      if (!a) throw new HttpError(404, 'not_found', `no console file ${req.params.file}`);
      return send(req, reply, a);
    });
  };
}

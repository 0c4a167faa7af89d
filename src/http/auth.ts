// The /v1 guard, as a fastify plugin: registered inside a route plugin, it requires the bearer token (API_TOKEN) on every
// route of that plugin; without a token configured, only loopback clients are answered.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { HttpError } from './errors.ts';

const LOOPBACK = /^(127\.|::1$|::ffff:127\.)/;

function tokenMatches(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

function authorize(req: FastifyRequest, apiToken: string | undefined): void {
  if (!apiToken) {
    if (LOOPBACK.test(req.socket.remoteAddress ?? '')) return;
    throw new HttpError(401, 'unauthorized', 'no API_TOKEN is configured: /v1 answers loopback clients only');
  }
  const header = req.headers.authorization ?? '';
  const m = /^Bearer\s+(.+)$/i.exec(header);
  if (!m || !tokenMatches(m[1]!.trim(), apiToken)) {
    throw new HttpError(401, 'unauthorized', 'a valid bearer token is required', undefined, { 'www-authenticate': 'Bearer' });
  }
}

export function bearerAuth(apiToken: string | undefined): FastifyPluginAsync {
  const plugin: FastifyPluginAsync = async (app) => {
    app.addHook('onRequest', async (req) => authorize(req, apiToken));
  };
  // Not encapsulated (what fastify-plugin does): the hook belongs to the plugin that registers the guard.
  return Object.assign(plugin, { [Symbol.for('skip-override')]: true });
}

// What a browser can make the service do. The console and the API live on one origin, and the service sends no CORS
// headers, so other sites cannot read responses; these guards stop them from *sending* requests that count:
// - without API_TOKEN, loopback is the only access control, and a page open in the operator's browser can reach
//   http://localhost. A site whose name resolves to 127.0.0.1 (DNS rebinding) would even be same-origin, so the Host
//   header must name the loopback interface;
// - a state-changing request (anything but GET/HEAD/OPTIONS) is refused when the browser says it comes from another
//   site (Sec-Fetch-Site) or another origin (Origin). Clients that are not browsers send neither header;
// - the console's actions (replay, re-drive, verify) also need a custom header and a JSON body, which no form and no
//   "simple" cross-origin request can carry (either would need a CORS preflight, which is never granted).
import type { FastifyReply, FastifyRequest } from 'fastify';
import { HttpError } from './errors.ts';

export const CONSOLE_HEADER = 'x-wearon-console';

const LOOPBACK_HOST = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\])(?::\d{1,5})?$/i;
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
const guarded = (url: string) => url.startsWith('/v1/') || url === '/console' || url.startsWith('/console/');

export function browserGuard(o: { apiToken?: string }) {
  return async (req: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    if (!guarded(req.url)) return;
    if (!o.apiToken && !LOOPBACK_HOST.test(req.headers.host ?? '')) {
      throw new HttpError(403, 'forbidden_host', 'without API_TOKEN the service answers only requests addressed to localhost');
    }
    if (SAFE_METHODS.has(req.method)) return;
    const site = req.headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin' && site !== 'none') {
      throw new HttpError(403, 'cross_site_request', `refused a ${site} request: send it from the console or a non-browser client`);
    }
    const origin = req.headers.origin;
    if (origin !== undefined && originHost(origin) !== req.headers.host?.toLowerCase()) {
      throw new HttpError(403, 'cross_site_request', 'refused a request from another origin');
    }
  };
}

function originHost(origin: string): string | null {
  try {
    return new URL(origin).host.toLowerCase();
  } catch {
    return null; // "null" (sandboxed frames, file://) and garbage never match
  }
}

/** For the console's state-changing endpoints: the custom header and a JSON body (see the file header). */
export function requireConsoleRequest(req: FastifyRequest): void {
  if (req.headers[CONSOLE_HEADER] !== '1') {
    throw new HttpError(403, 'console_header_required', `state-changing admin requests need the header ${CONSOLE_HEADER}: 1`);
  }
  if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) {
    throw new HttpError(415, 'json_required', 'send a JSON body (content-type: application/json)');
  }
}

// A stand-in for the OpenAI images edit endpoint (POST /v1/images/edits) on 127.0.0.1, scriptable per call.
// The real `openai` SDK talks to it through baseURL `fake.baseURL`. Multipart in (repeated `image[]` parts or a
// single `image` part, plus text fields), JSON out with `content-type: application/json` (the SDK returns a raw
// string otherwise). Every request is recorded.
// Not imitated: authentication (any bearer is accepted but recorded), streaming (`stream: true`), response_format
// `url`, mask images, field validation beyond what the tests need, and the real model's output.
import http from 'node:http';
import sharp from 'sharp';
import { listenOnLoopback, readBody, serveSafely } from './loopback.ts';

export type FakeStep =
  | { kind: 'success'; image?: Buffer; usage?: Record<string, unknown> | null }
  | { kind: 'rate_limit'; retryAfter?: string }
  | { kind: 'server_error'; status?: number; body?: string }
  | { kind: 'moderation' }
  | { kind: 'error'; status: number; body: unknown }
  /** answer (with a success) only after `delayMs` */
  | { kind: 'slow_headers'; delayMs: number }
  /** send 200 headers and part of the body, then nothing */
  | { kind: 'stall_body' }
  /** close the connection without an answer */
  | { kind: 'drop' };

export interface RecordedRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  fields: Record<string, string>;
  files: { field: string; filename: string; type: string; bytes: Buffer }[];
  at: number;
}

export const DEFAULT_USAGE = {
  input_tokens: 1_500,
  output_tokens: 1_600,
  total_tokens: 3_100,
  input_tokens_details: { text_tokens: 100, image_tokens: 1_400 },
  output_tokens_details: { text_tokens: 0, image_tokens: 1_600 },
};

export interface FakeOpenAI {
  /** `http://127.0.0.1:PORT/v1`, for the SDK's baseURL / OPENAI_BASE_URL */
  baseURL: string;
  /** Queue behaviours for the next calls; when the queue is empty `fallback` decides (default: success). */
  script(...steps: FakeStep[]): void;
  /** What unscripted calls do, e.g. a random mix of faults for crash tests: `(n) => n % 10 === 0 ? {kind:'server_error'} : {kind:'success'}`. */
  setFallback(fallback: (callIndex: number) => FakeStep): void;
  /** Every answer (success or fault) comes this long after the request, like a real image model's latency. Default 0. */
  setLatency(ms: number): void;
  requests: RecordedRequest[];
  /** Connections open on the server side. */
  openConnections(): number;
  /** The image returned by default (a small JPEG). */
  defaultImage: Buffer;
  close(): Promise<void>;
}

export async function startFakeOpenAI(options: { image?: Buffer } = {}): Promise<FakeOpenAI> {
  const defaultImage =
    options.image ?? (await sharp({ create: { width: 64, height: 96, channels: 3, background: '#884422' } }).jpeg().toBuffer());
  const queue: FakeStep[] = [];
  let fallback: (callIndex: number) => FakeStep = () => ({ kind: 'success' });
  let latencyMs = 0;
  const requests: RecordedRequest[] = [];
  const timers = new Set<NodeJS.Timeout>();

  const json = (res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'x-request-id': `req_fake_${requests.length}`, ...headers });
    res.end(text);
  };
  const success = (res: http.ServerResponse, step?: { image?: Buffer; usage?: Record<string, unknown> | null }) => {
    const body: Record<string, unknown> = {
      created: Math.floor(Date.now() / 1000),
      data: [{ b64_json: (step?.image ?? defaultImage).toString('base64') }],
      output_format: 'jpeg',
    };
    if (step?.usage !== null) body.usage = step?.usage ?? DEFAULT_USAGE;
    json(res, 200, body);
  };

  const server = http.createServer(serveSafely(async (req, res) => {
    const raw = await readBody(req);
    if (!raw) return; // the caller went away mid-request (e.g. the service was SIGKILLed mid-upload)
    const path = (req.url ?? '').split('?')[0]!;
    if (req.method !== 'POST' || path !== '/v1/images/edits') {
      json(res, 404, { error: { message: `no route ${req.method} ${path}`, type: 'invalid_request_error', code: null } });
      return;
    }
    const rec: RecordedRequest = { method: req.method, path, headers: req.headers, fields: {}, files: [], at: Date.now() };
    try {
      const form = await new Response(raw, { headers: { 'content-type': req.headers['content-type'] ?? '' } }).formData();
      for (const [name, value] of form.entries()) {
        if (typeof value === 'string') rec.fields[name] = value;
        else rec.files.push({ field: name, filename: value.name, type: value.type, bytes: Buffer.from(await value.arrayBuffer()) });
      }
    } catch {
      json(res, 400, { error: { message: 'could not parse multipart body', type: 'invalid_request_error', code: null } });
      return;
    }
    requests.push(rec);
    const step = queue.shift() ?? fallback(requests.length - 1);
    if (latencyMs > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => (timers.delete(t), resolve()), latencyMs);
        timers.add(t);
      });
      if (res.destroyed) return;
    }
    switch (step.kind) {
      case 'success':
        return success(res, step);
      case 'rate_limit':
        return json(
          res,
          429,
          { error: { message: 'Rate limit reached for images', type: 'requests', code: 'rate_limit_exceeded' } },
          step.retryAfter !== undefined ? { 'retry-after': step.retryAfter } : {},
        );
      case 'server_error':
        res.writeHead(step.status ?? 500, { 'content-type': 'application/json' });
        res.end(step.body ?? JSON.stringify({ error: { message: 'The server had an error', type: 'server_error', code: null } }));
        return;
      case 'moderation':
        return json(res, 400, {
          error: {
            message: 'Your request was rejected by the safety system. secret-internal-detail',
            type: 'image_generation_user_error',
            param: null,
            code: 'moderation_blocked',
          },
        });
      case 'error':
        return json(res, step.status, step.body);
      case 'slow_headers': {
        const t = setTimeout(() => {
          timers.delete(t);
          if (!res.destroyed) success(res);
        }, step.delayMs);
        timers.add(t);
        return;
      }
      case 'stall_body':
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': 100_000 });
        res.write('{"created":1,"data":[{"b64_json":"');
        return;
      case 'drop':
        req.socket.destroy();
        return;
    }
  }));
  const listening = await listenOnLoopback(server);
  const port = listening.port;
  return {
    baseURL: `http://127.0.0.1:${port}/v1`,
    script: (...steps) => queue.push(...steps),
    setFallback: (f) => {
      fallback = f;
    },
    setLatency: (ms) => {
      latencyMs = ms;
    },
    requests,
    openConnections: listening.openConnections,
    defaultImage,
    close: () => {
      for (const t of timers) clearTimeout(t);
      return listening.close();
    },
  };
}

// Slow clients are cut (issue 11 item 4): real sockets against the real service, with deadlines small enough to test
// (HTTP_*_TIMEOUT_MS). Each wait is a deadline on observed socket state; the trickling is the client's behaviour.
import net from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, HTTP_TIMEOUT_DEFAULTS, loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { startService, type Service } from '../../src/compose/service.ts';
import { freePort, tempDir } from '../support/stack.ts';
import { scaled } from '../support/deadlines.ts';

const T = { headers: 400, request: 800, idle: 3_000, keepAlive: 500 };
/** Far above every configured deadline (and Node's check interval), far below "never" (the probe waited 125 s). */
const DEADLINE_MS = scaled(15_000);

interface Outcome {
  /** ms from the first byte sent (or the connect) to the close */
  afterMs: number;
  answer: string;
}

/** Connects and runs `client` (which may keep writing); resolves when the server closes the socket, or rejects at the deadline. */
function until_closed(port: number, client: (socket: net.Socket) => void): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    let started = 0;
    const deadline = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the server kept a slow client's socket open for ${DEADLINE_MS} ms`));
    }, DEADLINE_MS);
    socket.on('connect', () => {
      started = performance.now();
      client(socket);
    });
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', () => undefined); // a reset after the answer still counts as closed
    socket.on('close', () => {
      clearTimeout(deadline);
      resolve({ afterMs: performance.now() - started, answer: Buffer.concat(chunks).toString('latin1') });
    });
  });
}

/** Writes `text` one byte every `everyMs` until the socket closes. */
function trickle(socket: net.Socket, text: string, everyMs = 50): void {
  let i = 0;
  const timer = setInterval(() => {
    if (socket.destroyed || i >= text.length) return clearInterval(timer);
    socket.write(text[i++]!);
  }, everyMs);
  socket.on('close', () => clearInterval(timer));
}

function expect408(answer: string): void {
  const [head = '', body = ''] = answer.split('\r\n\r\n');
  expect(head.split('\r\n')[0]).toBe('HTTP/1.1 408 Request Timeout');
  const id = /\r\nx-request-id: (\S+)/i.exec(head)?.[1];
  expect(id).toMatch(/^req_/);
  expect(JSON.parse(body)).toEqual({ error: { code: 'request_timeout', message: expect.any(String) }, request_id: id });
}

describe('HTTP deadlines for slow clients', () => {
  let service: Service;
  let port: number;
  const logs: string[] = [];

  beforeAll(async () => {
    port = await freePort();
    const config = loadConfig({
      DATA_DIR: tempDir('timeouts'),
      HOST: '127.0.0.1',
      PORT: String(port),
      POSE_ENABLED: 'false',
      HTTP_HEADERS_TIMEOUT_MS: String(T.headers),
      HTTP_REQUEST_TIMEOUT_MS: String(T.request),
      HTTP_IDLE_TIMEOUT_MS: String(T.idle),
      HTTP_KEEP_ALIVE_TIMEOUT_MS: String(T.keepAlive),
    });
    const logger = createLogger({ level: 'info', stream: new Writable({ write: (c, _e, cb) => (logs.push(String(c)), cb()) }) });
    service = await startService(config, { http: true, worker: false, projections: false }, logger);
  });
  afterAll(() => service?.stop());

  it('answers 408 in the API shape and closes a socket that trickles its body', async () => {
    const headers = 'POST /v1/generations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n';
    const r = await until_closed(port, (s) => (s.write(headers), trickle(s, '{"x":"' + 'y'.repeat(99_990))));
    expect408(r.answer);
    expect(r.afterMs).toBeGreaterThanOrEqual(T.request * 0.9);
  });

  it('answers 408 and closes a socket that trickles its headers (slowloris)', async () => {
    const r = await until_closed(port, (s) => trickle(s, `GET /health/live HTTP/1.1\r\nHost: x\r\nX-Pad: ${'p'.repeat(10_000)}\r\n\r\n`));
    expect408(r.answer);
    expect(r.afterMs).toBeGreaterThanOrEqual(T.headers * 0.9);
  });

  it('closes a connection that never sends a byte', async () => {
    const r = await until_closed(port, () => undefined);
    expect(r.afterMs).toBeGreaterThanOrEqual(T.headers * 0.9);
  });

  it('closes an idle keep-alive connection after the keep-alive timeout, having answered its request', async () => {
    const r = await until_closed(port, (s) => s.write('GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n'));
    expect(r.answer.split('\r\n')[0]).toBe('HTTP/1.1 200 OK');
    expect(r.afterMs).toBeGreaterThanOrEqual(T.keepAlive * 0.9);
  });

  it('has safe defaults, and refuses a headers deadline longer than the request deadline', () => {
    const c = loadConfig({});
    expect([c.HTTP_HEADERS_TIMEOUT_MS, c.HTTP_REQUEST_TIMEOUT_MS, c.HTTP_IDLE_TIMEOUT_MS, c.HTTP_KEEP_ALIVE_TIMEOUT_MS]).toEqual([10_000, 30_000, 120_000, 72_000]);
    expect(HTTP_TIMEOUT_DEFAULTS).toEqual({ headersMs: 10_000, requestMs: 30_000, idleMs: 120_000, keepAliveMs: 72_000 });
    expect(() => loadConfig({ HTTP_HEADERS_TIMEOUT_MS: '5000', HTTP_REQUEST_TIMEOUT_MS: '1000' })).toThrow(ConfigError);
    expect(() => loadConfig({ HTTP_REQUEST_TIMEOUT_MS: '0' })).toThrow(ConfigError);
  });

  it('a prompt client is unaffected, and nothing was logged as an error', async () => {
    const res = await fetch(`http://127.0.0.1:${port}/v1/generations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(res.status).toBe(400);
    const errors = logs.map((l) => JSON.parse(l) as { level: string; msg: string }).filter((l) => l.level === 'error' || l.level === 'fatal');
    expect(errors).toEqual([]);
    expect(logs.some((l) => l.includes('"http_client_error"') && l.includes('ERR_HTTP_REQUEST_TIMEOUT'))).toBe(true);
  });
});

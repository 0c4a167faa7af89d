// Clients that go away mid-request, for the stand-in servers' robustness tests (tests/integration/stand-ins-cut-off.test.ts),
// and a watch on the process for the unhandled errors such a cut-off must not cause.
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { within } from './deadlines.ts';

/** How the client leaves: close its socket (FIN), reset it (RST), or half-close it (FIN, still reading). */
export type CutOff = 'destroy' | 'reset' | 'half-close';
export const CUT_OFFS: CutOff[] = ['destroy', 'reset', 'half-close'];

/**
 * Records every unhandled rejection and uncaught exception the process sees until `stop()`. Vitest still sees them
 * too (its own listeners stay), so the run keeps failing on them; this only lets a test name the culprit.
 */
export function watchProcessErrors(): { seen: string[]; stop(): void } {
  const seen: string[] = [];
  const onRejection = (reason: unknown) => seen.push(`unhandledRejection: ${describe(reason)}`);
  const onException = (err: unknown) => seen.push(`uncaughtException: ${describe(err)}`);
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  return {
    seen,
    stop: () => {
      process.off('unhandledRejection', onRejection);
      process.off('uncaughtException', onException);
    },
  };
}

const describe = (e: unknown) => (e instanceof Error ? `${e.name}: ${e.message}${'code' in e ? ` (${String(e.code)})` : ''}` : String(e));

function leave(socket: net.Socket, how: CutOff): Promise<void> {
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.on('error', () => undefined); // a reset answered by a reset is the point here
  if (how === 'reset') socket.resetAndDestroy();
  else if (how === 'destroy') socket.destroy();
  else socket.end(); // the server sees the body end early; it closes, and 'close' follows
  return within(`the cut-off socket to close (${how})`, closed, 10_000);
}

/**
 * Sends an HTTP/1.1 request's head and the first part of its body, then leaves as `how` says. The head asks for
 * `100 Continue`, and the body goes out only after the server answered it: Node's server sends it right before it
 * runs the request handler, so the handler is certainly awaiting the rest of the body when the client leaves.
 */
export async function cutOffHttpRequest(port: number, options: { how: CutOff; method?: string; path: string; headers?: Record<string, string> }): Promise<void> {
  const socket = net.connect({ host: '127.0.0.1', port });
  await within('the connection', new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject)), 10_000);
  const declared = 100_000;
  const head = [
    `${options.method ?? 'POST'} ${options.path} HTTP/1.1`,
    `Host: 127.0.0.1:${port}`,
    `Content-Length: ${declared}`,
    'Expect: 100-continue',
    ...Object.entries(options.headers ?? {}).map(([k, v]) => `${k}: ${v}`),
    '',
    '',
  ].join('\r\n');
  let received = '';
  const continued = new Promise<void>((resolve, reject) => {
    socket.on('data', (c: Buffer) => {
      received += c.toString('latin1');
      if (received.includes('100 Continue')) resolve();
      else if (/^HTTP\/1\.1 [2-5]\d\d/.test(received)) reject(new Error(`answered before the body: ${received.slice(0, 200)}`));
    });
  });
  socket.write(head);
  await within('100 Continue', continued, 10_000);
  await new Promise<void>((resolve) => socket.write(Buffer.alloc(1_000, 'x'), () => resolve()));
  await leave(socket, options.how);
}

/**
 * The status of a GET on a connection of its own that closes after the answer (no keep-alive: a pooled connection
 * would stay open on the server and blur its count of open connections).
 */
export function statusOfOneShotGet(url: string): Promise<number> {
  return within(
    `an answer from ${url}`,
    new Promise<number>((resolve, reject) => {
      http.get(url, { agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      }).on('error', reject);
    }),
    10_000,
  );
}

/** A gRPC frame: not compressed, the message's length, the message. */
export function grpcFrame(message: Uint8Array): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}

/** Opens a gRPC call on `session` and writes `body` (a whole or partial frame) without ending the request. */
export function openGrpcCall(session: http2.ClientHttp2Session, path: string, body: Buffer): http2.ClientHttp2Stream {
  const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' });
  stream.on('error', () => undefined); // the test cuts it off on purpose
  stream.write(body);
  return stream;
}

/** A unary gRPC call that must complete: resolves with its grpc-status. */
export function unaryGrpcStatus(session: http2.ClientHttp2Session, path: string, message: Uint8Array): Promise<string> {
  return within(
    `an answer to ${path}`,
    new Promise<string>((resolve, reject) => {
      const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' });
      let status: string | undefined;
      stream.on('response', (h) => (status = h['grpc-status'] as string | undefined ?? status));
      stream.on('trailers', (t) => (status = t['grpc-status'] as string | undefined));
      stream.on('data', () => undefined);
      stream.on('error', reject);
      stream.on('close', () => (status === undefined ? reject(new Error(`no grpc-status from ${path}`)) : resolve(status)));
      stream.end(grpcFrame(message));
    }),
    10_000,
  );
}

export interface Http2Client {
  session: http2.ClientHttp2Session;
  /** Leaves at the connection level: the socket is closed, reset or half-closed under the session. */
  leave(how: CutOff): Promise<void>;
}

/** An HTTP/2 (gRPC) client whose socket the test holds, to cut it off below the session. */
export async function connectHttp2(port: number): Promise<Http2Client> {
  const socket = net.connect({ host: '127.0.0.1', port });
  const session = http2.connect(`http://127.0.0.1:${port}`, { createConnection: () => socket });
  session.on('error', () => undefined); // cut off on purpose in these tests
  await within('the HTTP/2 connection', new Promise<void>((resolve) => session.once('connect', () => resolve())), 10_000);
  return { session, leave: (how) => leave(socket, how) };
}

// Loopback HTTP stand-ins: one place for the rules every test server follows.
// - A client may vanish at any moment (the service under test is SIGKILLed mid-upload, a test aborts, a socket is
//   reset). That is normal traffic for a stand-in, never an error of the test run: `readBody` resolves `undefined`
//   for a request that did not arrive whole, and `serveSafely` keeps a handler's failure inside its own request.
// - close() drops open connections first, so a stand-in that stalls a response (by design) never keeps the test
//   process waiting.
import type http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void | Promise<void>;

/**
 * The request body, or `undefined` when the client went away before sending all of it (aborted, reset, half-sent).
 * Never rejects: an async handler that awaits it cannot leave an unhandled rejection behind.
 */
export function readBody(req: http.IncomingMessage): Promise<Buffer<ArrayBuffer> | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.once('end', () => resolve(Buffer.concat(chunks)));
    // 'error' (ECONNRESET "aborted") only fires while someone listens; 'close' without 'end' covers the rest.
    req.once('error', () => resolve(undefined));
    req.once('close', () => resolve(req.complete ? Buffer.concat(chunks) : undefined));
  });
}

/**
 * Wraps a request handler so that neither a synchronous throw nor a rejected promise escapes into the process. A
 * failure while the client is still there answers 500 with the error (the test that caused it sees it); once the
 * client is gone there is nobody to tell, and the failure is dropped.
 */
export function serveSafely(handler: Handler): Handler {
  return (req, res) => {
    const fail = (err: unknown) => {
      if (res.destroyed || req.socket.destroyed) return;
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const text = `stand-in handler failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`;
      res.writeHead(500, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    try {
      const done = handler(req, res);
      if (done) done.catch(fail);
    } catch (err) {
      fail(err);
    }
  };
}

export interface Listening {
  port: number;
  /** Server-side connections currently open (tests wait for it to drop after cutting a client off). */
  openConnections(): number;
  close(): Promise<void>;
}

export async function listenOnLoopback(server: http.Server): Promise<Listening> {
  const sockets = new Set<Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    openConnections: () => sockets.size,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

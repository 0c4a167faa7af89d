// A local HTTP server on 127.0.0.1 that serves scripted responses per path, for image download tests. Routes run
// under serveSafely (./loopback.ts): a route that throws answers 500 and a client cut off mid-request is no error.
import http from 'node:http';
import { listenOnLoopback, serveSafely, type Handler } from './loopback.ts';

export type Route = Handler;

export interface ImageServer {
  url(path: string): string;
  port: number;
  route(path: string, handler: Route): void;
  /** Serves `bytes` at `path` with a content type. */
  serve(path: string, bytes: Buffer, contentType: string): void;
  hits: Map<string, number>;
  /** Connections open on the server side. */
  openConnections(): number;
  close(): Promise<void>;
}

export async function startImageServer(): Promise<ImageServer> {
  const routes = new Map<string, Route>();
  const hits = new Map<string, number>();
  const server = http.createServer(serveSafely((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    const h = routes.get(path);
    if (!h) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
      return;
    }
    return h(req, res);
  }));
  const listening = await listenOnLoopback(server);
  const port = listening.port;
  return {
    port,
    hits,
    openConnections: listening.openConnections,
    url: (path) => `http://127.0.0.1:${port}${path}`,
    route: (path, handler) => routes.set(path, handler),
    serve: (path, bytes, contentType) =>
      routes.set(path, (_req, res) => {
        res.writeHead(200, { 'content-type': contentType, 'content-length': bytes.length });
        res.end(bytes);
      }),
    close: () => listening.close(),
  };
}

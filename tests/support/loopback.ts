// Starts a test HTTP server on a free loopback port; close() drops open connections first, so a stand-in that
// stalls a response (by design) never keeps the test process waiting.
import type http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export async function listenOnLoopback(server: http.Server): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

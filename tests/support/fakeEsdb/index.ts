// Entry point for tests (and the ledger property suite with LEDGER_STORE=esdb): an in-process EventStoreDB Streams
// server for the real @eventstore/db-client. What it does not imitate is listed at the top of ./server.ts.
import { FakeEsdbServer } from './server.ts';

export { FakeEsdbServer };

export interface FakeEsdb {
  connectionString: string;
  /** Abrupt stop; data is kept. */
  stop(): Promise<void>;
  /** Starts again on the same port with the same data. */
  restart(): Promise<void>;
  close(): Promise<void>;
  server: FakeEsdbServer;
}

export interface FakeEsdbOptions {
  /** 'batch' (default): the client appends over BatchAppend like against a real server; 'classic': over Append. */
  appendPath?: 'batch' | 'classic';
}

export async function startFakeEsdb(options: FakeEsdbOptions = {}): Promise<FakeEsdb> {
  const server = new FakeEsdbServer(options.appendPath ?? 'batch');
  await server.start();
  return {
    connectionString: server.connectionString,
    stop: () => server.stop(),
    restart: () => server.restart(),
    close: () => server.stop(),
    server,
  };
}

// Entry point for tests (and the ledger property suite with LEDGER_STORE=esdb): an in-process EventStoreDB Streams
// server for the real @eventstore/db-client. What it does not imitate is listed at the top of ./server.ts.
import { openEsdbEventStore, type EsdbEventStore } from '../../../src/adapters/eventstore/esdb/esdbEventStore.ts';
import { silentLogger } from '../../../src/logger.ts';
import { FakeEsdbServer, type FakeEsdbServerOptions } from './server.ts';

export { FakeEsdbServer, FakeStorage } from './server.ts';

export interface FakeEsdb {
  connectionString: string;
  /** Abrupt stop; data is kept. */
  stop(): Promise<void>;
  /** Starts again on the same port with the same data. */
  restart(): Promise<void>;
  close(): Promise<void>;
  server: FakeEsdbServer;
}

export type FakeEsdbOptions = FakeEsdbServerOptions;

export async function startFakeEsdb(options: FakeEsdbOptions = {}): Promise<FakeEsdb> {
  const server = new FakeEsdbServer(options);
  await server.start();
  return {
    connectionString: server.connectionString,
    stop: () => server.stop(),
    restart: () => server.restart(),
    close: () => server.stop(),
    server,
  };
}

/**
 * An ESDB-backed EventStore on a fresh fake server, in the contract's `{ store, cleanup }` shape (for LEDGER_STORE=esdb
 * in the ledger property suite).
 */
export async function openFakeEsdbEventStore(options: FakeEsdbOptions = {}): Promise<{ store: EsdbEventStore; fake: FakeEsdb; cleanup(): Promise<void> }> {
  const fake = await startFakeEsdb(options);
  const store = openEsdbEventStore({ connectionString: fake.connectionString, logger: silentLogger() });
  return {
    store,
    fake,
    cleanup: async () => {
      await store.close();
      await fake.close();
    },
  };
}

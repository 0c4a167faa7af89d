// Entry point for tests (and the ledger property suite with LEDGER_STORE=esdb): an in-process EventStoreDB Streams
// server for the real @eventstore/db-client. What it does not imitate is listed at the top of ./server.ts.
import { openEsdbEventStore, type EsdbEventStore } from '../../../src/adapters/eventstore/esdb/esdbEventStore.ts';
import { silentLogger } from '../../../src/logger.ts';
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
  /** 'event' (default): commit = prepare per event; 'transaction': one append's events share a commit position. */
  positions?: 'event' | 'transaction';
}

export async function startFakeEsdb(options: FakeEsdbOptions = {}): Promise<FakeEsdb> {
  const server = new FakeEsdbServer(options.appendPath ?? 'batch', options.positions ?? 'event');
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

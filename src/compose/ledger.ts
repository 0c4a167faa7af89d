// The ledger: Postgres or EventStoreDB when EVENTSTORE_URL is set, else the embedded SQLite file under DATA_DIR; the aggregate
// repository over it, whose appends and conflicts are the only ones counted in the metrics; the worker id.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import path from 'node:path';
import { openSqliteEventStore } from '../adapters/eventstore/sqlite/sqliteEventStore.ts';
import { AggregateRepository } from '../app/aggregates.ts';
import type { EventStore } from '../app/ports/eventStore.ts';
import { eventStoreKind, type Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { Resource } from './scope.ts';

export function workerIdOf(config: Pick<Config, 'WORKER_ID'>): string {
  return config.WORKER_ID ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

/** The ledger: Postgres or EventStoreDB by the scheme of EVENTSTORE_URL, else the embedded SQLite file under DATA_DIR. */
export async function openEventStore(
  config: Pick<Config, 'EVENTSTORE_URL' | 'EVENTSTORE_SCHEMA' | 'DATA_DIR' | 'LEDGER_WRITER'>,
  logger: Logger,
  metrics?: Metrics,
): Promise<Resource<EventStore>> {
  let store: EventStore;
  if (eventStoreKind(config) === 'postgres') {
    const { openPgEventStore } = await import('../adapters/eventstore/postgres/pgEventStore.ts');
    store = await openPgEventStore({ connectionString: config.EVENTSTORE_URL!, schema: config.EVENTSTORE_SCHEMA, logger, ...(metrics ? { metrics } : {}) });
  } else if (config.EVENTSTORE_URL) {
    const { openEsdbEventStore } = await import('../adapters/eventstore/esdb/esdbEventStore.ts');
    store = openEsdbEventStore({ connectionString: config.EVENTSTORE_URL, logger, ...(metrics ? { metrics } : {}) });
  } else {
    store = openSqliteEventStore({ path: path.join(config.DATA_DIR, 'ledger.sqlite'), writer: config.LEDGER_WRITER });
  }
  return { value: store, close: () => store.close() };
}

export function createRepository(store: EventStore, metrics?: Metrics): AggregateRepository {
  return new AggregateRepository(store, {
    onConflict: () => metrics?.appendConflicts.inc(),
    onAppend: (s) => metrics?.appendSeconds.observe({ store: store.kind }, s),
  });
}

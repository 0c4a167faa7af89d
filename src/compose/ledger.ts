// The ledger: EventStoreDB when EVENTSTORE_URL is set, else the embedded SQLite file under DATA_DIR; the aggregate
// repository over it, whose appends and conflicts are the only ones counted in the metrics; the worker id.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import path from 'node:path';
import { openSqliteEventStore } from '../adapters/eventstore/sqlite/sqliteEventStore.ts';
import { AggregateRepository } from '../app/aggregates.ts';
import type { EventStore } from '../app/ports/eventStore.ts';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { Resource } from './scope.ts';

export function workerIdOf(config: Pick<Config, 'WORKER_ID'>): string {
  return config.WORKER_ID ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

export async function openEventStore(
  config: Pick<Config, 'EVENTSTORE_URL' | 'DATA_DIR' | 'LEDGER_WRITER'>,
  logger: Logger,
  metrics?: Metrics,
): Promise<Resource<EventStore>> {
  let store: EventStore;
  if (config.EVENTSTORE_URL) {
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

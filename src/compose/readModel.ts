// The read model: Postgres (Supabase) when DATABASE_URL is set, else DATA_DIR/readmodels.sqlite; and the projectors
// that run over it.
import path from 'node:path';
import { openPgReadModel } from '../adapters/readmodel/postgres/pgReadModel.ts';
import { openSqliteReadModel } from '../adapters/readmodel/sqlite/sqliteReadModel.ts';
import type { EventStore } from '../app/ports/eventStore.ts';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { startProjectors, type Projector } from '../projections/projector.ts';
import type { ReadModel } from '../projections/readModel.ts';
import type { Resource } from './scope.ts';

function readModelPath(config: Pick<Config, 'DATA_DIR'>): string {
  return path.join(config.DATA_DIR, 'readmodels.sqlite');
}

/** The read model, migrated (its tables, and the platform tables where absent). */
export async function openReadModel(config: Pick<Config, 'DATABASE_URL' | 'DATA_DIR'>, logger: Logger): Promise<Resource<ReadModel>> {
  const readModel = config.DATABASE_URL
    ? openPgReadModel({ connectionString: config.DATABASE_URL, logger })
    : openSqliteReadModel({ path: readModelPath(config), logger });
  try {
    await readModel.migrate();
  } catch (err) {
    await readModel.close();
    throw err;
  }
  return { value: readModel, close: () => readModel.close() };
}

export interface RunningProjections {
  readModel: ReadModel;
  projectors: Projector[];
}

/** One projector per projection over the migrated read model; closing stops them (releasing the locks) and closes it. */
export async function startProjections(
  config: Pick<Config, 'DATABASE_URL' | 'DATA_DIR' | 'PROJECTION_BATCH_SIZE'>,
  store: EventStore,
  logger: Logger,
  metrics?: Metrics,
): Promise<Resource<RunningProjections>> {
  const readModel = await openReadModel(config, logger);
  const projectors = startProjectors({ store, readModel: readModel.value, logger, batchSize: config.PROJECTION_BATCH_SIZE, ...(metrics ? { metrics } : {}) });
  return {
    value: { readModel: readModel.value, projectors },
    close: async () => {
      await Promise.all(projectors.map((p) => p.stop()));
      await readModel.close();
    },
  };
}

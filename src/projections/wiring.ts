// Builds the read model from config and runs the projectors: used by main.ts (embedded projectors), `wearon project`,
// and the ops commands. Postgres (Supabase) when DATABASE_URL is set, else DATA_DIR/readmodels.sqlite.
import path from 'node:path';
import type { Config } from '../config.ts';
import type { EventStore } from '../app/ports/eventStore.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { openPgReadModel } from '../adapters/readmodel/postgres/pgReadModel.ts';
import { openSqliteReadModel } from '../adapters/readmodel/sqlite/sqliteReadModel.ts';
import { startProjectors, type Projector } from './projector.ts';
import type { ReadModel } from './readModel.ts';

export function readModelPath(config: Pick<Config, 'DATA_DIR'>): string {
  return path.join(config.DATA_DIR, 'readmodels.sqlite');
}

export function openReadModel(config: Pick<Config, 'DATABASE_URL' | 'DATA_DIR'>, logger: Logger): ReadModel {
  if (config.DATABASE_URL) return openPgReadModel({ connectionString: config.DATABASE_URL, logger });
  return openSqliteReadModel({ path: readModelPath(config), logger });
}

export interface RunningProjections {
  readModel: ReadModel;
  projectors: Projector[];
  stop(): Promise<void>;
}

/** Migrates the read model and starts one projector per projection; `stop()` releases the locks and closes. */
export async function startProjections(
  config: Pick<Config, 'DATABASE_URL' | 'DATA_DIR' | 'PROJECTION_BATCH_SIZE'>,
  store: EventStore,
  logger: Logger,
  metrics?: Metrics,
): Promise<RunningProjections> {
  const readModel = openReadModel(config, logger);
  await readModel.migrate();
  const projectors = startProjectors({ store, readModel, logger, batchSize: config.PROJECTION_BATCH_SIZE, ...(metrics ? { metrics } : {}) });
  return {
    readModel,
    projectors,
    async stop() {
      await Promise.all(projectors.map((p) => p.stop()));
      await readModel.close();
    },
  };
}

// `wearon migrate`: creates the projections' tables (and the platform tables where absent); idempotent.
import { openReadModel } from '../../projections/wiring.ts';
import type { CliCommand } from '../command.ts';

export const migrateCommand: CliCommand = {
  name: 'migrate',
  summary: 'Create or update the read-model tables (Postgres when DATABASE_URL is set, else DATA_DIR/readmodels.sqlite)',
  usage: 'wearon migrate',
  async run(_args, ctx) {
    const rm = openReadModel(ctx.config, ctx.logger);
    try {
      await rm.migrate();
      ctx.out(`migrated ${rm.dialect} read model`);
      return 0;
    } finally {
      await rm.close();
    }
  },
};

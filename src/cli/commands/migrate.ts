// `wearon migrate`: creates the projections' tables (and the platform tables where absent); idempotent.
import { openReadModel } from '../../compose/readModel.ts';
import { withScope } from '../../compose/scope.ts';
import type { CliCommand } from '../command.ts';

export const migrateCommand: CliCommand = {
  name: 'migrate',
  summary: 'Create or update the read-model tables (Postgres when DATABASE_URL is set, else DATA_DIR/readmodels.sqlite)',
  usage: 'wearon migrate',
  run: (_args, ctx) =>
    withScope(ctx.logger, async (scope) => {
      const readModel = scope.add(await openReadModel(ctx.config, ctx.logger));
      ctx.out(`migrated ${readModel.dialect} read model`);
      return 0;
    }),
};

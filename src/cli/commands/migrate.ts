// `wearon migrate`: creates the projections' tables (and the platform tables where absent), and the Postgres event
// store's schema when EVENTSTORE_URL is postgres://; idempotent.
import { openEventStore } from '../../compose/ledger.ts';
import { openReadModel } from '../../compose/readModel.ts';
import { withScope } from '../../compose/scope.ts';
import { eventStoreKind } from '../../config.ts';
import type { CliCommand } from '../command.ts';

export const migrateCommand: CliCommand = {
  name: 'migrate',
  summary: 'Create or update the read-model tables (Postgres when DATABASE_URL is set, else DATA_DIR/readmodels.sqlite) and the Postgres event store schema',
  usage: 'wearon migrate',
  run: (_args, ctx) =>
    withScope(ctx.logger, async (scope) => {
      if (eventStoreKind(ctx.config) === 'postgres') {
        scope.add(await openEventStore(ctx.config, ctx.logger)); // opening migrates it
        ctx.out(`migrated postgres event store (schema ${ctx.config.EVENTSTORE_SCHEMA})`);
      }
      const readModel = scope.add(await openReadModel(ctx.config, ctx.logger));
      ctx.out(`migrated ${readModel.dialect} read model`);
      return 0;
    }),
};

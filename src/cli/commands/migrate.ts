// `wearon migrate`: creates the projections' tables (and the platform tables where absent), and the Postgres event
// store's schema when EVENTSTORE_URL is postgres://; idempotent.
import { eventStoreKind } from '../../config.ts';
import { openEventStore } from '../../main.ts';
import { openReadModel } from '../../projections/wiring.ts';
import type { CliCommand } from '../command.ts';

export const migrateCommand: CliCommand = {
  name: 'migrate',
  summary: 'Create or update the read-model tables (Postgres when DATABASE_URL is set, else DATA_DIR/readmodels.sqlite) and the Postgres event store schema',
  usage: 'wearon migrate',
  async run(_args, ctx) {
    if (eventStoreKind(ctx.config) === 'postgres') {
      const store = await openEventStore(ctx.config, ctx.logger); // opening migrates it
      await store.close();
      ctx.out(`migrated postgres event store (schema ${ctx.config.EVENTSTORE_SCHEMA})`);
    }
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

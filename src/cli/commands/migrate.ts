// `wearon migrate`: creates the projections' tables (and the platform tables where absent), and the Postgres event
// store's schema when EVENTSTORE_URL is postgres://; idempotent. With a bridge flag it prints, installs or removes the
// platform bridge (docs/platform-adoption.md) instead.
import { applyBridge } from '../../bridge/install.ts';
import { migrationFile } from '../../bridge/migration.ts';
import { openEventStore } from '../../compose/ledger.ts';
import { openReadModel } from '../../compose/readModel.ts';
import { withScope } from '../../compose/scope.ts';
import { eventStoreKind } from '../../config.ts';
import { UsageError, parseArgs, type CliCommand } from '../command.ts';

const BRIDGE_FLAGS = ['print-sql', 'down', 'install-bridge', 'uninstall-bridge'] as const;

export const migrateCommand: CliCommand = {
  name: 'migrate',
  summary:
    'Create or update the read-model tables (Postgres when DATABASE_URL is set, else DATA_DIR/readmodels.sqlite) and the Postgres event store schema; ' +
    '--print-sql [--down] prints the platform bridge as a Supabase migration, --install-bridge / --uninstall-bridge applies it to DATABASE_URL',
  usage: 'wearon migrate [--print-sql [--down] | --install-bridge | --uninstall-bridge]',
  run: async (args, ctx) => {
    const { flags } = parseArgs(args, BRIDGE_FLAGS);
    if (flags['print-sql']) {
      const file = migrationFile(flags.down ? 'down' : 'up');
      ctx.out(file.sql);
      ctx.err(`save as supabase/migrations/${file.name}`);
      return 0;
    }
    if (flags.down) throw new UsageError('--down goes with --print-sql (to remove the bridge: --uninstall-bridge)');
    if (flags['install-bridge'] || flags['uninstall-bridge']) {
      if (flags['install-bridge'] && flags['uninstall-bridge']) throw new UsageError('--install-bridge or --uninstall-bridge, not both');
      if (!ctx.config.DATABASE_URL) throw new UsageError('the bridge is installed in the platform database: set DATABASE_URL');
      const direction = flags['install-bridge'] ? 'up' : 'down';
      if (direction === 'up') {
        // The bridged functions read the read model's tables (ledger_entries, projected_sessions): create them first.
        await withScope(ctx.logger, async (scope) => void scope.add(await openReadModel(ctx.config, ctx.logger)));
      }
      await applyBridge(ctx.config.DATABASE_URL, direction);
      ctx.out(direction === 'up' ? 'bridge installed' : 'bridge removed (platform functions restored; wearon.credit_inbox kept for audit)');
      return 0;
    }
    return withScope(ctx.logger, async (scope) => {
      if (eventStoreKind(ctx.config) === 'postgres') {
        scope.add(await openEventStore(ctx.config, ctx.logger)); // opening migrates it
        ctx.out(`migrated postgres event store (schema ${ctx.config.EVENTSTORE_SCHEMA})`);
      }
      const readModel = scope.add(await openReadModel(ctx.config, ctx.logger));
      ctx.out(`migrated ${readModel.dialect} read model`);
      return 0;
    });
  },
};

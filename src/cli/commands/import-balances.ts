// `wearon import-balances`: opening balances from the platform's credit tables into the ledger (idempotent).
import { openEventStore } from '../../main.ts';
import { importBalances } from '../../projections/importBalances.ts';
import { openReadModel } from '../../projections/wiring.ts';
import type { CliCommand } from '../command.ts';
import { createProgress } from '../progress.ts';

export const importBalancesCommand: CliCommand = {
  name: 'import-balances',
  summary: 'Import user_credits, store_credits and store_shopper_credits balances as CreditsGranted(opening_balance)',
  usage: 'wearon import-balances',
  async run(_args, ctx) {
    const store = await openEventStore(ctx.config, ctx.logger);
    const readModel = openReadModel(ctx.config, ctx.logger);
    try {
      await readModel.migrate();
      const progress = createProgress('import-balances', { unit: 'rows' });
      const r = await importBalances(store, readModel, ctx.logger, (done, total) => progress.update(done, total));
      progress.finish(`${r.imported} imported (${r.credits} credits), ${r.skippedExisting} already in the ledger, ${r.skippedZero} zero, ${r.failed} failed`);
      ctx.out(JSON.stringify(r));
      return r.failed > 0 ? 1 : 0;
    } finally {
      await readModel.close();
      await store.close();
    }
  },
};

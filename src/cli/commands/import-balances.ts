// `wearon import-balances`: opening balances from the platform's credit tables into the ledger (idempotent).
import { createRepository, openEventStore } from '../../compose/ledger.ts';
import { openReadModel } from '../../compose/readModel.ts';
import { withScope } from '../../compose/scope.ts';
import { importBalances } from '../../projections/importBalances.ts';
import type { CliCommand } from '../command.ts';
import { createProgress } from '../progress.ts';

export const importBalancesCommand: CliCommand = {
  name: 'import-balances',
  summary:
    'Import user_credits, store_credits and store_shopper_credits balances as CreditsGranted(opening_balance), record the platform totals they continue from, and take over paid sessions in flight',
  usage: 'wearon import-balances',
  run: (_args, ctx) =>
    withScope(ctx.logger, async (scope) => {
      const store = scope.add(await openEventStore(ctx.config, ctx.logger));
      const readModel = scope.add(await openReadModel(ctx.config, ctx.logger));
      const progress = createProgress('import-balances', { unit: 'rows' });
      const r = await importBalances(store, readModel, ctx.logger, (done, total) => progress.update(done, total), createRepository(store));
      progress.finish(
        `${r.imported} imported (${r.credits} credits), ${r.sessionsTakenOver} paid session(s) in flight taken over, ${r.skippedExisting} already in the ledger, ${r.skippedZero} zero, ${r.failed} failed`,
      );
      ctx.out(JSON.stringify(r));
      return r.failed > 0 ? 1 : 0;
    }),
};

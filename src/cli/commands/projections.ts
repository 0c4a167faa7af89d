// `wearon projections`: checkpoint, head and lag per projection.
import { openEventStore } from '../../compose/ledger.ts';
import { openReadModel } from '../../compose/readModel.ts';
import { withScope } from '../../compose/scope.ts';
import { describeFailure, projectionStatus } from '../../projections/projector.ts';
import { parseArgs, type CliCommand } from '../command.ts';

export const projectionsCommand: CliCommand = {
  name: 'projections',
  summary: 'Show checkpoint, head and lag of every projection',
  usage: 'wearon projections [--json]',
  async run(args, ctx) {
    const { flags } = parseArgs(args, ['json']);
    return withScope(ctx.logger, async (scope) => {
      const store = scope.add(await openEventStore(ctx.config, ctx.logger));
      const readModel = scope.add(await openReadModel(ctx.config, ctx.logger));
      const rows = await projectionStatus(store, readModel);
      if (flags.json) ctx.out(JSON.stringify(rows));
      else {
        ctx.out(`${'projection'.padEnd(16)} ${'checkpoint'.padEnd(22)} ${'head'.padEnd(22)} ${'lag'.padStart(10)}  updated`);
        for (const r of rows) {
          ctx.out(`${r.projection.padEnd(16)} ${(r.checkpoint ?? '-').padEnd(22)} ${(r.head ?? '-').padEnd(22)} ${String(r.lag).padStart(10)}  ${r.updatedAt ?? '-'}`);
        }
        for (const r of rows) if (r.failure) ctx.out(`STUCK ${describeFailure(r.projection, r.failure)}`);
      }
      // A stuck projection is a failure an operator must act on (scripts and cron see the exit code).
      return rows.some((r) => r.failure) ? 1 : 0;
    });
  },
};

// `wearon projections`: checkpoint, head and lag per projection.
import { openEventStore } from '../../main.ts';
import { projectionStatus } from '../../projections/projector.ts';
import { openReadModel } from '../../projections/wiring.ts';
import { parseArgs, type CliCommand } from '../command.ts';

export const projectionsCommand: CliCommand = {
  name: 'projections',
  summary: 'Show checkpoint, head and lag of every projection',
  usage: 'wearon projections [--json]',
  async run(args, ctx) {
    const { flags } = parseArgs(args, ['json']);
    const store = await openEventStore(ctx.config, ctx.logger);
    const readModel = openReadModel(ctx.config, ctx.logger);
    try {
      await readModel.migrate();
      const rows = await projectionStatus(store, readModel);
      if (flags.json) ctx.out(JSON.stringify(rows));
      else {
        ctx.out(`${'projection'.padEnd(16)} ${'checkpoint'.padEnd(22)} ${'head'.padEnd(22)} ${'lag'.padStart(10)}  updated`);
        for (const r of rows) {
          ctx.out(`${r.projection.padEnd(16)} ${(r.checkpoint ?? '-').padEnd(22)} ${(r.head ?? '-').padEnd(22)} ${String(r.lag).padStart(10)}  ${r.updatedAt ?? '-'}`);
        }
      }
      return 0;
    } finally {
      await readModel.close();
      await store.close();
    }
  },
};

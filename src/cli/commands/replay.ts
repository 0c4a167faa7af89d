// `wearon replay <projection|all> [--from <position>]`: rebuilds a projection into shadow tables while the worker keeps
// running, then swaps it in atomically (src/projections/rebuild.ts).
import { parsePosition } from '../../app/ports/eventStore.ts';
import { openEventStore } from '../../compose/ledger.ts';
import { openReadModel } from '../../compose/readModel.ts';
import { withScope } from '../../compose/scope.ts';
import { PROJECTION_NAMES, projectionByName } from '../../projections/projections.ts';
import { REBUILD_BATCH_SIZE, rebuildProjection } from '../../projections/rebuild.ts';
import { UsageError, parseArgs, type CliCommand } from '../command.ts';
import { createProgress } from '../progress.ts';

export const replayCommand: CliCommand = {
  name: 'replay',
  summary: 'Rebuild a projection from the log (safe while the worker runs: shadow tables, atomic swap)',
  usage: `wearon replay <${PROJECTION_NAMES.join('|')}|all> [--from <commit/prepare>] [--batch-size <n>]`,
  async run(args, ctx) {
    const { flags, positionals } = parseArgs(args);
    const which = positionals[0];
    if (!which) throw new UsageError('name the projection to rebuild');
    const projections = which === 'all' ? PROJECTION_NAMES.map(projectionByName) : [projectionByName(which)];
    const from = typeof flags.from === 'string' ? parsePosition(flags.from) : undefined;
    const batchSize = typeof flags['batch-size'] === 'string' ? Number(flags['batch-size']) : REBUILD_BATCH_SIZE;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new UsageError('--batch-size must be a positive integer');
    const ac = new AbortController();
    const onSignal = () => ac.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    return withScope(ctx.logger, async (scope) => {
      scope.defer(() => (process.off('SIGINT', onSignal), process.off('SIGTERM', onSignal)));
      const store = scope.add(await openEventStore(ctx.config, ctx.logger));
      const readModel = scope.add(await openReadModel(ctx.config, ctx.logger));
      for (const projection of projections) {
        const progress = createProgress(`replay ${projection.name}`);
        const r = await rebuildProjection({
          store,
          readModel,
          projection,
          logger: ctx.logger,
          batchSize,
          signal: ac.signal,
          ...(from ? { from } : {}),
          onProgress: (done, total) => progress.update(done, total),
        });
        progress.finish(`${r.events} events in ${(r.ms / 1000).toFixed(1)} s, swapped in at ${r.checkpoint}`);
        ctx.out(JSON.stringify({ projection: projection.name, ...r }));
      }
      return 0;
    });
  },
};

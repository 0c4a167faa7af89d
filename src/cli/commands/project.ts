// `wearon project`: runs only the projectors (one per projection; others stand by on their locks) until SIGTERM.
import { createMetrics } from '../../metrics.ts';
import { openEventStore } from '../../main.ts';
import { projectionStatus } from '../../projections/projector.ts';
import { startProjections } from '../../projections/wiring.ts';
import type { CliCommand } from '../command.ts';

export const projectCommand: CliCommand = {
  name: 'project',
  summary: 'Run the projectors alone until SIGTERM (standby instances take over when the active one dies)',
  usage: 'wearon project',
  async run(_args, ctx) {
    const metrics = createMetrics();
    const store = await openEventStore(ctx.config, ctx.logger, metrics);
    const running = await startProjections(ctx.config, store, ctx.logger, metrics);
    const report = setInterval(() => {
      projectionStatus(store, running.readModel)
        .then((s) => ctx.logger.info({ projections: s.map((p) => ({ projection: p.projection, checkpoint: p.checkpoint, lag: p.lag })) }, 'projection_status'))
        .catch((err) => ctx.logger.warn({ err }, 'projection_status_failed'));
    }, 10_000);
    report.unref();
    await new Promise<void>((resolve) => {
      process.once('SIGTERM', resolve);
      process.once('SIGINT', resolve);
    });
    clearInterval(report);
    ctx.logger.info('projectors_stopping');
    await running.stop();
    await store.close();
    return 0;
  },
};

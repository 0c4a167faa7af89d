// `wearon serve` (everything in one process) and `wearon worker` (the generation worker with its health and metrics
// endpoints). Both run until SIGTERM/SIGINT, then drain and exit 0.
import { startService, type Parts } from '../../main.ts';
import { parseArgs, type CliCommand, type CliContext } from '../command.ts';

async function runUntilSignal(parts: Parts, ctx: CliContext): Promise<number> {
  const service = await startService(ctx.config, parts, ctx.logger);
  ctx.logger.info({ parts, data_dir: ctx.config.DATA_DIR, ledger: service.store.kind, address: service.address }, 'service_started');
  await new Promise<void>((resolve) => {
    const onSignal = (signal: string) => {
      ctx.logger.info({ signal }, 'shutting_down');
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      resolve();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  await service.stop();
  ctx.logger.info('service_stopped');
  return 0;
}

export const serveCommand: CliCommand = {
  name: 'serve',
  summary: 'run the whole service: HTTP API, generation worker and projectors',
  usage: 'wearon serve',
  run: async (args, ctx) => {
    parseArgs(args);
    return runUntilSignal({ http: true, worker: true, projections: ctx.config.PROJECTIONS_ENABLED }, ctx);
  },
};

export const projectCommand: CliCommand = {
  name: 'project',
  summary: 'run the projectors alone (with /health, /metrics, /v1/projections); standbys take over when the active one dies',
  usage: 'wearon project',
  run: async (args, ctx) => {
    parseArgs(args);
    return runUntilSignal({ http: true, worker: false, projections: true }, { ...ctx, config: { ...ctx.config, POSE_ENABLED: false } });
  },
};

export const workerCommand: CliCommand = {
  name: 'worker',
  summary: 'run the generation worker (with /health and /metrics)',
  usage: 'wearon worker',
  run: async (args, ctx) => {
    parseArgs(args);
    return runUntilSignal({ http: true, worker: true, projections: false }, { ...ctx, config: { ...ctx.config, POSE_ENABLED: false } });
  },
};

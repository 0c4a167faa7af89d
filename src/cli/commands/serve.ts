// `wearon serve` (everything in one process), `wearon worker` and `wearon project` (one part each, with health and
// metrics endpoints). All run until SIGTERM/SIGINT, then drain and exit 0.
import { startService, type Parts } from '../../compose/service.ts';
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

/**
 * A long-running command: starts the given parts and runs until a signal. Only `serve` answers `/estimate-body`;
 * the single-purpose processes leave the pose model out.
 */
function serviceCommand(name: string, summary: string, parts: (ctx: CliContext) => Parts, pose: boolean): CliCommand {
  return {
    name,
    summary,
    usage: `wearon ${name}`,
    run: async (args, ctx) => {
      parseArgs(args);
      const config = pose ? ctx.config : { ...ctx.config, POSE_ENABLED: false };
      return runUntilSignal(parts(ctx), { ...ctx, config });
    },
  };
}

export const serveCommand = serviceCommand(
  'serve',
  'run the whole service: HTTP API, generation worker and projectors',
  (ctx) => ({ http: true, worker: true, projections: ctx.config.PROJECTIONS_ENABLED }),
  true,
);
export const projectCommand = serviceCommand(
  'project',
  'run the projectors alone (with /health, /metrics, /v1/projections); standbys take over when the active one dies',
  () => ({ http: true, worker: false, projections: true }),
  false,
);
export const workerCommand = serviceCommand(
  'worker',
  'run the generation worker (with /health and /metrics)',
  () => ({ http: true, worker: true, projections: false }),
  false,
);

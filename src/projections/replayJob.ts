// `wearon replay` as a job of the serving process (the console's "replay"): same rebuild (shadow tables, atomic swap)
// on a read-model connection of its own, as the CLI would open, so the live projectors keep theirs. One replay at a
// time, whichever projection.
import type { JobControl, Jobs, StartResult } from '../app/jobs.ts';
import type { EventStore } from '../app/ports/eventStore.ts';
import type { Logger } from '../logger.ts';
import { projectionByName } from './projections.ts';
import type { ReadModel } from './readModel.ts';
import { rebuildProjection, type RebuildResult } from './rebuild.ts';

export const REPLAY_JOB = 'replay';

export interface ReplayDeps {
  store: EventStore;
  jobs: Jobs;
  /** a migrated read model on a connection of its own; closed when the replay ends */
  openReadModel: () => Promise<ReadModel>;
  logger: Logger;
  batchSize?: number;
}

export class Replays {
  constructor(private readonly d: ReplayDeps) {}

  /** Throws for an unknown projection; answers with the running job when a replay is under way. */
  start(name: string, trigger: string): StartResult<RebuildResult> {
    const projection = projectionByName(name);
    return this.d.jobs.start(REPLAY_JOB, { subject: projection.name, trigger }, async (ctl: JobControl) => {
      ctl.phase('waiting for the rebuild lock'); // held by another replay (e.g. the CLI's) until it ends
      const readModel = await this.d.openReadModel();
      try {
        return await rebuildProjection({
          store: this.d.store,
          readModel,
          projection,
          logger: this.d.logger,
          batchSize: this.d.batchSize,
          signal: ctl.signal,
          onPhase: (phase) => ctl.phase(phase),
          onProgress: (done, total) => ctl.progress(done, total),
        });
      } finally {
        await readModel.close();
      }
    });
  }

  view() {
    return this.d.jobs.view<RebuildResult>(REPLAY_JOB);
  }
}

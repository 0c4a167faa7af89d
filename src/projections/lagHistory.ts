// Projection lag over the last hour, sampled in memory by the serving process (the console's lag chart). A restart
// starts an empty history: `since` says how far back it goes.
import type { EventStore } from '../app/ports/eventStore.ts';
import type { Logger } from '../logger.ts';
import { projectionStatus } from './projector.ts';
import type { ReadModel } from './readModel.ts';

export interface LagSample {
  at: string;
  /** events behind the head, per projection */
  lag: Record<string, number>;
}

export class LagHistory {
  private readonly samples: LagSample[] = [];
  private readonly startedAt = Date.now();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: EventStore,
    private readonly readModel: ReadModel,
    private readonly logger: Logger,
    readonly intervalMs = 10_000,
    readonly windowMs = 60 * 60 * 1000,
  ) {}

  start(): void {
    if (this.timer) return;
    void this.sample();
    this.timer = setInterval(() => void this.sample(), this.intervalMs).unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  async sample(now = Date.now()): Promise<void> {
    try {
      const status = await projectionStatus(this.store, this.readModel);
      this.samples.push({ at: new Date(now).toISOString(), lag: Object.fromEntries(status.map((s) => [s.projection, s.lag])) });
      while (this.samples.length && Date.parse(this.samples[0]!.at) < now - this.windowMs) this.samples.shift();
    } catch (err) {
      this.logger.warn({ err }, 'projection_lag_sample_failed');
    }
  }

  /** The samples of the last hour, oldest first, and since when this process has been sampling. */
  history(): { since: string; interval_ms: number; window_ms: number; samples: LagSample[] } {
    return { since: new Date(this.startedAt).toISOString(), interval_ms: this.intervalMs, window_ms: this.windowMs, samples: [...this.samples] };
  }
}

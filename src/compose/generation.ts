// The generation saga with its pipeline: the aggregate repository over the ledger, the upstream budget (shared through
// Redis when there is a connection), the pipeline adapters, and the saga's metrics.
import type { Redis } from 'ioredis';
import type { AggregateRepository } from '../app/aggregates.ts';
import type { EventStore } from '../app/ports/eventStore.ts';
import { GenerationSaga } from '../app/saga.ts';
import { sagaMetrics } from '../app/sagaMetrics.ts';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { createRepository } from './ledger.ts';
import { createPipelineAdapters, createRateLimiter, type PipelineAdapters } from './pipeline.ts';

export interface Generation {
  saga: GenerationSaga;
  repo: AggregateRepository;
  pipeline: PipelineAdapters;
}

export async function createGeneration(
  config: Config,
  deps: {
    store: EventStore;
    workerId: string;
    logger: Logger;
    metrics: Metrics;
    redis?: Redis | undefined;
    /** the platform bridge's inbox, drained before a charge is refused (SagaDeps.pendingCredits) */
    pendingCredits?: () => Promise<boolean>;
  },
): Promise<Generation> {
  const { store, workerId, logger, metrics } = deps;
  const repo = createRepository(store, metrics);
  const pipeline = await createPipelineAdapters(config, { logger, metrics, rateLimiter: createRateLimiter(config, logger, deps.redis) });
  const saga = new GenerationSaga({
    repo,
    images: pipeline.inputImages,
    generator: pipeline.generator,
    results: pipeline.resultStore,
    workerId,
    clock: () => Date.now(),
    logger,
    observer: sagaMetrics(metrics),
    ...(deps.pendingCredits ? { pendingCredits: deps.pendingCredits } : {}),
    options: {
      leaseMs: config.LEASE_MS,
      maxAttempts: config.MAX_ATTEMPTS,
      max429Retries: config.OPENAI_MAX_429_RETRIES,
      signedUrlTtlSeconds: config.SIGNED_URL_TTL_SECONDS,
    },
  });
  return { saga, repo, pipeline };
}

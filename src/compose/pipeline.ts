// Chooses and builds the generation pipeline's adapters from config:
//   generator: OpenAI when OPENAI_API_KEY is set, else the labelled `preview` composite;
//   results:   Supabase Storage when SUPABASE_URL + SUPABASE_SERVICE_ROLE_KEY are set, else the local store
//              (served by the /files route, which needs `localStore`).
//   upstream budget: shared through Redis when there is a connection, else per process.
import type { Redis } from 'ioredis';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { ImageGenerator, InputImages, RateLimiter, ResultStore } from '../app/ports/pipeline.ts';
import { configureImageThreads } from '../adapters/images/imageThreads.ts';
import { createInputImages } from '../adapters/images/prepare.ts';
import { createOpenAIGenerator } from '../adapters/imagegen/openai.ts';
import { createPreviewGenerator } from '../adapters/imagegen/preview.ts';
import { MemoryRateLimiter } from '../adapters/ratelimit/memoryRateLimiter.ts';
import { RedisRateLimiter } from '../adapters/ratelimit/redisRateLimiter.ts';
import { createLocalResultStore, loadOrCreateSigningSecret, type LocalResultStore } from '../adapters/storage/local.ts';
import { createSupabaseResultStore } from '../adapters/storage/supabase.ts';

export interface PipelineAdapters {
  inputImages: InputImages;
  generator: ImageGenerator;
  resultStore: ResultStore;
  /** Set when results are stored locally: register `filesRoutes({ store: localStore })`. */
  localStore: LocalResultStore | null;
}

export function createRateLimiter(config: Pick<Config, 'OPENAI_RATE_LIMIT_PER_MIN' | 'OPENAI_RATE_LIMIT_KEY'>, logger: Logger, redis?: Redis): RateLimiter {
  return redis
    ? new RedisRateLimiter({ redis, logger, limit: config.OPENAI_RATE_LIMIT_PER_MIN, key: config.OPENAI_RATE_LIMIT_KEY })
    : new MemoryRateLimiter(config.OPENAI_RATE_LIMIT_PER_MIN);
}

/** Nothing here holds a connection or a thread of its own, so there is nothing to close. */
export async function createPipelineAdapters(
  config: Config,
  deps: { logger: Logger; metrics: Metrics; rateLimiter?: RateLimiter },
): Promise<PipelineAdapters> {
  const { logger, metrics } = deps;
  configureImageThreads({ nice: config.IMAGE_THREAD_NICE, logger });
  const inputImages = createInputImages({
    allowHosts: config.IMAGE_FETCH_ALLOW_HOSTS,
    fetchTimeoutMs: config.IMAGE_FETCH_TIMEOUT_MS,
    maxBytes: config.IMAGE_MAX_BYTES,
    maxPixels: config.IMAGE_MAX_PIXELS,
    logger,
  });

  if (config.IMAGE_FETCH_ALLOW_HOSTS.length > 0) {
    logger.warn({ hosts: config.IMAGE_FETCH_ALLOW_HOSTS }, 'IMAGE_FETCH_ALLOW_HOSTS set: these hosts skip the SSRF address check');
  }

  const generator = config.OPENAI_API_KEY
    ? createOpenAIGenerator({
        apiKey: config.OPENAI_API_KEY,
        baseURL: config.OPENAI_BASE_URL,
        model: config.OPENAI_MODEL,
        quality: config.OPENAI_QUALITY,
        size: config.OPENAI_SIZE,
        timeoutMs: config.OPENAI_TIMEOUT_MS,
        maxRetries: config.OPENAI_MAX_RETRIES,
        rateLimiter: deps.rateLimiter,
        metrics,
        logger,
      })
    : createPreviewGenerator();
  if (generator.provider === 'preview') logger.warn('OPENAI_API_KEY not set: generating with the offline PREVIEW composite (labelled on every image; not a try-on)');

  let localStore: LocalResultStore | null = null;
  let resultStore: ResultStore;
  if (config.SUPABASE_URL && config.SUPABASE_SERVICE_ROLE_KEY) {
    resultStore = createSupabaseResultStore({
      url: config.SUPABASE_URL,
      serviceRoleKey: config.SUPABASE_SERVICE_ROLE_KEY,
      bucket: config.STORAGE_BUCKET,
      logger,
    });
  } else {
    localStore = createLocalResultStore({
      dataDir: config.DATA_DIR,
      publicBaseUrl: config.PUBLIC_BASE_URL ?? `http://localhost:${config.PORT}`,
      secret: await loadOrCreateSigningSecret(config.DATA_DIR, config.URL_SIGNING_SECRET),
    });
    resultStore = localStore;
  }
  logger.info({ generator: generator.provider, results: resultStore.kind }, 'pipeline_adapters');
  return { inputImages, generator, resultStore, localStore };
}

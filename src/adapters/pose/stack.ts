// Composition helper for main.ts: the pose estimator (worker threads) + the shared safe download + the use case.
import type { Config } from '../../config.ts';
import type { Logger } from '../../logger.ts';
import type { Metrics } from '../../metrics.ts';
import { createSizeRecommender, ImageUnavailableError, type ImageSource, type SizeRecommender } from '../../app/sizeRecommendation.ts';
import { ImageFetchError, safeFetch } from '../images/safeFetch.ts';
import { createPoseEstimator, type PoseEstimator } from './estimator.ts';

/** The platform proxy gives the worker 5 s in total, so the download gets at most that (as in the original). */
export const SIZE_REC_FETCH_TIMEOUT_MS = 5000;

export function safeImageSource(config: Pick<Config, 'IMAGE_FETCH_ALLOW_HOSTS' | 'IMAGE_FETCH_TIMEOUT_MS' | 'IMAGE_MAX_BYTES'>): ImageSource {
  return {
    async fetch(url) {
      try {
        const { bytes } = await safeFetch(url, {
          allowHosts: config.IMAGE_FETCH_ALLOW_HOSTS,
          timeoutMs: Math.min(config.IMAGE_FETCH_TIMEOUT_MS, SIZE_REC_FETCH_TIMEOUT_MS),
          maxBytes: config.IMAGE_MAX_BYTES,
        });
        return bytes;
      } catch (err) {
        if (err instanceof ImageFetchError) throw new ImageUnavailableError(err.code, err.message);
        throw err;
      }
    },
  };
}

export interface SizeRecStack {
  pose: PoseEstimator;
  recommend: SizeRecommender;
}

type StackConfig = Pick<
  Config,
  'POSE_MODEL' | 'POSE_QUEUE_MAX' | 'POSE_TIMEOUT_MS' | 'IMAGE_FETCH_ALLOW_HOSTS' | 'IMAGE_FETCH_TIMEOUT_MS' | 'IMAGE_MAX_BYTES' | 'IMAGE_MAX_PIXELS'
> &
  Partial<Pick<Config, 'POSE_WORKERS'>>;

/** Builds everything `/estimate-body` needs. Call `pose.load()` at start (when POSE_ENABLED) and `pose.close()` on shutdown. */
export function createSizeRecStack(config: StackConfig, logger: Logger, metrics?: Metrics): SizeRecStack {
  const pose = createPoseEstimator({
    model: config.POSE_MODEL,
    queueMax: config.POSE_QUEUE_MAX,
    timeoutMs: config.POSE_TIMEOUT_MS,
    maxPixels: config.IMAGE_MAX_PIXELS,
    workers: config.POSE_WORKERS,
    logger,
    metrics,
  });
  const recommend = createSizeRecommender({ images: safeImageSource(config), pose, logger, metrics });
  return { pose, recommend };
}

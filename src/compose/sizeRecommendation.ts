// The size recommendation: the pose estimator (worker threads) + the shared safe download + the use case.
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { createSizeRecommender, type SizeRecommender } from '../app/sizeRecommendation.ts';
import { safeImageSource } from '../adapters/images/imageSource.ts';
import { createPoseEstimator, type PoseEstimator } from '../adapters/pose/estimator.ts';
import type { Resource } from './scope.ts';

export interface SizeRecStack {
  pose: PoseEstimator;
  recommend: SizeRecommender;
}

type StackConfig = Pick<
  Config,
  'POSE_MODEL' | 'POSE_QUEUE_MAX' | 'POSE_TIMEOUT_MS' | 'IMAGE_FETCH_ALLOW_HOSTS' | 'IMAGE_FETCH_TIMEOUT_MS' | 'IMAGE_MAX_BYTES' | 'IMAGE_MAX_PIXELS'
> &
  Partial<Pick<Config, 'POSE_WORKERS'>>;

/** Builds everything `/estimate-body` needs. Call `pose.load()` at start (when POSE_ENABLED); closing stops the pose threads. */
export function createSizeRecStack(config: StackConfig, logger: Logger, metrics?: Metrics): Resource<SizeRecStack> {
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
  return { value: { pose, recommend }, close: () => pose.close() };
}

// Use case: size recommendation for one photo. Download (safe fetch, through the ImageSource port) -> pose estimate
// (worker thread, through the PoseEstimatorPort) -> sizing (pure, src/domain/sizing.ts).
import { createHash } from 'node:crypto';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import {
  recommendSize,
  type BodyPart,
  type ChartSize,
  type FitPreference,
  type Gender,
  type PosePoint,
  type SizeRecommendation,
} from '../domain/sizing.ts';

/** The image could not be fetched or decoded (answers 400). */
export class ImageUnavailableError extends Error {
  override readonly name = 'ImageUnavailableError';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The pose model cannot take the request now (answers 503 with Retry-After). */
export class PoseUnavailableError extends Error {
  override readonly name = 'PoseUnavailableError';
  constructor(
    readonly kind: 'not_ready' | 'overloaded' | 'timeout',
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(message);
  }
}

/** No person, or not the whole body, in the picture (answers 422). */
export class NoPoseError extends Error {
  override readonly name = 'NoPoseError';
  constructor(
    message: string,
    readonly missing: BodyPart[],
  ) {
    super(message);
  }
}

/** Downloads one image. Rejects with ImageUnavailableError for anything the caller got wrong. */
export interface ImageSource {
  fetch(url: string): Promise<Uint8Array>;
}

/** What the use case needs from a pose estimate (the pose adapter's PoseResult satisfies it). */
export type PoseEstimate =
  | { found: true; presence: number; landmarks: PosePoint[]; worldLandmarks: PosePoint[] }
  | { found: false; reason: string };

/** Rejects with ImageUnavailableError (undecodable bytes) or PoseUnavailableError. */
export interface PoseEstimatorPort {
  ready(): boolean;
  estimate(image: Uint8Array): Promise<PoseEstimate>;
}

export interface SizeRecRequest {
  imageUrl: string;
  heightCm: number;
  sizeChart?: ChartSize[];
  gender?: Gender;
  fitPreference?: FitPreference;
}

/** The request-scoped logger (fastify's req.log is a pino child carrying the request id). */
export type RequestLog = Pick<Logger, 'info' | 'warn' | 'error'>;

export type SizeRecommender = (req: SizeRecRequest, log?: RequestLog) => Promise<SizeRecommendation>;

export interface SizeRecDeps {
  images: ImageSource;
  pose: PoseEstimatorPort;
  logger: Logger;
  metrics?: Pick<Metrics, 'sizeRecRequests' | 'sizeRecSeconds'>;
}

export const NO_POSE_MESSAGE = 'Could not detect full body pose from image';

export function createSizeRecommender({ images, pose, logger, metrics }: SizeRecDeps): SizeRecommender {
  return async (req, log: RequestLog = logger) => {
    const started = performance.now();
    let outcome = 'error';
    // The URL may carry a signed token: log only a hash of it (as the original did).
    const imageUrlHash = createHash('sha256').update(req.imageUrl).digest('hex').slice(0, 12);
    log.info({ image_url_hash: imageUrlHash, height_cm: req.heightCm }, 'size_rec_request_started');
    try {
      if (!pose.ready()) throw new PoseUnavailableError('not_ready', 'pose model is not loaded', 5);
      const bytes = await images.fetch(req.imageUrl);
      const estimate = await pose.estimate(bytes);
      if (!estimate.found) throw new NoPoseError(NO_POSE_MESSAGE, []);
      const result = recommendSize({
        heightCm: req.heightCm,
        landmarks: estimate.landmarks,
        worldLandmarks: estimate.worldLandmarks,
        presence: estimate.presence,
        gender: req.gender,
        fitPreference: req.fitPreference,
        sizeChart: req.sizeChart,
      });
      if (!result.ok) throw new NoPoseError(result.message, result.missing);
      outcome = 'ok';
      log.info(
        { recommended_size: result.value.recommendedSize, confidence: result.value.confidence, chart: result.value.chart },
        'size_rec_request_succeeded',
      );
      return result.value;
    } catch (err) {
      if (err instanceof ImageUnavailableError) {
        outcome = 'bad_image';
        log.warn({ code: err.code, error: err.message }, 'size_rec_image_download_failed');
      } else if (err instanceof PoseUnavailableError) {
        outcome = err.kind === 'not_ready' ? 'error' : 'overloaded';
        log.warn({ kind: err.kind }, err.kind === 'not_ready' ? 'size_rec_model_not_loaded' : 'size_rec_overloaded');
      } else if (err instanceof NoPoseError) {
        outcome = 'no_pose';
        log.info({ missing: err.missing }, 'size_rec_pose_estimation_failed');
      } else {
        log.error({ err }, 'size_rec_unexpected_error');
      }
      throw err;
    } finally {
      metrics?.sizeRecRequests.inc({ outcome });
      metrics?.sizeRecSeconds.observe((performance.now() - started) / 1000);
    }
  };
}

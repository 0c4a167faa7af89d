export { createPoseEstimator, PoseInputError, PoseNotReadyError, PoseOverloadedError, PoseTimeoutError } from './estimator.ts';
export type { PoseEstimator, PoseEstimatorOptions } from './estimator.ts';
export type { Landmark, PoseFound, PoseModelName, PoseNotFound, PoseResult } from './types.ts';

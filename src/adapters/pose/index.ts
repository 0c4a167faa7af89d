export { createPoseEstimator, PoseInputError, PoseNotReadyError, PoseOverloadedError, PoseTimeoutError } from './estimator.ts';
export type { PoseEstimator, PoseEstimatorOptions } from './estimator.ts';
export { createSizeRecStack, safeImageSource, type SizeRecStack } from './stack.ts';
export type { Landmark, PoseFound, PoseModelName, PoseNotFound, PoseResult } from './types.ts';

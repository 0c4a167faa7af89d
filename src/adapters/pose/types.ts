// Plain data shared by the pose worker thread and the main thread (structured-clone safe: no classes, no functions).

export type PoseModelName = 'lite' | 'full' | 'heavy';

/** One BlazePose landmark. Image landmarks: x, y normalised to the (EXIF-oriented) image, z in the same scale as x.
 *  World landmarks: metres, origin at the hip centre, y pointing down. visibility/presence are probabilities. */
export interface Landmark {
  x: number;
  y: number;
  z: number;
  visibility: number;
  presence: number;
}

export interface PoseFound {
  found: true;
  /** size of the EXIF-oriented input image, in pixels */
  imageWidth: number;
  imageHeight: number;
  detectorScore: number;
  /** pose-present probability from the second landmark pass */
  presence: number;
  /** the 33 MediaPipe landmarks (helper points 33/34 dropped) */
  landmarks: Landmark[];
  worldLandmarks: Landmark[];
  timings: { decodeMs: number; detectMs: number; landmarkMs: number };
}

export interface PoseNotFound {
  found: false;
  imageWidth: number;
  imageHeight: number;
  reason: 'no_detection' | 'low_presence';
  detectorScore: number;
  presence: number;
}

export type PoseResult = PoseFound | PoseNotFound;

/** Messages between the estimator (main thread) and poseWorker.ts. */
export type ToWorker = { type: 'estimate'; id: number; bytes: Uint8Array; maxPixels: number };
export type FromWorker =
  | { type: 'ready'; loadMs: number }
  | { type: 'load_failed'; message: string }
  | { type: 'result'; id: number; result: PoseResult; inferenceMs: number }
  | { type: 'error'; id: number; kind: 'decode' | 'internal'; message: string };

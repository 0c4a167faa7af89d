// A synthetic BlazePose-like skeleton (33 world landmarks in metres, y down, origin at the hip centre, the person
// facing the camera) and its image projection, for the sizing unit and property tests.
import type { PosePoint } from '../../src/domain/sizing.ts';

export interface SkeletonParams {
  /** half the shoulder landmark distance, metres */
  shoulderHalf?: number;
  /** half the hip landmark distance, metres */
  hipHalf?: number;
  /** upper-arm angle away from the body, degrees */
  armDeg?: number;
  /** turn about the vertical axis, degrees (0 = facing the camera) */
  yawDeg?: number;
  /** trunk lean sideways, degrees */
  leanDeg?: number;
  visibility?: number;
}

/** Left/right landmark pairs of the 33-point layout. */
export const PAIRS: ReadonlyArray<readonly [number, number]> = [
  [1, 4], [2, 5], [3, 6], [7, 8], [9, 10], [11, 12], [13, 14], [15, 16], [17, 18], [19, 20], [21, 22],
  [23, 24], [25, 26], [27, 28], [29, 30], [31, 32],
];

export function skeleton(p: SkeletonParams = {}): { world: PosePoint[]; image: PosePoint[] } {
  const sw = p.shoulderHalf ?? 0.17;
  const hw = p.hipHalf ?? 0.12;
  const arm = ((p.armDeg ?? 15) * Math.PI) / 180;
  const vis = p.visibility ?? 0.99;
  const pts: Array<[number, number, number]> = new Array(33);
  // left side has +x (the person's left appears on the image's right)
  const side = (l: number, r: number, x: number, y: number, z: number) => {
    pts[l] = [x, y, z];
    pts[r] = [-x, y, z];
  };
  pts[0] = [0, -0.62, -0.1];
  side(1, 4, 0.015, -0.66, -0.08);
  side(2, 5, 0.03, -0.66, -0.08);
  side(3, 6, 0.045, -0.66, -0.07);
  side(7, 8, 0.07, -0.64, 0);
  side(9, 10, 0.025, -0.58, -0.09);
  const sy = -0.48;
  side(11, 12, sw, sy, 0);
  const ex = sw + 0.28 * Math.sin(arm);
  const ey = sy + 0.28 * Math.cos(arm);
  side(13, 14, ex, ey, 0);
  const wx = ex + 0.25 * Math.sin(arm);
  const wy = ey + 0.25 * Math.cos(arm);
  side(15, 16, wx, wy, 0);
  side(17, 18, wx + 0.02, wy + 0.08, -0.01);
  side(19, 20, wx, wy + 0.09, -0.01);
  side(21, 22, wx - 0.02, wy + 0.05, -0.02);
  side(23, 24, hw, 0, 0);
  side(25, 26, hw * 0.9, 0.43, -0.01);
  side(27, 28, hw * 0.85, 0.85, 0.02);
  side(29, 30, hw * 0.85, 0.9, 0.06);
  side(31, 32, hw * 0.85, 0.9, -0.1);
  const yaw = ((p.yawDeg ?? 0) * Math.PI) / 180;
  const lean = ((p.leanDeg ?? 0) * Math.PI) / 180;
  const world = pts.map(([x0, y0, z0]) => {
    // lean: rotate the upper body (above the hips) in the image plane about the hip centre
    let x = x0;
    let y = y0;
    if (y0 < 0) {
      x = x0 * Math.cos(lean) - y0 * Math.sin(lean);
      y = x0 * Math.sin(lean) + y0 * Math.cos(lean);
    }
    return { x: x * Math.cos(yaw) + z0 * Math.sin(yaw), y, z: -x * Math.sin(yaw) + z0 * Math.cos(yaw), visibility: vis };
  });
  const image = world.map((w) => ({ x: 0.5 + w.x * 0.45, y: 0.42 + w.y * 0.5, z: w.z * 0.45, visibility: w.visibility }));
  return { world, image };
}

/** The same pose seen in a mirror: x negated (image: 1 - x) and left/right landmarks swapped. */
export function mirror(points: readonly PosePoint[], image: boolean): PosePoint[] {
  const out = points.map((q) => ({ ...q, x: image ? 1 - q.x : -q.x }));
  for (const [l, r] of PAIRS) [out[l], out[r]] = [out[r]!, out[l]!];
  return out;
}

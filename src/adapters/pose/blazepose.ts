// The BlazePose pipeline (MediaPipe's pose_landmark_cpu graph, re-done in plain TS): detector on a letterboxed
// 224x224 image -> anchors decode + weighted NMS -> rotated ROI from the hip-centre/full-body keypoints -> landmark
// model on a 256x256 crop -> a second landmark pass on the ROI rebuilt from helper points 33/34 (MediaPipe's
// tracking crop; it fixes compressed results on tight crops) -> image and world landmarks.
// Runs inside the pose worker thread. Input/output buffers are allocated once per pipeline and reused.
import type { Landmark, PoseResult } from './types.ts';

/** Runs one model on one float32 input and returns the outputs it was asked for (in model output order). */
export interface ModelRunner {
  run(input: Float32Array, want: readonly number[]): Promise<Float32Array[]>;
}

const DET_SIZE = 224;
const LM_SIZE = 256;
const NUM_LM = 39; // 33 landmarks + 6 helper points (33 hip centre, 34 body top, ...)
const DET_SCORE_MIN = 0.5;
const NMS_IOU = 0.3;
const PRESENCE_MIN = 0.5;
const ROI_SCALE = 1.25;

interface Rect {
  cx: number; // pixels
  cy: number;
  side: number; // pixels (square)
  rotation: number; // radians
}

interface Detection {
  score: number;
  box: [number, number, number, number]; // xmin, ymin, xmax, ymax (normalised to the letterbox square)
  kps: number[]; // 4 keypoints x,y (normalised)
}

/** SSD anchors for the pose detector: strides 8,16,32,32,32, 2 anchors per cell per layer, fixed size. */
function makeAnchors(): Float32Array {
  const layers = [
    { stride: 8, perCell: 2 },
    { stride: 16, perCell: 2 },
    { stride: 32, perCell: 6 }, // three stride-32 layers share one feature map
  ];
  const out: number[] = [];
  for (const { stride, perCell } of layers) {
    const fm = Math.ceil(DET_SIZE / stride);
    for (let y = 0; y < fm; y++)
      for (let x = 0; x < fm; x++) for (let a = 0; a < perCell; a++) out.push((x + 0.5) / fm, (y + 0.5) / fm);
  }
  return Float32Array.from(out);
}
const ANCHORS = makeAnchors(); // 2254 x (cx, cy)

const sigmoid = (v: number) => 1 / (1 + Math.exp(-Math.max(-100, Math.min(100, v))));

function iou(a: Detection['box'], b: Detection['box']): number {
  const ix = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const iy = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = ix * iy;
  const union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
  return union > 0 ? inter / union : 0;
}

/** Decodes the detector outputs and returns the best detection after weighted NMS (one person), or null. */
export function decodeDetections(boxes: Float32Array, scores: Float32Array): Detection | null {
  const cands: Detection[] = [];
  const n = ANCHORS.length / 2;
  for (let i = 0; i < n; i++) {
    const s = sigmoid(scores[i]!);
    if (s < DET_SCORE_MIN) continue;
    const ax = ANCHORS[2 * i]!;
    const ay = ANCHORS[2 * i + 1]!;
    const o = i * 12;
    const cx = boxes[o]! / DET_SIZE + ax;
    const cy = boxes[o + 1]! / DET_SIZE + ay;
    const w = boxes[o + 2]! / DET_SIZE;
    const h = boxes[o + 3]! / DET_SIZE;
    const kps: number[] = [];
    for (let k = 0; k < 4; k++) kps.push(boxes[o + 4 + 2 * k]! / DET_SIZE + ax, boxes[o + 5 + 2 * k]! / DET_SIZE + ay);
    cands.push({ score: s, box: [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], kps });
  }
  if (cands.length === 0) return null;
  cands.sort((a, b) => b.score - a.score);
  // Weighted NMS (MediaPipe WEIGHTED): the top detection's cluster is averaged by score. Only the best cluster is
  // needed because the service estimates one person.
  const top = cands[0]!;
  let wsum = 0;
  const box = [0, 0, 0, 0];
  const kps = new Array<number>(8).fill(0);
  for (const c of cands) {
    if (iou(top.box, c.box) <= NMS_IOU) continue;
    wsum += c.score;
    for (let j = 0; j < 4; j++) box[j]! += c.box[j]! * c.score;
    for (let j = 0; j < 8; j++) kps[j]! += c.kps[j]! * c.score;
  }
  return {
    score: top.score,
    box: box.map((v) => v / wsum) as Detection['box'],
    kps: kps.map((v) => v / wsum),
  };
}

/** MediaPipe's AlignmentPointsRects + RectTransformation(scale 1.25, square): centre at p0, rotated so p0->p1 points up. */
export function roiFromPoints(x0: number, y0: number, x1: number, y1: number): Rect {
  const dist = Math.hypot(x1 - x0, y1 - y0);
  let rotation = Math.PI / 2 - Math.atan2(-(y1 - y0), x1 - x0);
  rotation -= 2 * Math.PI * Math.floor((rotation + Math.PI) / (2 * Math.PI)); // normalise to [-pi, pi)
  return { cx: x0, cy: y0, side: 2 * dist * ROI_SCALE, rotation };
}

/**
 * Samples the rotated square `rect` of an RGB8 image into `dst` (size x size x 3, float), value * scale + offset,
 * bilinear with zero border. When the crop shrinks the image by more than 1.5x, each output pixel averages a small
 * grid of bilinear samples so that the downscale does not alias.
 */
export function sampleCrop(
  rgb: Uint8Array,
  width: number,
  height: number,
  rect: Rect,
  size: number,
  dst: Float32Array,
  scale: number,
  offset: number,
): void {
  const cos = Math.cos(rect.rotation);
  const sin = Math.sin(rect.rotation);
  const step = rect.side / size; // source pixels per output pixel
  const ss = Math.min(4, Math.max(1, Math.ceil(step / 1.5)));
  const k = scale / (ss * ss);
  const stride = width * 3;
  // Affine map from output sub-sample (u + du, v + dv) to source: x = x0 + ux*u + vx*v (pixel-centre convention:
  // continuous coordinate c is pixel c - 0.5).
  const ux = cos * step;
  const uy = sin * step;
  const vx = -sin * step;
  const vy = cos * step;
  const ox = rect.cx - rect.side * 0.5 * (cos - sin) - 0.5;
  const oy = rect.cy - rect.side * 0.5 * (sin + cos) - 0.5;
  for (let v = 0; v < size; v++) {
    for (let u = 0; u < size; u++) {
      let r = 0;
      let g = 0;
      let b = 0;
      for (let sy = 0; sy < ss; sy++) {
        const vv = v + (sy + 0.5) / ss;
        for (let sx = 0; sx < ss; sx++) {
          const uu = u + (sx + 0.5) / ss;
          const x = ox + ux * uu + vx * vv;
          const y = oy + uy * uu + vy * vv;
          const x0 = Math.floor(x);
          const y0 = Math.floor(y);
          const fx = x - x0;
          const fy = y - y0;
          if (x0 >= 0 && y0 >= 0 && x0 + 1 < width && y0 + 1 < height) {
            // fast path: all four taps inside the image
            const p = y0 * stride + x0 * 3;
            const q = p + stride;
            const w00 = (1 - fx) * (1 - fy);
            const w01 = fx * (1 - fy);
            const w10 = (1 - fx) * fy;
            const w11 = fx * fy;
            r += w00 * rgb[p]! + w01 * rgb[p + 3]! + w10 * rgb[q]! + w11 * rgb[q + 3]!;
            g += w00 * rgb[p + 1]! + w01 * rgb[p + 4]! + w10 * rgb[q + 1]! + w11 * rgb[q + 4]!;
            b += w00 * rgb[p + 2]! + w01 * rgb[p + 5]! + w10 * rgb[q + 2]! + w11 * rgb[q + 5]!;
            continue;
          }
          if (x0 < -1 || y0 < -1 || x0 >= width || y0 >= height) continue; // zero border
          for (let dy = 0; dy < 2; dy++) {
            const yy = y0 + dy;
            if (yy < 0 || yy >= height) continue;
            const wy = dy === 0 ? 1 - fy : fy;
            for (let dx = 0; dx < 2; dx++) {
              const xx = x0 + dx;
              if (xx < 0 || xx >= width) continue;
              const w = wy * (dx === 0 ? 1 - fx : fx);
              const p = yy * stride + xx * 3;
              r += w * rgb[p]!;
              g += w * rgb[p + 1]!;
              b += w * rgb[p + 2]!;
            }
          }
        }
      }
      const o = (v * size + u) * 3;
      dst[o] = r * k + offset;
      dst[o + 1] = g * k + offset;
      dst[o + 2] = b * k + offset;
    }
  }
}

interface LandmarkPass {
  presence: number;
  /** 39 landmarks in image pixels (z in pixels too) */
  image: Landmark[];
  world: Landmark[];
}

type WithoutSize<T> = T extends unknown ? Omit<T, 'imageWidth' | 'imageHeight'> : never;
/** A pose result before the worker adds the image size and decode time. */
export type PoseCore = WithoutSize<PoseResult>;

export interface BlazePose {
  estimate(rgb: Uint8Array, width: number, height: number): Promise<PoseCore>;
}

/** Left/right landmark pairs among the 39 outputs (the helper points 33-38 are central). */
const LR_PAIRS: ReadonlyArray<readonly [number, number]> = [
  [1, 4], [2, 5], [3, 6], [7, 8], [9, 10], [11, 12], [13, 14], [15, 16], [17, 18], [19, 20], [21, 22],
  [23, 24], [25, 26], [27, 28], [29, 30], [31, 32],
];
const MIRROR_INDEX: number[] = (() => {
  const m = Array.from({ length: NUM_LM }, (_, i) => i);
  for (const [l, r] of LR_PAIRS) [m[l], m[r]] = [r, l];
  return m;
})();

export interface BlazePoseOptions {
  /**
   * Also run the final landmark pass on the horizontally mirrored crop and average the two (left/right swapped
   * back). The network is not mirror-symmetric; averaging halves that bias, so a photo and its mirror image give
   * nearly the same measurements. Costs one more landmark inference.
   */
  mirrorAverage?: boolean;
  /**
   * Model for the first landmark pass, whose only job is to place the final crop (helper points 33/34). The lite
   * model does that well at about half the cost of full; default: the main landmark model.
   */
  roiLandmarker?: ModelRunner;
}

export function createBlazePose(detector: ModelRunner, landmarker: ModelRunner, options: BlazePoseOptions = {}): BlazePose {
  const detInput = new Float32Array(DET_SIZE * DET_SIZE * 3);
  const lmInput = new Float32Array(LM_SIZE * LM_SIZE * 3);
  const lmMirror = new Float32Array(LM_SIZE * LM_SIZE * 3);

  /** Raw landmark model outputs -> landmarks in crop-normalised units (x,y in [-0.5,0.5]) and world metres. */
  async function runLandmarks(model: ModelRunner, input: Float32Array, mirrored: boolean) {
    const [raw, flag, world] = await model.run(input, [0, 1, 4]);
    const sign = mirrored ? -1 : 1;
    const crop: Landmark[] = new Array(NUM_LM);
    const wld: Landmark[] = new Array(NUM_LM);
    for (let j = 0; j < NUM_LM; j++) {
      const i = mirrored ? MIRROR_INDEX[j]! : j; // a mirrored crop's "left shoulder" is the real right shoulder
      const o = j * 5;
      const visibility = sigmoid(raw![o + 3]!);
      const presence = sigmoid(raw![o + 4]!);
      crop[i] = { x: sign * (raw![o]! / LM_SIZE - 0.5), y: raw![o + 1]! / LM_SIZE - 0.5, z: raw![o + 2]! / LM_SIZE, visibility, presence };
      wld[i] = { x: sign * world![j * 3]!, y: world![j * 3 + 1]!, z: world![j * 3 + 2]!, visibility, presence };
    }
    return { presence: flag![0]!, crop, world: wld };
  }

  async function landmarkPass(
    model: ModelRunner,
    rgb: Uint8Array,
    width: number,
    height: number,
    roi: Rect,
    mirror: boolean,
  ): Promise<LandmarkPass> {
    sampleCrop(rgb, width, height, roi, LM_SIZE, lmInput, 1 / 255, 0);
    let out = await runLandmarks(model, lmInput, false);
    if (mirror) {
      const row = LM_SIZE * 3;
      for (let y = 0; y < LM_SIZE; y++)
        for (let x = 0; x < LM_SIZE; x++) {
          const a = y * row + x * 3;
          const b = y * row + (LM_SIZE - 1 - x) * 3;
          lmMirror[b] = lmInput[a]!;
          lmMirror[b + 1] = lmInput[a + 1]!;
          lmMirror[b + 2] = lmInput[a + 2]!;
        }
      const m = await runLandmarks(model, lmMirror, true);
      const avg = (p: Landmark, q: Landmark): Landmark => ({
        x: (p.x + q.x) / 2,
        y: (p.y + q.y) / 2,
        z: (p.z + q.z) / 2,
        visibility: (p.visibility + q.visibility) / 2,
        presence: (p.presence + q.presence) / 2,
      });
      out = {
        presence: (out.presence + m.presence) / 2,
        crop: out.crop.map((p, i) => avg(p, m.crop[i]!)),
        world: out.world.map((p, i) => avg(p, m.world[i]!)),
      };
    }
    const cos = Math.cos(roi.rotation);
    const sin = Math.sin(roi.rotation);
    return {
      presence: out.presence,
      image: out.crop.map((l) => ({
        ...l,
        x: roi.cx + roi.side * (cos * l.x - sin * l.y),
        y: roi.cy + roi.side * (sin * l.x + cos * l.y),
        z: l.z * roi.side,
      })),
      world: out.world.map((l) => ({ ...l, x: cos * l.x - sin * l.y, y: sin * l.x + cos * l.y })),
    };
  }

  return {
    async estimate(rgb, width, height) {
      const t0 = performance.now();
      const side = Math.max(width, height);
      const letterbox: Rect = { cx: width / 2, cy: height / 2, side, rotation: 0 };
      sampleCrop(rgb, width, height, letterbox, DET_SIZE, detInput, 2 / 255, -1);
      const [boxes, scores] = await detector.run(detInput, [0, 1]);
      const det = decodeDetections(boxes!, scores!);
      const t1 = performance.now();
      if (!det) return { found: false, reason: 'no_detection', detectorScore: maxScore(scores!), presence: 0 };
      // letterbox-normalised -> image pixels
      const px = (v: number) => letterbox.cx + side * (v - 0.5);
      const py = (v: number) => letterbox.cy + side * (v - 0.5);
      const roi1 = roiFromPoints(px(det.kps[0]!), py(det.kps[1]!), px(det.kps[2]!), py(det.kps[3]!));
      const first = await landmarkPass(options.roiLandmarker ?? landmarker, rgb, width, height, roi1, false);
      let final = first;
      if (first.presence >= PRESENCE_MIN || options.roiLandmarker) {
        const hc = first.image[33]!;
        const top = first.image[34]!;
        final = await landmarkPass(landmarker, rgb, width, height, roiFromPoints(hc.x, hc.y, top.x, top.y), options.mirrorAverage ?? false);
      }
      const t2 = performance.now();
      if (final.presence < PRESENCE_MIN) {
        return { found: false, reason: 'low_presence', detectorScore: det.score, presence: final.presence };
      }
      const landmarks = final.image.slice(0, 33).map((l) => ({ ...l, x: l.x / width, y: l.y / height, z: l.z / width }));
      return {
        found: true,
        detectorScore: det.score,
        presence: final.presence,
        landmarks,
        worldLandmarks: final.world.slice(0, 33),
        timings: { decodeMs: 0, detectMs: t1 - t0, landmarkMs: t2 - t1 },
      };
    },
  };
}

function maxScore(scores: Float32Array): number {
  let m = -Infinity;
  for (const s of scores) if (s > m) m = s;
  return sigmoid(m);
}

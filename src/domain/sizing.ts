// Size recommendation from BlazePose landmarks: pure functions, no I/O. The body model and every constant are
// documented in docs/size-recommendation.md; keep the two in step.
//
// Steps: (1) the whole body must be in the picture; (2) world landmarks (metres, arbitrary model scale) are scaled
// so that the skeleton's head-to-ankle chain matches the stated height; (3) joint distances become body breadths,
// breadths become circumferences through an elliptical cross-section model; (4) a size chart (default by gender,
// or the store's) picks the size, shifted by the fit preference; (5) confidence from visibility, presence and pose
// quality decides how wide the size range is.

/** Landmark as produced by the pose adapter (image: normalised x,y; world: metres, y down). */
export interface PosePoint {
  x: number;
  y: number;
  z: number;
  visibility: number;
}

export type Gender = 'male' | 'female' | 'unisex';
export type FitPreference = 'tight' | 'regular' | 'loose';
export type BodyType = 'athletic' | 'slim' | 'average' | 'broad';
export type BodyPart = 'head' | 'shoulders' | 'hips' | 'knees' | 'ankles';

/** One size of a chart: upper bounds (cm, inclusive) per measurement; a size with no bound is open-ended. */
export interface ChartSize {
  size: string;
  chest_cm?: number;
  waist_cm?: number;
  hip_cm?: number;
}

export interface SizeChart {
  name: string;
  /** smallest to largest */
  sizes: readonly ChartSize[];
}

export interface SizingInput {
  heightCm: number;
  /** 33 image landmarks, normalised to the image */
  landmarks: readonly PosePoint[];
  /** 33 world landmarks in metres */
  worldLandmarks: readonly PosePoint[];
  /** pose-present probability */
  presence: number;
  gender?: Gender;
  fitPreference?: FitPreference;
  /** a store's own chart; replaces the default chart */
  sizeChart?: readonly ChartSize[];
}

export interface Measurements {
  chestCm: number;
  waistCm: number;
  hipCm: number;
  shoulderCm: number;
}

export interface PoseQuality {
  /** 1 = facing the camera */
  frontal: number;
  /** 1 = trunk vertical */
  upright: number;
  /** 1 = upper arms clearly away from the torso */
  armsAway: number;
  /** mean visibility of the key landmarks */
  visibility: number;
}

export interface SizeRecommendation {
  recommendedSize: string;
  measurements: Measurements;
  confidence: number;
  bodyType: BodyType;
  sizeRange: { lower: string; upper: string };
  chart: string;
  quality: PoseQuality;
}

export type SizingOutcome =
  | { ok: true; value: SizeRecommendation }
  | { ok: false; reason: 'body_not_visible'; missing: BodyPart[]; message: string };

// ---------------------------------------------------------------------------------------------------------------
// Landmark indices (MediaPipe 33-point layout)
const NOSE = 0;
const L_EYE = 2;
const R_EYE = 5;
const L_SHOULDER = 11;
const R_SHOULDER = 12;
const L_ELBOW = 13;
const R_ELBOW = 14;
const L_HIP = 23;
const R_HIP = 24;
const L_KNEE = 25;
const R_KNEE = 26;
const L_ANKLE = 27;
const R_ANKLE = 28;

/** Parts that must be in the picture, top to bottom, with their landmarks (left/right pairs together). */
const PARTS: ReadonlyArray<readonly [BodyPart, readonly number[]]> = [
  ['head', [NOSE, L_EYE, R_EYE]],
  ['shoulders', [L_SHOULDER, R_SHOULDER]],
  ['hips', [L_HIP, R_HIP]],
  ['knees', [L_KNEE, R_KNEE]],
  ['ankles', [L_ANKLE, R_ANKLE]],
];
export const VISIBILITY_MIN = 0.5;
/** How far outside the frame (fraction of the image) a landmark may sit and still count as in the picture. */
const FRAME_MARGIN = 0.02;

// Body model constants (see docs/size-recommendation.md for where they come from).
/** Head-to-ankle skeletal chain (eyes->shoulder centre->hip centre->knee->ankle) as a fraction of stature. */
export const CHAIN_TO_STATURE = 0.9;
/** Shoulder landmark distance -> shoulder (biacromial) breadth. */
const SHOULDER_FROM_JOINTS = 1.15;
/** Chest breadth as a fraction of shoulder breadth. */
const CHEST_FROM_SHOULDER = 0.8;
/** BlazePose hip landmarks sit inside the body outline: hip breadth = 1.4 x their distance. */
const HIP_FROM_JOINTS = 1.4;
/** Waist breadth = this x the mean of chest and hip breadth. */
const WAIST_FROM_MEAN = 0.92;
/** Cross-section depth / breadth. */
const DEPTH_RATIO = {
  chest: { male: 0.78, female: 0.85, unisex: 0.8 },
  waist: { male: 0.78, female: 0.75, unisex: 0.77 },
  hip: { male: 0.71, female: 0.73, unisex: 0.72 },
} as const;
/** Torso sections are fuller than an ellipse of the same breadth and depth (rounded-rectangle shape). */
const FULLNESS = { chest: 1.12, waist: 1.06, hip: 1.05 } as const;
/** Plausibility clamps, as in the original service. */
const CLAMP = { shoulder: [30, 65], chest: [70, 150], waist: [58, 140], hip: [70, 160] } as const;
/** Ease added to the measurements before the chart lookup: tight picks smaller, loose bigger. */
export const FIT_EASE_CM: Record<FitPreference, number> = { tight: -3, regular: 0, loose: 4 };

/** Default charts: upper bounds per size. `unisex` reproduces the original's max(chest, waist, hip) thresholds. */
export const DEFAULT_CHARTS: Record<Gender, SizeChart> = {
  unisex: {
    name: 'default-unisex',
    sizes: [
      { size: 'XS', chest_cm: 84, waist_cm: 84, hip_cm: 84 },
      { size: 'S', chest_cm: 92, waist_cm: 92, hip_cm: 92 },
      { size: 'M', chest_cm: 100, waist_cm: 100, hip_cm: 100 },
      { size: 'L', chest_cm: 108, waist_cm: 108, hip_cm: 108 },
      { size: 'XL', chest_cm: 116, waist_cm: 116, hip_cm: 116 },
      { size: 'XXL' },
    ],
  },
  male: {
    name: 'default-male',
    sizes: [
      { size: 'XS', chest_cm: 86, waist_cm: 74 },
      { size: 'S', chest_cm: 94, waist_cm: 82 },
      { size: 'M', chest_cm: 102, waist_cm: 90 },
      { size: 'L', chest_cm: 110, waist_cm: 98 },
      { size: 'XL', chest_cm: 118, waist_cm: 106 },
      { size: 'XXL' },
    ],
  },
  female: {
    name: 'default-female',
    sizes: [
      { size: 'XS', chest_cm: 82, waist_cm: 64, hip_cm: 90 },
      { size: 'S', chest_cm: 88, waist_cm: 70, hip_cm: 96 },
      { size: 'M', chest_cm: 94, waist_cm: 76, hip_cm: 102 },
      { size: 'L', chest_cm: 100, waist_cm: 82, hip_cm: 108 },
      { size: 'XL', chest_cm: 106, waist_cm: 88, hip_cm: 114 },
      { size: 'XXL' },
    ],
  },
};

/** Confidence at or above which a single size is given (the platform shows "Recommended: X" from 0.8). */
export const CONFIDENCE_SINGLE = 0.8;
/** Below this the range spans two sizes either side. */
export const CONFIDENCE_WIDE = 0.6;
const CONFIDENCE_MAX = 0.98;

// ---------------------------------------------------------------------------------------------------------------

type V3 = { x: number; y: number; z: number };
const dist = (a: V3, b: V3) => Math.hypot(a.x - b.x, a.y - b.y, a.z - b.z);
const mid = (a: V3, b: V3): V3 => ({ x: (a.x + b.x) / 2, y: (a.y + b.y) / 2, z: (a.z + b.z) / 2 });
const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));
const ramp = (v: number, lo: number, hi: number) => clamp((v - lo) / (hi - lo), 0, 1);

/** Ellipse perimeter from full breadth and depth (Ramanujan's second approximation, error < 0.01% here). */
export function ellipsePerimeter(breadth: number, depth: number): number {
  const a = breadth / 2;
  const b = depth / 2;
  if (a + b === 0) return 0;
  const h = ((a - b) / (a + b)) ** 2;
  return Math.PI * (a + b) * (1 + (3 * h) / (10 + Math.sqrt(4 - 3 * h)));
}

/**
 * Python's round(x, ndigits): exact decimal value of the double, ties to even (the original rounded with it).
 * toFixed(100) gives the exact expansion for the magnitudes used here.
 */
export function roundHalfEven(x: number, ndigits: number): number {
  if (!Number.isFinite(x)) return x;
  const exact = Math.abs(x).toFixed(100);
  const dot = exact.indexOf('.');
  const rest = exact.slice(dot + 1 + ndigits);
  const isTie = rest[0] === '5' && /^0*$/.test(rest.slice(1));
  if (!isTie) return Number(x.toFixed(ndigits));
  const head = exact.slice(0, ndigits > 0 ? dot + 1 + ndigits : dot); // truncated, e.g. "12.3"
  const truncated = Number(head);
  const lastDigit = Number(head[head.length - 1]);
  const mag = lastDigit % 2 === 0 ? truncated : truncated + 10 ** -ndigits;
  return Math.sign(x) * Number(mag.toFixed(ndigits));
}

/** Parts whose landmarks are not visible or lie outside the picture (top to bottom). */
export function missingParts(landmarks: readonly PosePoint[]): BodyPart[] {
  const seen = (i: number) => {
    const p = landmarks[i];
    if (!p) return false;
    const inside = p.x >= -FRAME_MARGIN && p.x <= 1 + FRAME_MARGIN && p.y >= -FRAME_MARGIN && p.y <= 1 + FRAME_MARGIN;
    return inside && p.visibility >= VISIBILITY_MIN;
  };
  return PARTS.filter(([, idx]) => !idx.every(seen)).map(([part]) => part);
}

/** Stated height / skeletal chain length: centimetres per world unit. */
export function cmPerUnit(world: readonly PosePoint[], heightCm: number): number {
  const w = (i: number) => world[i]!;
  const eyes = mid(w(L_EYE), w(R_EYE));
  const shoulders = mid(w(L_SHOULDER), w(R_SHOULDER));
  const hips = mid(w(L_HIP), w(R_HIP));
  const leftLeg = dist(w(L_HIP), w(L_KNEE)) + dist(w(L_KNEE), w(L_ANKLE));
  const rightLeg = dist(w(R_HIP), w(R_KNEE)) + dist(w(R_KNEE), w(R_ANKLE));
  // Segment lengths, not the vertical extent: slightly bent knees or a tilted head do not shrink the body.
  const chain = dist(eyes, shoulders) + dist(shoulders, hips) + (leftLeg + rightLeg) / 2;
  return (heightCm * CHAIN_TO_STATURE) / Math.max(chain, 1e-6);
}

/** Unrounded body measurements and the breadths they come from. */
export function bodyMeasurements(world: readonly PosePoint[], heightCm: number, gender: Gender = 'unisex') {
  const s = cmPerUnit(world, heightCm);
  const shoulderBreadth = dist(world[L_SHOULDER]!, world[R_SHOULDER]!) * s * SHOULDER_FROM_JOINTS;
  const hipBreadth = dist(world[L_HIP]!, world[R_HIP]!) * s * HIP_FROM_JOINTS;
  const chestBreadth = shoulderBreadth * CHEST_FROM_SHOULDER;
  const waistBreadth = ((chestBreadth + hipBreadth) / 2) * WAIST_FROM_MEAN;
  const circ = (breadth: number, section: 'chest' | 'waist' | 'hip') =>
    ellipsePerimeter(breadth, breadth * DEPTH_RATIO[section][gender]) * FULLNESS[section];
  return {
    shoulderCm: clamp(shoulderBreadth, ...CLAMP.shoulder),
    chestCm: clamp(circ(chestBreadth, 'chest'), ...CLAMP.chest),
    waistCm: clamp(circ(waistBreadth, 'waist'), ...CLAMP.waist),
    hipCm: clamp(circ(hipBreadth, 'hip'), ...CLAMP.hip),
    shoulderBreadthCm: shoulderBreadth,
    hipBreadthCm: hipBreadth,
  };
}

/**
 * Pose quality from world landmarks. Left/right pairs are always combined as (left + right) so that a mirrored
 * pose gives bit-identical numbers.
 */
export function poseQuality(world: readonly PosePoint[], landmarks: readonly PosePoint[]): PoseQuality {
  const w = (i: number) => world[i]!;
  // Frontal: the shoulder and hip lines should lie across the image plane (small depth difference).
  const yawCos = (a: V3, b: V3) => Math.hypot(a.x - b.x, a.y - b.y) / Math.max(dist(a, b), 1e-9);
  const frontal = ramp((yawCos(w(L_SHOULDER), w(R_SHOULDER)) + yawCos(w(L_HIP), w(R_HIP))) / 2, 0.75, 0.95);
  // Upright: hip centre -> shoulder centre close to vertical in the image plane (world y points down). Depth is
  // left out: BlazePose's z is the noisiest coordinate and camera pitch would count as leaning.
  const trunk = mid(w(L_SHOULDER), w(R_SHOULDER));
  const hips = mid(w(L_HIP), w(R_HIP));
  const tx = trunk.x - hips.x;
  const ty = trunk.y - hips.y;
  const tz = trunk.z - hips.z;
  const tlen = Math.max(Math.hypot(tx, ty, tz), 1e-9);
  const upright = ramp(-ty / Math.max(Math.hypot(tx, ty), 1e-9), 0.94, 0.985); // 20 degrees -> 0, 10 -> 1
  // Arms away: angle between each upper arm and the downward trunk direction; 20 degrees or more is ideal.
  const armAngle = (s: number, e: number) => {
    const ax = w(e).x - w(s).x;
    const ay = w(e).y - w(s).y;
    const az = w(e).z - w(s).z;
    const cos = (-tx * ax - ty * ay - tz * az) / (tlen * Math.max(Math.hypot(ax, ay, az), 1e-9));
    return (Math.acos(clamp(cos, -1, 1)) * 180) / Math.PI;
  };
  const arms = (ramp(armAngle(L_SHOULDER, L_ELBOW), 5, 20) + ramp(armAngle(R_SHOULDER, R_ELBOW), 5, 20)) / 2;
  // Arms down by the sides still give usable joints, so this only costs a little.
  const armsAway = 0.7 + 0.3 * arms;
  let visSum = landmarks[NOSE]?.visibility ?? 0;
  let count = 1;
  for (const [l, r] of [
    [L_SHOULDER, R_SHOULDER],
    [L_HIP, R_HIP],
    [L_KNEE, R_KNEE],
    [L_ANKLE, R_ANKLE],
  ] as const) {
    visSum += (landmarks[l]?.visibility ?? 0) + (landmarks[r]?.visibility ?? 0);
    count += 2;
  }
  return { frontal, upright, armsAway, visibility: visSum / count };
}

/** Confidence in [0, 0.98]: presence x visibility x (0.4 + 0.6 x pose quality). */
export function confidenceOf(q: PoseQuality, presence: number): number {
  const quality = q.frontal * q.upright * q.armsAway;
  return clamp(clamp(presence, 0, 1) * q.visibility * (0.4 + 0.6 * quality), 0, CONFIDENCE_MAX);
}

/**
 * Body type from comparable quantities (fixes BUG-27, which compared a width with a circumference):
 * frame size = chest circumference / height; shape = shoulder breadth / hip breadth (two widths).
 */
export function bodyTypeOf(chestCm: number, heightCm: number, shoulderBreadthCm: number, hipBreadthCm: number): BodyType {
  const frame = chestCm / heightCm;
  const vShape = shoulderBreadthCm / Math.max(hipBreadthCm, 1);
  if (frame >= 0.66) return 'broad';
  if (frame < 0.52) return 'slim';
  if (vShape >= 1.3) return 'athletic';
  return 'average';
}

/** Index of the first size whose every bound holds the measurements (+ ease); the last size if none does. */
export function sizeIndex(chart: readonly ChartSize[], m: Pick<Measurements, 'chestCm' | 'waistCm' | 'hipCm'>, easeCm = 0): number {
  const values = { chest_cm: m.chestCm + easeCm, waist_cm: m.waistCm + easeCm, hip_cm: m.hipCm + easeCm };
  for (let i = 0; i < chart.length; i++) {
    const s = chart[i]!;
    const fits = (['chest_cm', 'waist_cm', 'hip_cm'] as const).every((k) => s[k] === undefined || values[k] <= s[k]!);
    if (fits) return i;
  }
  return chart.length - 1;
}

/** Sizes either side of the recommendation: none at high confidence, one below 0.8, two below 0.6. */
export function rangeSpread(confidence: number): number {
  if (confidence >= CONFIDENCE_SINGLE) return 0;
  if (confidence >= CONFIDENCE_WIDE) return 1;
  return 2;
}

/** Checks a store chart: 1..30 sizes, unique names, bounds never decreasing from one size to the next. */
export function validateChart(sizes: readonly ChartSize[]): string | null {
  if (sizes.length === 0 || sizes.length > 30) return 'size_chart must list 1 to 30 sizes';
  const names = new Set(sizes.map((s) => s.size));
  if (names.size !== sizes.length) return 'size_chart size names must be unique';
  for (const k of ['chest_cm', 'waist_cm', 'hip_cm'] as const) {
    let last = -Infinity;
    for (const s of sizes) {
      const v = s[k];
      if (v === undefined) continue;
      if (v < last) return `size_chart ${k} bounds must not decrease from one size to the next`;
      last = v;
    }
  }
  return null;
}

export function recommendSize(input: SizingInput): SizingOutcome {
  const missing = missingParts(input.landmarks);
  if (missing.length > 0 || input.worldLandmarks.length < 33) {
    return {
      ok: false,
      reason: 'body_not_visible',
      missing,
      message: `Could not detect full body pose from image: ${missing.join(', ')} not visible`,
    };
  }
  const gender = input.gender ?? 'unisex';
  const chart: SizeChart = input.sizeChart ? { name: 'store', sizes: input.sizeChart } : DEFAULT_CHARTS[gender];
  const m = bodyMeasurements(input.worldLandmarks, input.heightCm, gender);
  const quality = poseQuality(input.worldLandmarks, input.landmarks);
  const confidence = confidenceOf(quality, input.presence);
  const idx = sizeIndex(chart.sizes, m, FIT_EASE_CM[input.fitPreference ?? 'regular']);
  const spread = rangeSpread(confidence);
  const last = chart.sizes.length - 1;
  return {
    ok: true,
    value: {
      recommendedSize: chart.sizes[idx]!.size,
      // Rounded after classification, like the original (Python round: half to even).
      measurements: {
        chestCm: roundHalfEven(m.chestCm, 1),
        waistCm: roundHalfEven(m.waistCm, 1),
        hipCm: roundHalfEven(m.hipCm, 1),
        shoulderCm: roundHalfEven(m.shoulderCm, 1),
      },
      confidence: roundHalfEven(confidence, 3),
      bodyType: bodyTypeOf(m.chestCm, input.heightCm, m.shoulderBreadthCm, m.hipBreadthCm),
      sizeRange: { lower: chart.sizes[Math.max(0, idx - spread)]!.size, upper: chart.sizes[Math.min(last, idx + spread)]!.size },
      chart: chart.name,
      quality,
    },
  };
}

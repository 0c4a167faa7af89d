import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  bodyMeasurements,
  DEFAULT_CHARTS,
  recommendSize,
  sizeIndex,
  type ChartSize,
  type FitPreference,
  type Gender,
  type SizingInput,
} from '../../src/domain/sizing.ts';
import { mirror, skeleton } from '../support/skeleton.ts';

const params = fc.record({
  shoulderHalf: fc.double({ min: 0.1, max: 0.26, noNaN: true }),
  hipHalf: fc.double({ min: 0.08, max: 0.2, noNaN: true }),
  armDeg: fc.double({ min: 0, max: 60, noNaN: true }),
  yawDeg: fc.double({ min: -50, max: 50, noNaN: true }),
  leanDeg: fc.double({ min: -20, max: 20, noNaN: true }),
  visibility: fc.double({ min: 0.5, max: 1, noNaN: true }),
});
const height = fc.double({ min: 100, max: 250, noNaN: true });
const gender = fc.constantFrom<Gender>('male', 'female', 'unisex');
const fit = fc.constantFrom<FitPreference>('tight', 'regular', 'loose');

/** A valid store chart: 1-8 sizes with non-decreasing bounds and an open-ended last size. */
const chart = fc
  .array(fc.double({ min: 50, max: 200, noNaN: true }), { minLength: 1, maxLength: 8 })
  .map((bounds): ChartSize[] => [...bounds.sort((a, b) => a - b).map((b, i) => ({ size: `s${i}`, chest_cm: b, hip_cm: b + 8 })), { size: 'top' }]);

const build = (p: Parameters<typeof skeleton>[0], heightCm: number, extra: Partial<SizingInput> = {}): SizingInput => {
  const s = skeleton(p);
  return { heightCm, landmarks: s.image, worldLandmarks: s.world, presence: 0.99, ...extra };
};

describe('sizing properties', () => {
  it('is monotonic in the stated height: measurements and size never shrink as height grows', () => {
    fc.assert(
      fc.property(params, height, height, gender, fit, (p, h1, h2, g, f) => {
        const [lo, hi] = h1 <= h2 ? [h1, h2] : [h2, h1];
        const a = recommendSize(build(p, lo, { gender: g, fitPreference: f }));
        const b = recommendSize(build(p, hi, { gender: g, fitPreference: f }));
        expect(a.ok && b.ok).toBe(true);
        if (!a.ok || !b.ok) return;
        for (const k of ['chestCm', 'waistCm', 'hipCm', 'shoulderCm'] as const) {
          expect(b.value.measurements[k]).toBeGreaterThanOrEqual(a.value.measurements[k]);
        }
        const order = DEFAULT_CHARTS[g].sizes.map((s) => s.size);
        expect(order.indexOf(b.value.recommendedSize)).toBeGreaterThanOrEqual(order.indexOf(a.value.recommendedSize));
      }),
      { numRuns: 300 },
    );
  });

  it('is symmetric under a mirror: the mirrored pose gives exactly the same answer', () => {
    fc.assert(
      fc.property(params, height, gender, fit, (p, h, g, f) => {
        const input = build(p, h, { gender: g, fitPreference: f });
        const mirrored = { ...input, landmarks: mirror(input.landmarks, true), worldLandmarks: mirror(input.worldLandmarks, false) };
        expect(recommendSize(mirrored)).toEqual(recommendSize(input));
      }),
      { numRuns: 300 },
    );
  });

  it('keeps sizes ordered: lower <= recommended <= upper, and larger bodies never get smaller sizes', () => {
    fc.assert(
      fc.property(params, height, chart, fit, (p, h, sizes, f) => {
        const r = recommendSize(build(p, h, { sizeChart: sizes, fitPreference: f }));
        expect(r.ok).toBe(true);
        if (!r.ok) return;
        const order = sizes.map((s) => s.size);
        const i = order.indexOf(r.value.recommendedSize);
        expect(order.indexOf(r.value.sizeRange.lower)).toBeLessThanOrEqual(i);
        expect(order.indexOf(r.value.sizeRange.upper)).toBeGreaterThanOrEqual(i);
        expect(r.value.confidence).toBeGreaterThanOrEqual(0);
        expect(r.value.confidence).toBeLessThanOrEqual(0.98);
        // a wider skeleton (everything 10% broader) never gets a smaller size from the same chart
        const wider = bodyMeasurements(skeleton({ ...p, shoulderHalf: p.shoulderHalf * 1.1, hipHalf: p.hipHalf * 1.1 }).world, h);
        const base = bodyMeasurements(skeleton(p).world, h);
        expect(sizeIndex(sizes, wider)).toBeGreaterThanOrEqual(sizeIndex(sizes, base));
      }),
      { numRuns: 300 },
    );
  });

  it('never narrows the size range when confidence falls', () => {
    fc.assert(
      fc.property(params, height, (p, h) => {
        const sure = recommendSize(build({ ...p, yawDeg: 0, leanDeg: 0, visibility: 1 }, h));
        const unsure = recommendSize(build({ ...p, visibility: 0.5 + (p.visibility - 0.5) * 0.5 }, h, { presence: 0.7 }));
        if (!sure.ok || !unsure.ok) return;
        const order = DEFAULT_CHARTS.unisex.sizes.map((s) => s.size);
        const spread = (v: typeof sure.value) => {
          const i = order.indexOf(v.recommendedSize);
          // sizes available on each side, capped by the chart ends
          return Math.max(i - order.indexOf(v.sizeRange.lower), order.indexOf(v.sizeRange.upper) - i);
        };
        expect(unsure.value.confidence).toBeLessThanOrEqual(sure.value.confidence);
        if (sure.value.recommendedSize === unsure.value.recommendedSize) expect(spread(unsure.value)).toBeGreaterThanOrEqual(spread(sure.value));
      }),
      { numRuns: 300 },
    );
  });
});

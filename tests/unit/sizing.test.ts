import { describe, expect, it } from 'vitest';
import {
  bodyMeasurements,
  bodyTypeOf,
  DEFAULT_CHARTS,
  ellipsePerimeter,
  missingParts,
  rangeSpread,
  recommendSize,
  roundHalfEven,
  sizeIndex,
  validateChart,
  type SizingInput,
} from '../../src/domain/sizing.ts';
import { skeleton } from '../support/skeleton.ts';

const input = (params: Parameters<typeof skeleton>[0] = {}, extra: Partial<SizingInput> = {}): SizingInput => {
  const s = skeleton(params);
  return { heightCm: 175, landmarks: s.image, worldLandmarks: s.world, presence: 0.999, ...extra };
};
const ok = (i: SizingInput) => {
  const r = recommendSize(i);
  if (!r.ok) throw new Error(r.message);
  return r.value;
};

describe('roundHalfEven (Python round)', () => {
  it('rounds exact ties to even and everything else to nearest', () => {
    expect(roundHalfEven(2.5, 0)).toBe(2);
    expect(roundHalfEven(3.5, 0)).toBe(4);
    expect(roundHalfEven(-2.5, 0)).toBe(-2);
    expect(roundHalfEven(0.125, 2)).toBe(0.12); // 0.125 is exact in binary: a true tie
    expect(roundHalfEven(0.375, 2)).toBe(0.38);
    expect(roundHalfEven(1.25, 1)).toBe(1.2);
    expect(roundHalfEven(1.35, 1)).toBe(1.4); // 1.35 is stored as 1.3500000000000000888: not a tie
    expect(roundHalfEven(2.675, 2)).toBe(2.67); // stored as 2.67499999999999982236431605997495353221893310546875
    expect(roundHalfEven(99.95, 1)).toBe(100); // 99.9500000000000028421709430404007434844970703125
    expect(roundHalfEven(0.9005, 3)).toBe(0.9);
  });
});

describe('body model', () => {
  it('uses an ellipse perimeter that is exact for a circle and a flat line', () => {
    expect(ellipsePerimeter(2, 2)).toBeCloseTo(2 * Math.PI, 10);
    expect(ellipsePerimeter(2, 0)).toBeCloseTo(4, 2);
  });

  it('gives adult-range measurements for an average skeleton and scales with height', () => {
    const m = bodyMeasurements(input().worldLandmarks, 175);
    expect(m.shoulderCm).toBeGreaterThan(34);
    expect(m.shoulderCm).toBeLessThan(50);
    expect(m.chestCm).toBeGreaterThan(85);
    expect(m.chestCm).toBeLessThan(125);
    const tall = bodyMeasurements(input().worldLandmarks, 175 * 1.1);
    expect(tall.chestCm / m.chestCm).toBeCloseTo(1.1, 6);
  });

  it('does not depend on the arbitrary scale of the world landmarks', () => {
    const base = input();
    const scaled = base.worldLandmarks.map((p) => ({ ...p, x: p.x * 1.7, y: p.y * 1.7, z: p.z * 1.7 }));
    expect(bodyMeasurements(scaled, 175).chestCm).toBeCloseTo(bodyMeasurements(base.worldLandmarks, 175).chestCm, 9);
  });

  it('classifies body type from comparable quantities (BUG-27: the original always said slim)', () => {
    const types = new Set(
      [
        { shoulderHalf: 0.13, hipHalf: 0.1 },
        { shoulderHalf: 0.17, hipHalf: 0.12 },
        { shoulderHalf: 0.18, hipHalf: 0.1 },
        { shoulderHalf: 0.23, hipHalf: 0.17 },
      ].map((p) => ok(input(p)).bodyType),
    );
    expect(types).toEqual(new Set(['slim', 'average', 'athletic', 'broad']));
    expect(bodyTypeOf(100, 175, 42, 32)).toBe('athletic'); // V shape: shoulders 1.31x the hips
    expect(bodyTypeOf(100, 175, 38, 35)).toBe('average');
    expect(bodyTypeOf(85, 175, 38, 35)).toBe('slim');
    expect(bodyTypeOf(120, 175, 45, 40)).toBe('broad');
  });
});

describe('full-body check', () => {
  it('accepts a whole body and names the parts that are missing', () => {
    const base = input();
    expect(missingParts(base.landmarks)).toEqual([]);
    const cut = base.landmarks.map((p) => (p.y > 0.6 ? { ...p, y: p.y + 0.5 } : p)); // knees and ankles below the frame
    expect(missingParts(cut)).toEqual(['knees', 'ankles']);
    const hidden = base.landmarks.map((p, i) => (i === 0 ? { ...p, visibility: 0.1 } : p));
    expect(missingParts(hidden)).toEqual(['head']);
    const r = recommendSize({ ...base, landmarks: cut });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.missing).toEqual(['knees', 'ankles']);
      expect(r.message).toBe('Could not detect full body pose from image: knees, ankles not visible');
    }
  });
});

describe('charts and sizes', () => {
  it('keeps the original unisex thresholds on max(chest, waist, hip)', () => {
    const chart = DEFAULT_CHARTS.unisex.sizes;
    const at = (v: number) => chart[sizeIndex(chart, { chestCm: v, waistCm: 60, hipCm: 70 })]!.size;
    expect(at(84)).toBe('XS');
    expect(at(84.01)).toBe('S');
    expect(at(100)).toBe('M');
    expect(at(116)).toBe('XL');
    expect(at(116.5)).toBe('XXL');
    expect(chart[sizeIndex(chart, { chestCm: 80, waistCm: 60, hipCm: 101 })]!.size).toBe('L'); // hip drives it
  });

  it('picks the chart by gender and shifts it by fit preference', () => {
    expect(ok(input({}, { gender: 'male' })).chart).toBe('default-male');
    expect(ok(input({}, { gender: 'female' })).chart).toBe('default-female');
    expect(ok(input()).chart).toBe('default-unisex');
    const order = DEFAULT_CHARTS.unisex.sizes.map((s) => s.size);
    // heights chosen so that the ease crosses a threshold
    let crossed = false;
    for (let h = 150; h <= 200; h += 2) {
      const t = order.indexOf(ok(input({}, { heightCm: h, fitPreference: 'tight' })).recommendedSize);
      const r = order.indexOf(ok(input({}, { heightCm: h })).recommendedSize);
      const l = order.indexOf(ok(input({}, { heightCm: h, fitPreference: 'loose' })).recommendedSize);
      expect(t).toBeLessThanOrEqual(r);
      expect(r).toBeLessThanOrEqual(l);
      if (t < r || r < l) crossed = true;
    }
    expect(crossed).toBe(true);
  });

  it("uses a store's chart, open-ended last size included", () => {
    const sizeChart = [{ size: '38', chest_cm: 90 }, { size: '40', chest_cm: 98 }, { size: '42' }];
    const small = ok(input({}, { heightCm: 150, sizeChart }));
    const big = ok(input({}, { heightCm: 210, sizeChart }));
    expect(small.chart).toBe('store');
    expect(small.recommendedSize).toBe('38');
    expect(big.recommendedSize).toBe('42');
    expect(validateChart(sizeChart)).toBeNull();
    expect(validateChart([{ size: 'a', chest_cm: 90 }, { size: 'b', chest_cm: 80 }])).toMatch(/must not decrease/);
    expect(validateChart([{ size: 'a' }, { size: 'a' }])).toMatch(/unique/);
    expect(validateChart([])).toMatch(/1 to 30/);
  });
});

describe('confidence and size range', () => {
  it('is highest for a frontal, upright pose with arms away from the body', () => {
    const best = ok(input({ armDeg: 25 })).confidence;
    expect(best).toBeGreaterThanOrEqual(0.9);
    expect(best).toBeLessThanOrEqual(0.98);
    expect(ok(input({ armDeg: 0 })).confidence).toBeLessThan(best);
    expect(ok(input({ armDeg: 25, yawDeg: 40 })).confidence).toBeLessThan(best);
    expect(ok(input({ armDeg: 25, leanDeg: 25 })).confidence).toBeLessThan(best);
    expect(ok(input({ armDeg: 25, visibility: 0.7 })).confidence).toBeLessThan(best);
    expect(ok(input({ armDeg: 25 }, { presence: 0.6 })).confidence).toBeLessThan(best);
  });

  it('widens the size range as confidence falls', () => {
    expect(rangeSpread(0.9)).toBe(0);
    expect(rangeSpread(0.8)).toBe(0);
    expect(rangeSpread(0.79)).toBe(1);
    expect(rangeSpread(0.6)).toBe(1);
    expect(rangeSpread(0.59)).toBe(2);
    const order = DEFAULT_CHARTS.unisex.sizes.map((s) => s.size);
    const width = (v: ReturnType<typeof ok>) => order.indexOf(v.sizeRange.upper) - order.indexOf(v.sizeRange.lower);
    const sure = ok(input({ armDeg: 25 }));
    const unsure = ok(input({ armDeg: 25, yawDeg: 60 }));
    expect(sure.sizeRange).toEqual({ lower: sure.recommendedSize, upper: sure.recommendedSize });
    expect(unsure.confidence).toBeLessThan(0.6);
    expect(width(unsure)).toBe(4);
  });

  it('rounds measurements to 1 decimal and confidence to 3', () => {
    const v = ok(input());
    for (const x of Object.values(v.measurements)) expect(Math.round(x * 10) / 10).toBe(x);
    expect(Math.round(v.confidence * 1000) / 1000).toBe(v.confidence);
  });
});

import { describe, expect, it } from 'vitest';
import { decodeDetections, roiFromPoints, sampleCrop } from '../../src/adapters/pose/blazepose.ts';

describe('BlazePose geometry', () => {
  it('builds an upright crop around the hip centre, 2.5x the hip-to-top distance', () => {
    const roi = roiFromPoints(100, 200, 100, 120); // top straight above the hips
    expect(roi.rotation).toBeCloseTo(0, 12);
    expect(roi.side).toBeCloseTo(200, 9);
    expect([roi.cx, roi.cy]).toEqual([100, 200]);
    expect(roiFromPoints(100, 200, 180, 200).rotation).toBeCloseTo(Math.PI / 2, 12); // body lying, top to the right
  });

  it('samples the identity crop exactly and pads with zeros outside the image', () => {
    const w = 4;
    const h = 4;
    const rgb = Uint8Array.from({ length: w * h * 3 }, (_, i) => i);
    const dst = new Float32Array(w * h * 3);
    sampleCrop(rgb, w, h, { cx: 2, cy: 2, side: 4, rotation: 0 }, 4, dst, 1, 0);
    expect(Array.from(dst)).toEqual(Array.from(rgb));
    const big = new Float32Array(8 * 8 * 3);
    sampleCrop(rgb, w, h, { cx: 2, cy: 2, side: 8, rotation: 0 }, 8, big, 1, 0);
    expect(big[0]).toBe(0); // top-left corner is outside the image
  });

  it('keeps a mirrored image and a mirrored crop consistent', () => {
    const w = 16;
    const h = 12;
    const rgb = Uint8Array.from({ length: w * h * 3 }, (_, i) => (i * 37) % 256);
    const flipped = new Uint8Array(rgb.length);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) flipped[(y * w + (w - 1 - x)) * 3 + c] = rgb[(y * w + x) * 3 + c]!;
    const a = new Float32Array(8 * 8 * 3);
    const b = new Float32Array(8 * 8 * 3);
    sampleCrop(rgb, w, h, { cx: 6, cy: 6, side: 10, rotation: 0 }, 8, a, 1, 0);
    sampleCrop(flipped, w, h, { cx: w - 6, cy: 6, side: 10, rotation: 0 }, 8, b, 1, 0);
    for (let y = 0; y < 8; y++)
      for (let x = 0; x < 8; x++)
        for (let c = 0; c < 3; c++) expect(b[(y * 8 + (7 - x)) * 3 + c]).toBeCloseTo(a[(y * 8 + x) * 3 + c]!, 3);
  });

  it('returns no detection when every score is below threshold, and averages overlapping boxes', () => {
    const n = 2254;
    const boxes = new Float32Array(n * 12);
    const scores = new Float32Array(n).fill(-10);
    expect(decodeDetections(boxes, scores)).toBeNull();
    // two overlapping candidates on anchor 0 and 1 (same cell): the result lies between them, weighted by score
    for (const [i, dx, logit] of [[0, 0, 4], [1, 8, 0]] as const) {
      scores[i] = logit;
      boxes.set([dx, 0, 50, 100, dx, 0, dx, -40, 0, 0, 0, 0], i * 12);
    }
    const det = decodeDetections(boxes, scores)!;
    const s0 = 1 / (1 + Math.exp(-4));
    const s1 = 0.5;
    expect(det.score).toBeCloseTo(s0, 9);
    const cx0 = 0.5 / 28;
    expect(det.kps[0]).toBeCloseTo(cx0 + ((8 / 224) * s1) / (s0 + s1), 6); // anchors are float32
  });
});

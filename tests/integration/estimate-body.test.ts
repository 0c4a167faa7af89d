// POST /estimate-body end to end: real photographs served over loopback, through the safe download, the pose worker
// thread and the sizing model. The CC0 and MIT photos are committed (tests/fixtures/people); the others are read in
// place from the shared fixtures folder when it is there, and the tests that need them skip with a reason when not.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import type { FastifyInstance } from 'fastify';
import { listenOnLoopback, serveSafely, type Listening } from '../support/loopback.ts';
import { peoplePhoto, sharedPeopleDir } from '../support/services.ts';
import { createHttpServer } from '../../src/http/server.ts';
import { estimateBodyRoutes } from '../../src/http/routes/estimateBody.ts';
import { createSizeRecStack, type SizeRecStack } from '../../src/compose/sizeRecommendation.ts';
import { PoseOverloadedError, PoseTimeoutError } from '../../src/adapters/pose/estimator.ts';
import { createMetrics } from '../../src/metrics.ts';
import { silentLogger } from '../../src/logger.ts';

/** A photo's path; a committed one must be there (a missing one is a broken checkout, not a reason to skip). */
function photo(name: string): string {
  const file = peoplePhoto(name);
  if (!file) throw new Error(`photo ${name} not found in tests/fixtures/people or ${sharedPeopleDir()}`);
  return file;
}

/** True when the photo is present (the committed ones always are); prints why its test skips otherwise. */
function photoPresent(name: string): boolean {
  if (peoplePhoto(name)) return true;
  console.warn(`SKIP: photo ${name} is not committed (its licence) and not found in ${sharedPeopleDir()}; set WEARON_FIXTURES_DIR to run its test`);
  return false;
}

const SINGLE_PERSON = [
  'pifu-ryota-apose.png',
  'yogait-man-armsdown-office.jpg',
  'yogait-man-tpose-office.jpg',
  'yogait-man-standing-tightcrop.jpg',
  'tfjs-yoga-warrior-beach.jpg', // not committed
];
const GROUP = 'coco-541055-skiers-group.jpg'; // not committed
const MAN = ['yogait-man-armsdown-office.jpg', 'yogait-man-tpose-office.jpg', 'yogait-man-standing-tightcrop.jpg'];
const SIZES = ['XS', 'S', 'M', 'L', 'XL', 'XXL'];
// A height that puts this man's chest mid-way between chart thresholds, so the 3% tolerance is meaningful.
const HEIGHT = 168;

const baseConfig = {
  POSE_MODEL: 'full' as const,
  POSE_QUEUE_MAX: 16,
  POSE_TIMEOUT_MS: 20_000,
  POSE_WORKERS: 1,
  IMAGE_FETCH_ALLOW_HOSTS: ['127.0.0.1'],
  IMAGE_FETCH_TIMEOUT_MS: 5000,
  IMAGE_MAX_BYTES: 10 * 1024 * 1024,
  IMAGE_MAX_PIXELS: 40_000_000,
};

describe('POST /estimate-body with real photographs', () => {
  let tmp: string;
  let files: Listening | undefined;
  let base: string;
  let stack: SizeRecStack;
  let app: FastifyInstance;

  const post = (body: unknown, headers: Record<string, string> = {}) =>
    app.inject({ method: 'POST', url: '/estimate-body', payload: body as object, headers });
  const estimate = async (file: string, height = HEIGHT, extra: object = {}) => {
    const res = await post({ image_url: `${base}/${file}`, height_cm: height, ...extra });
    return { status: res.statusCode, body: res.json(), headers: res.headers };
  };

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'estimate-body-'));
    // Variants of one photo, made at test time: mirrored, half size, padded, and stored sideways + EXIF orientation 6.
    const src = photo('yogait-man-armsdown-office.jpg');
    const meta = await sharp(src).metadata();
    await sharp(src).flop().jpeg({ quality: 92 }).toFile(path.join(tmp, 'mirrored.jpg'));
    await sharp(src).resize(Math.round(meta.width! / 2)).jpeg({ quality: 92 }).toFile(path.join(tmp, 'half.jpg'));
    await sharp(src)
      .extend({ top: 120, bottom: 120, left: 300, right: 300, background: { r: 128, g: 128, b: 128 } })
      .jpeg({ quality: 92 })
      .toFile(path.join(tmp, 'padded.jpg'));
    // Pixels turned 90 degrees anticlockwise; orientation 6 tells viewers to turn them back clockwise.
    const sideways = await sharp(src).rotate(270).jpeg({ quality: 92 }).toBuffer();
    await sharp(sideways).withMetadata({ orientation: 6 }).toFile(path.join(tmp, 'exif6.jpg'));
    // Top half only: head to hips, no knees or ankles.
    await sharp(src)
      .extract({ left: 0, top: 0, width: meta.width!, height: Math.round(meta.height! * 0.48) })
      .toFile(path.join(tmp, 'half-body.jpg'));
    // No person at all.
    const w = 480;
    const h = 640;
    const px = Buffer.alloc(w * h * 3);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) px.set([Math.round((x / w) * 255), Math.round((y / h) * 255), 160], (y * w + x) * 3);
    await sharp(px, { raw: { width: w, height: h, channels: 3 } }).png().toFile(path.join(tmp, 'gradient.png'));
    writeFileSync(path.join(tmp, 'not-an-image.txt'), 'hello');
    writeFileSync(path.join(tmp, 'broken.jpg'), Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(200, 7)]));

    const server = http.createServer(
      serveSafely((req, res) => {
        const name = decodeURIComponent((req.url ?? '/').slice(1));
        const file = name.includes('/') ? null : existsSync(path.join(tmp, name)) ? path.join(tmp, name) : peoplePhoto(name);
        if (!file) {
          res.writeHead(404).end();
          return;
        }
        const ext = path.extname(file);
        const type = ext === '.png' ? 'image/png' : ext === '.txt' ? 'text/plain' : 'image/jpeg';
        res.writeHead(200, { 'content-type': type }).end(readFileSync(file));
      }),
    );
    files = await listenOnLoopback(server);
    base = `http://127.0.0.1:${files.port}`;

    const metrics = createMetrics({ defaults: false });
    stack = createSizeRecStack(baseConfig, silentLogger(), metrics).value;
    await stack.pose.load();
    app = createHttpServer({ logger: silentLogger(), metrics });
    await app.register(estimateBodyRoutes({ recommend: stack.recommend }));
    await app.ready();
  });

  afterAll(async () => {
    await app?.close();
    await stack?.pose.close();
    await files?.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  for (const file of SINGLE_PERSON) {
    it.skipIf(!photoPresent(file))(`places the landmarks plausibly on a single-person photo: ${file}`, async () => {
      const r = await stack.pose.estimate(readFileSync(photo(file)));
      expect(r.found, file).toBe(true);
      if (!r.found) return;
      const y = (i: number) => r.landmarks[i]!.y;
      const mean = (a: number, b: number) => (y(a) + y(b)) / 2;
      // nose above shoulders above hips above knees above ankles (image y grows downwards)
      expect(y(0), file).toBeLessThan(mean(11, 12));
      expect(mean(11, 12), file).toBeLessThan(mean(23, 24));
      expect(mean(23, 24), file).toBeLessThan(mean(25, 26));
      expect(mean(25, 26), file).toBeLessThan(mean(27, 28));
      // inside the picture, and the person spans a good part of it
      for (const l of r.landmarks.slice(0, 29)) {
        expect(l.x, file).toBeGreaterThan(0);
        expect(l.x, file).toBeLessThan(1);
        expect(l.y, file).toBeGreaterThan(0);
        expect(l.y, file).toBeLessThan(1);
      }
      expect(mean(27, 28) - y(0), file).toBeGreaterThan(0.4);
      expect(r.presence, file).toBeGreaterThan(0.9);
      // world landmarks are metres: shoulders 0.25-0.5 m apart
      const [ls, rs] = [r.worldLandmarks[11]!, r.worldLandmarks[12]!];
      expect(Math.hypot(ls.x - rs.x, ls.y - rs.y, ls.z - rs.z), file).toBeGreaterThan(0.25);
      expect(Math.hypot(ls.x - rs.x, ls.y - rs.y, ls.z - rs.z), file).toBeLessThan(0.5);
    });
  }

  it('puts the body joints on the person, not on the background', async () => {
    // This photo's background is masked to pure black, so "inside the person" is checkable pixel by pixel.
    const file = photo('pifu-ryota-apose.png');
    const { data, info } = await sharp(file).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const r = await stack.pose.estimate(readFileSync(file));
    expect(r.found).toBe(true);
    if (!r.found) return;
    for (const i of [11, 12, 23, 24, 25, 26, 27, 28]) {
      const x = Math.round(r.landmarks[i]!.x * (info.width - 1));
      const y = Math.round(r.landmarks[i]!.y * (info.height - 1));
      // the brightest pixel in a 5x5 neighbourhood: joints sit on the person or on its edge, never in the black
      let max = 0;
      for (let dy = -2; dy <= 2; dy++)
        for (let dx = -2; dx <= 2; dx++) {
          const p = ((y + dy) * info.width + (x + dx)) * info.channels;
          max = Math.max(max, data[p]!, data[p + 1]!, data[p + 2]!);
        }
      expect(max, `landmark ${i}`).toBeGreaterThan(4); // the trousers are black too, but not masked-out black (0)
    }
  });

  it.skipIf(!photoPresent(GROUP))('finds the person standing in the middle of a group photo', async () => {
    const r = await stack.pose.estimate(readFileSync(photo(GROUP)));
    expect(r.found).toBe(true);
    if (r.found) expect((r.landmarks[11]!.y + r.landmarks[12]!.y) / 2).toBeLessThan((r.landmarks[27]!.y + r.landmarks[28]!.y) / 2);
  });

  it('answers in the original shape, echoes X-Request-Id, and is stable across repeats and photos of the same man', async () => {
    const res = await post({ image_url: `${base}/yogait-man-armsdown-office.jpg`, height_cm: HEIGHT }, { 'x-request-id': 'test-req-42' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-request-id']).toBe('test-req-42');
    const body = res.json();
    expect(Object.keys(body).sort()).toEqual(['body_type', 'chart', 'confidence', 'measurements', 'recommended_size', 'size_range']);
    expect(SIZES).toContain(body.recommended_size);
    expect(['athletic', 'slim', 'average', 'broad']).toContain(body.body_type);
    expect(body.chart).toBe('default-unisex');
    for (const k of ['chest_cm', 'waist_cm', 'hip_cm', 'shoulder_cm']) {
      expect(body.measurements[k]).toBeGreaterThan(0);
      expect(Number.isInteger(body.measurements[k] * 10 + 1e-9) || Math.abs(body.measurements[k] * 10 - Math.round(body.measurements[k] * 10)) < 1e-6).toBe(true);
    }
    expect(body.confidence).toBeGreaterThan(0.5);
    expect(body.confidence).toBeLessThanOrEqual(0.98);
    expect(SIZES.indexOf(body.size_range.lower)).toBeLessThanOrEqual(SIZES.indexOf(body.recommended_size));
    expect(SIZES.indexOf(body.size_range.upper)).toBeGreaterThanOrEqual(SIZES.indexOf(body.recommended_size));
    // deterministic
    expect((await estimate('yogait-man-armsdown-office.jpg')).body).toEqual(body);
    // the same man in three photos: chest within 5%, sizes at most one step apart
    const results = await Promise.all(MAN.map((f) => estimate(f)));
    const chests = results.map((r) => r.body.measurements.chest_cm as number);
    expect(Math.max(...chests) / Math.min(...chests)).toBeLessThan(1.05);
    const idx = results.map((r) => SIZES.indexOf(r.body.recommended_size));
    expect(Math.max(...idx) - Math.min(...idx)).toBeLessThanOrEqual(1);
  });

  it('gives the same size and measurements within 3% for the photo mirrored, halved, padded and EXIF-rotated', async () => {
    const ref = await estimate('yogait-man-armsdown-office.jpg');
    expect(ref.status).toBe(200);
    expect((await sharp(path.join(tmp, 'exif6.jpg')).metadata()).orientation).toBe(6);
    for (const variant of ['mirrored.jpg', 'half.jpg', 'padded.jpg', 'exif6.jpg']) {
      const r = await estimate(variant);
      expect(r.status, variant).toBe(200);
      expect(r.body.recommended_size, variant).toBe(ref.body.recommended_size);
      for (const k of ['chest_cm', 'waist_cm', 'hip_cm', 'shoulder_cm']) {
        const rel = Math.abs(r.body.measurements[k] - ref.body.measurements[k]) / ref.body.measurements[k];
        expect(rel, `${variant} ${k}`).toBeLessThanOrEqual(0.03);
      }
    }
  });

  it('scales measurements with the stated height and honours gender, fit preference and a store chart', async () => {
    const short = await estimate('yogait-man-tpose-office.jpg', 160);
    const tall = await estimate('yogait-man-tpose-office.jpg', 190);
    expect(tall.body.measurements.chest_cm).toBeGreaterThan(short.body.measurements.chest_cm);
    expect(SIZES.indexOf(tall.body.recommended_size)).toBeGreaterThanOrEqual(SIZES.indexOf(short.body.recommended_size));

    const male = await estimate('yogait-man-tpose-office.jpg', HEIGHT, { gender: 'male' });
    expect(male.status).toBe(200);
    expect(male.body.chart).toBe('default-male');
    const tight = await estimate('yogait-man-tpose-office.jpg', HEIGHT, { fit_preference: 'tight' });
    const loose = await estimate('yogait-man-tpose-office.jpg', HEIGHT, { fit_preference: 'loose' });
    expect(SIZES.indexOf(loose.body.recommended_size)).toBeGreaterThanOrEqual(SIZES.indexOf(tight.body.recommended_size));

    const store = await estimate('yogait-man-tpose-office.jpg', HEIGHT, {
      size_chart: [{ size: 'small', chest_cm: 60 }, { size: 'medium', chest_cm: 200 }, { size: 'large' }],
    });
    expect(store.status).toBe(200);
    expect(store.body.chart).toBe('store');
    expect(store.body.recommended_size).toBe('medium');
  });

  it('answers 422 for a photo with no person', async () => {
    const r = await estimate('gradient.png');
    expect(r.status).toBe(422);
    expect(r.body).toEqual({ detail: 'Could not detect full body pose from image' });
  });

  it('answers 422 naming the missing parts for a half-body crop', async () => {
    const r = await estimate('half-body.jpg');
    expect(r.status).toBe(422);
    expect(Object.keys(r.body)).toEqual(['detail']);
    expect(r.body.detail).toMatch(/Could not detect full body pose from image/);
    expect(r.body.detail).toMatch(/ankles/);
  });

  it('answers 400 {detail} for images that cannot be fetched or decoded', async () => {
    for (const file of ['missing.jpg', 'not-an-image.txt', 'broken.jpg']) {
      const r = await estimate(file);
      expect(r.status, file).toBe(400);
      expect(r.body, file).toEqual({ detail: 'Invalid or inaccessible image URL' });
    }
    // not on the allow-list: a loopback host by another name is refused by the safe download
    const r = await post({ image_url: `${base.replace('127.0.0.1', 'localhost')}/gradient.png`, height_cm: 170 });
    expect(r.statusCode).toBe(400);
  });

  it('answers 400 {detail} for invalid bodies', async () => {
    const bad = [
      { image_url: `${base}/a.jpg`, height_cm: 99 },
      { image_url: `${base}/a.jpg`, height_cm: 251 },
      { image_url: `${base}/a.jpg`, height_cm: '170' },
      { image_url: 'ftp://example.com/a.jpg', height_cm: 170 },
      { image_url: `${base}/a.jpg`, height_cm: 170, extra: 1 },
      { height_cm: 170 },
      { image_url: `${base}/a.jpg`, height_cm: 170, gender: 'other' },
      { image_url: `${base}/a.jpg`, height_cm: 170, size_chart: [{ size: 'S', chest_cm: 100 }, { size: 'M', chest_cm: 90 }] },
    ];
    for (const body of bad) {
      const r = await post(body);
      expect(r.statusCode, JSON.stringify(body)).toBe(400);
      expect(typeof r.json().detail, JSON.stringify(body)).toBe('string');
    }
    const raw = await app.inject({ method: 'POST', url: '/estimate-body', payload: '{not json', headers: { 'content-type': 'application/json' } });
    expect(raw.statusCode).toBe(400);
    expect(typeof raw.json().detail).toBe('string');
  });

  it('answers 503 with Retry-After while the model is not loaded', async () => {
    const cold = createSizeRecStack(baseConfig, silentLogger()).value;
    const coldApp = createHttpServer({ logger: silentLogger(), metrics: createMetrics({ defaults: false }) });
    await coldApp.register(estimateBodyRoutes({ recommend: cold.recommend }));
    try {
      expect(cold.pose.ready()).toBe(false);
      const r = await coldApp.inject({ method: 'POST', url: '/estimate-body', payload: { image_url: `${base}/gradient.png`, height_cm: 170 } });
      expect(r.statusCode).toBe(503);
      expect(r.json()).toEqual({ detail: 'Pose estimation service is temporarily unavailable' });
      expect(Number(r.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    } finally {
      await coldApp.close();
      await cold.pose.close();
    }
  });

  it('rejects work beyond the queue bound and past the deadline with retryable errors', async () => {
    const small = createSizeRecStack({ ...baseConfig, POSE_QUEUE_MAX: 1, POSE_TIMEOUT_MS: 20_000 }, silentLogger()).value;
    await small.pose.load();
    try {
      const img = readFileSync(photo('pifu-ryota-apose.png'));
      // first goes straight to the worker, second waits in the queue, the rest overflow
      const settled = await Promise.allSettled([1, 2, 3, 4].map(() => small.pose.estimate(img)));
      expect(settled.slice(0, 2).every((s) => s.status === 'fulfilled')).toBe(true);
      for (const s of settled.slice(2)) {
        expect(s.status).toBe('rejected');
        if (s.status === 'rejected') {
          expect(s.reason).toBeInstanceOf(PoseOverloadedError);
          expect(s.reason.retryAfterSeconds).toBeGreaterThanOrEqual(1);
        }
      }
    } finally {
      await small.pose.close();
    }
    const hasty = createSizeRecStack({ ...baseConfig, POSE_TIMEOUT_MS: 1 }, silentLogger()).value;
    await hasty.pose.load();
    try {
      await expect(hasty.pose.estimate(readFileSync(photo('pifu-ryota-apose.png')))).rejects.toBeInstanceOf(PoseTimeoutError);
      expect(hasty.pose.ready()).toBe(true);
    } finally {
      await hasty.pose.close();
    }
  });
});

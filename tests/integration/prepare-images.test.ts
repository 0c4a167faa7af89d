// Input preparation: real downloads from a local server (allowed host) and real sharp processing.
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { createInputImages, prepareImage } from '../../src/adapters/images/prepare.ts';
import { startImageServer, type ImageServer } from '../support/imageServer.ts';
import { noisyJpeg, pixelBombPng, pngHeaderOnHtml, solid } from '../support/images.ts';
import { pipelineError } from '../support/assertions.ts';

let srv: ImageServer;
const maxPixels = 40_000_000;
const inputs = () => createInputImages({ allowHosts: ['127.0.0.1'], maxPixels, fetchTimeoutMs: 2_000 });
const ctx = { requestId: 'req-test' };

beforeAll(async () => {
  srv = await startImageServer();
  srv.serve('/person.jpg', await noisyJpeg(1600, 1250), 'image/jpeg');
  srv.serve('/garment.png', await solid(300, 400, '#aa0000', 'png'), 'image/png');
  srv.serve('/bomb.png', pixelBombPng(), 'image/png');
  srv.serve('/fake.png', pngHeaderOnHtml(), 'image/png');
  srv.serve('/page', Buffer.from('<html>hello</html>'), 'text/html');
});
afterAll(() => srv.close());

describe('prepareImage', () => {
  it('applies EXIF orientation (BUG-17)', async () => {
    // 200x100 stored pixels tagged "rotate 90 CW": displayed as 100x200
    const tagged = await sharp(await solid(200, 100)).withMetadata({ orientation: 6 }).jpeg().toBuffer();
    const out = await sharp(await prepareImage(tagged, { maxPixels })).metadata();
    expect([out.width, out.height]).toEqual([100, 200]);
    expect(out.orientation ?? 1).toBe(1);
  });

  it('bounds the longest side to 1024 and never upscales', async () => {
    const big = await sharp(await prepareImage(await noisyJpeg(2048, 1536), { maxPixels })).metadata();
    expect([big.width, big.height, big.format]).toEqual([1024, 768, 'jpeg']);
    const small = await sharp(await prepareImage(await solid(300, 200), { maxPixels })).metadata();
    expect([small.width, small.height]).toEqual([300, 200]);
  });

  it('flattens transparency on white', async () => {
    const transparent = await sharp({ create: { width: 8, height: 8, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } }).png().toBuffer();
    const { data, info } = await sharp(await prepareImage(transparent, { maxPixels })).raw().toBuffer({ resolveWithObject: true });
    expect(info.channels).toBe(3);
    expect(Math.min(...data)).toBeGreaterThanOrEqual(250);
  });

  it('refuses a pixel bomb from its header', async () => {
    const err = await pipelineError(prepareImage(pixelBombPng(), { maxPixels }));
    expect(err.code).toBe('image_invalid');
    expect(err.message).toMatch(/pixel limit/);
  });

  it('refuses bytes that only look like a PNG', async () => {
    expect((await pipelineError(prepareImage(pngHeaderOnHtml(), { maxPixels }))).code).toBe('image_invalid');
  });
});

/** This process's threads: name and nice value (/proc/self/task/<tid>/stat, field 19). */
function threads(): { tid: number; name: string; nice: number }[] {
  return readdirSync('/proc/self/task').flatMap((tid) => {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      return [{ tid: Number(tid), name, nice: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]) }];
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []; // ended while listed
      throw err;
    }
  });
}

describe.skipIf(process.platform !== 'linux')('image threads (Linux: nice is per thread)', () => {
  it('run 10 nice steps below the process; the other threads keep its priority', async () => {
    const base = os.getPriority(process.pid);
    const image = await noisyJpeg(1600, 1250);
    const imageThreads = () => threads().filter((t) => t.name === 'libvips worker');
    // Threads a job starts are reniced after it (at most every 250 ms): run jobs until every image thread is seen.
    const deadline = Date.now() + 20_000;
    while (imageThreads().length === 0 || imageThreads().some((t) => t.nice !== Math.min(19, base + 10))) {
      if (Date.now() > deadline) throw new Error(`image threads not reniced: ${JSON.stringify(imageThreads())}`);
      await prepareImage(image, { maxPixels });
    }
    const others = threads().filter((t) => t.name !== 'libvips worker');
    expect(others.length).toBeGreaterThan(0);
    expect(others.filter((t) => t.nice !== base)).toEqual([]);
  });
});

describe('createInputImages', () => {
  it('downloads and prepares all images with the generator filenames', async () => {
    const r = await inputs().prepare([srv.url('/person.jpg'), srv.url('/garment.png')], ctx);
    expect(r.images.map((i) => i.filename)).toEqual(['model.jpg', 'image_1.jpg']);
    expect(r.images.every((i) => i.contentType === 'image/jpeg' && i.bytes[0] === 0xff && i.bytes[1] === 0xd8)).toBe(true);
    const m = await sharp(r.images[0]!.bytes).metadata();
    expect(Math.max(m.width!, m.height!)).toBe(1024);
    expect(r.downloadMs).toBeGreaterThanOrEqual(0);
    expect(r.resizeMs).toBeGreaterThanOrEqual(0);
  });

  it('maps download failures to image_fetch_failed', async () => {
    const err = await pipelineError(inputs().prepare([srv.url('/person.jpg'), srv.url('/missing.jpg')], ctx));
    expect(err.code).toBe('image_fetch_failed');
    expect(err.message).toContain('image_1.jpg');
    const blocked = await pipelineError(createInputImages({ maxPixels }).prepare([srv.url('/person.jpg')], ctx));
    expect(blocked.code).toBe('image_fetch_failed');
    expect(blocked.message).toContain('blocked_address');
  });

  it('maps non-images, fake PNGs and pixel bombs to image_invalid', async () => {
    for (const path of ['/page', '/fake.png', '/bomb.png']) {
      const err = await pipelineError(inputs().prepare([srv.url('/person.jpg'), srv.url(path)], ctx));
      expect(err.code).toBe('image_invalid');
    }
  });

  it('refuses more than 16 images (BUG-26)', async () => {
    const urls = Array.from({ length: 17 }, () => srv.url('/garment.png'));
    expect((await pipelineError(inputs().prepare(urls, ctx))).code).toBe('image_invalid');
  });
});

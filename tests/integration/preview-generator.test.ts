// The offline preview generator: a labelled composite, JPEG 1024x1536, provider `preview`.
import { describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { createPreviewGenerator } from '../../src/adapters/imagegen/preview.ts';
import { prepareImage } from '../../src/adapters/images/prepare.ts';
import { noisyJpeg, solid } from '../support/images.ts';

describe('preview generator', () => {
  it('composes person, garment inset and a red PREVIEW banner into a 1024x1536 JPEG', async () => {
    const person = await prepareImage(await noisyJpeg(1600, 1250), { maxPixels: 1e8 });
    const garment = await prepareImage(await solid(500, 700, '#00ff00'), { maxPixels: 1e8 });
    const gen = createPreviewGenerator();
    const out = await gen.generate(
      {
        images: [
          { filename: 'model.jpg', bytes: person, contentType: 'image/jpeg' },
          { filename: 'image_1.jpg', bytes: garment, contentType: 'image/jpeg' },
        ],
        prompt: '',
      },
      { requestId: 'r' },
    );
    expect(gen.provider).toBe('preview');
    expect(out).toMatchObject({ provider: 'preview', usage: null, costUsd: 0, contentType: 'image/jpeg' });
    const meta = await sharp(out.bytes).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['jpeg', 1024, 1536]);
    const { data, info } = await sharp(out.bytes).raw().toBuffer({ resolveWithObject: true });
    const px = (x: number, y: number) => Array.from(data.subarray((y * info.width + x) * 3, (y * info.width + x) * 3 + 3));
    const [r, g, b] = px(5, 5); // banner corner: red
    expect(r).toBeGreaterThan(150);
    expect(g).toBeLessThan(60);
    expect(b).toBeLessThan(80);
    const [ir, ig, ib] = px(1024 - 32 - 180, 1536 - 32 - 180); // centre of the garment inset: green
    expect(ig).toBeGreaterThan(200);
    expect(ir).toBeLessThan(60);
    expect(ib).toBeLessThan(60);
  });

  it('works with the person image alone', async () => {
    const person = await prepareImage(await solid(800, 600), { maxPixels: 1e8 });
    const out = await createPreviewGenerator().generate({ images: [{ filename: 'model.jpg', bytes: person, contentType: 'image/jpeg' }], prompt: 'x' }, { requestId: 'r' });
    const meta = await sharp(out.bytes).metadata();
    expect([meta.width, meta.height]).toEqual([1024, 1536]);
  });
});

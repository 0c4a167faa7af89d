// The offline stand-in generator used when no OPENAI_API_KEY is set: NOT a try-on. It composes the person image
// (letterboxed into 1024x1536) with the garment image inset bottom-right and a banner that says so, so the whole
// pipeline (ledger, storage, reads) works without the upstream service. Provider `preview`, no usage, cost 0.
import { withImageSlot } from '../images/cpuGate.ts';
import sharp, { type Sharp } from 'sharp';
import type { CallContext, GeneratedImage, ImageGenerator, PreparedImage } from '../../app/ports/pipeline.ts';

export const PREVIEW_WIDTH = 1024;
export const PREVIEW_HEIGHT = 1536;
export const PREVIEW_BANNER_TEXT = 'PREVIEW - no OpenAI key';
const INSET = 360;
const MARGIN = 32;
const BORDER = 6;

function bannerSvg(width: number): Buffer {
  return Buffer.from(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="120">
  <rect width="100%" height="100%" fill="#b00020"/>
  <text x="50%" y="62" font-family="DejaVu Sans, Arial, sans-serif" font-size="50" font-weight="bold" fill="#ffffff" text-anchor="middle">${PREVIEW_BANNER_TEXT}</text>
  <text x="50%" y="100" font-family="DejaVu Sans, Arial, sans-serif" font-size="24" fill="#ffffff" text-anchor="middle">composite of the inputs, not a generated try-on</text>
</svg>`,
  );
}

interface RawLayer {
  data: Buffer;
  width: number;
  height: number;
  left: number;
  top: number;
}

/** Copies an opaque RGB layer into an RGB canvas row by row (much cheaper than a libvips composite). */
function paste(canvas: Buffer, canvasWidth: number, layer: RawLayer): void {
  const rowBytes = layer.width * 3;
  for (let y = 0; y < layer.height; y++) {
    layer.data.copy(canvas, ((layer.top + y) * canvasWidth + layer.left) * 3, y * rowBytes, (y + 1) * rowBytes);
  }
}

async function rawRgb(img: Sharp): Promise<{ data: Buffer; width: number; height: number }> {
  const { data, info } = await img.removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`expected RGB, got ${info.channels} channels`);
  return { data, width: info.width, height: info.height };
}

export function createPreviewGenerator(): ImageGenerator {
  // The banner is rasterised once (opaque RGB); per call: decode+letterbox the person, shrink the garment,
  // paste both in JS, encode once.
  let banner: Promise<RawLayer> | undefined;
  const bannerLayer = () =>
    (banner ??= rawRgb(sharp(bannerSvg(PREVIEW_WIDTH)).flatten({ background: '#ffffff' })).then((r) => ({ ...r, left: 0, top: 0 })));

  async function inset(garment: PreparedImage): Promise<RawLayer> {
    const r = await rawRgb(
      sharp(garment.bytes)
        .resize(INSET - 2 * BORDER, INSET - 2 * BORDER, { fit: 'contain', background: '#ffffff' })
        .extend({ top: BORDER, bottom: BORDER, left: BORDER, right: BORDER, background: '#222222' }),
    );
    return { ...r, left: PREVIEW_WIDTH - r.width - MARGIN, top: PREVIEW_HEIGHT - r.height - MARGIN };
  }

  return {
    provider: 'preview',
    generate: (input, ctx) => withImageSlot(() => composite(input, ctx)),
  };

  async function composite(input: { images: PreparedImage[]; prompt: string }, ctx: CallContext): Promise<GeneratedImage> {
    ctx.signal?.throwIfAborted();
    const [person, garment] = input.images;
    const base = person
      ? // `contain` (letterbox) rather than `cover`: no upscaling of a 1024-wide input, several times faster
        sharp(person.bytes).resize(PREVIEW_WIDTH, PREVIEW_HEIGHT, { fit: 'contain', background: '#e8e8e8' })
      : sharp({ create: { width: PREVIEW_WIDTH, height: PREVIEW_HEIGHT, channels: 3, background: '#e8e8e8' } });
    const [canvas, top, insetLayer] = await Promise.all([rawRgb(base), bannerLayer(), garment ? inset(garment) : undefined]);
    if (insetLayer) paste(canvas.data, canvas.width, insetLayer);
    paste(canvas.data, canvas.width, top);
    const bytes = await sharp(canvas.data, { raw: { width: canvas.width, height: canvas.height, channels: 3 } })
      .jpeg({ quality: 80, optimiseCoding: false })
      .toBuffer();
    return { bytes, contentType: 'image/jpeg', provider: 'preview', usage: null, costUsd: 0 };
  }
}

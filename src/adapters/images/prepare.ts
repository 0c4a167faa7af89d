// Input images for a generation: safe download of every URL in parallel, then one sharp pass each:
// EXIF orientation applied (BUG-17), longest side <= 1024 (never upscaled), alpha flattened on white, JPEG.
// `limitInputPixels` makes sharp refuse decompression bombs from the header, before decoding.
import sharp from 'sharp';
import type { Logger } from '../../logger.ts';
import { redactUrl } from '../../logger.ts';
import { PipelineError, type CallContext, type InputImages, type PreparedImage } from '../../app/ports/pipeline.ts';
import { ImageFetchError, safeFetch } from './safeFetch.ts';
import { withImageSlot } from './cpuGate.ts';

export const MAX_SIDE = 1024;
export const JPEG_QUALITY = 85;
/** The images edit API takes at most 16 input images (BUG-26). */
export const MAX_INPUT_IMAGES = 16;

export interface PrepareOptions {
  maxPixels: number;
  maxSide?: number;
  quality?: number;
}

/** Decodes, orients, bounds and re-encodes one image; throws PipelineError('image_invalid') on anything undecodable. */
export async function prepareImage(bytes: Buffer, opts: PrepareOptions): Promise<Buffer> {
  const side = opts.maxSide ?? MAX_SIDE;
  try {
    return await withImageSlot(() =>
      sharp(bytes, { limitInputPixels: opts.maxPixels, failOn: 'error', animated: false })
        .rotate() // applies the EXIF orientation, then the output carries none
        .resize(side, side, { fit: 'inside', withoutEnlargement: true })
        .flatten({ background: { r: 255, g: 255, b: 255 } })
        .jpeg({ quality: opts.quality ?? JPEG_QUALITY })
        .toBuffer(),
    );
  } catch (err) {
    const pixels = /pixel limit/i.test(String((err as Error)?.message));
    throw new PipelineError('image_invalid', pixels ? 'image exceeds the pixel limit' : 'image cannot be decoded', { cause: err });
  }
}

export const inputFilename = (i: number) => (i === 0 ? 'model.jpg' : `image_${i}.jpg`);

export interface InputImagesOptions extends PrepareOptions {
  allowHosts?: readonly string[];
  fetchTimeoutMs?: number;
  maxBytes?: number;
  logger?: Logger;
}

/** ImageFetchError codes that say "this is not a usable image" rather than "it could not be downloaded". */
const INVALID_CODES = new Set(['not_image', 'too_large']);

export function createInputImages(options: InputImagesOptions): InputImages {
  const fetchOne = async (url: string, i: number, ctx: CallContext): Promise<Buffer> => {
    try {
      const r = await safeFetch(url, {
        allowHosts: options.allowHosts,
        timeoutMs: options.fetchTimeoutMs,
        maxBytes: options.maxBytes,
        signal: ctx.signal,
      });
      return r.bytes;
    } catch (err) {
      if (!(err instanceof ImageFetchError)) throw err; // the caller's abort, untouched
      options.logger?.warn({ request_id: ctx.requestId, image: inputFilename(i), url: redactUrl(url), code: err.code, err: err.message }, 'image_fetch_failed');
      const code = INVALID_CODES.has(err.code) ? 'image_invalid' : 'image_fetch_failed';
      throw new PipelineError(code, `${inputFilename(i)}: ${err.code}: ${err.message}`, { cause: err });
    }
  };

  return {
    async prepare(urls, ctx) {
      if (urls.length === 0 || urls.length > MAX_INPUT_IMAGES) {
        throw new PipelineError('image_invalid', `between 1 and ${MAX_INPUT_IMAGES} images are needed, got ${urls.length}`);
      }
      const t0 = performance.now();
      const downloaded = await Promise.all(urls.map((u, i) => fetchOne(u, i, ctx)));
      const t1 = performance.now();
      const images = await Promise.all(
        downloaded.map(async (bytes, i): Promise<PreparedImage> => {
          try {
            return { filename: inputFilename(i), bytes: await prepareImage(bytes, options), contentType: 'image/jpeg' };
          } catch (err) {
            if (err instanceof PipelineError) {
              options.logger?.warn({ request_id: ctx.requestId, image: inputFilename(i), err: err.message }, 'image_invalid');
              throw new PipelineError(err.code, `${inputFilename(i)}: ${err.message}`, { cause: err.options.cause });
            }
            throw err;
          }
        }),
      );
      const t2 = performance.now();
      return { images, downloadMs: Math.round(t1 - t0), resizeMs: Math.round(t2 - t1) };
    },
  };
}

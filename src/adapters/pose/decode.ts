// Image decoding for the pose model: EXIF orientation applied, a pixel limit against decompression bombs, and a
// downscale to a working size (BlazePose sees 224/256 px crops, so more pixels only cost time).
import sharp from 'sharp';

// No libvips operation cache in the pose threads either: every image is new, and memory must stay flat.
sharp.cache(false);

/** Longest side of the image the pose pipeline samples from. */
export const WORKING_SIDE = 640;

export class ImageDecodeError extends Error {
  override readonly name = 'ImageDecodeError';
}

export interface DecodedImage {
  rgb: Uint8Array;
  width: number;
  height: number;
  /** size of the EXIF-oriented original */
  originalWidth: number;
  originalHeight: number;
}

export async function decodeForPose(bytes: Uint8Array, maxPixels: number): Promise<DecodedImage> {
  try {
    const input = sharp(bytes, { limitInputPixels: maxPixels, failOn: 'error' });
    const meta = await input.metadata();
    if (!meta.width || !meta.height) throw new ImageDecodeError('image has no dimensions');
    const swap = (meta.orientation ?? 1) >= 5; // orientations 5-8 swap width and height
    const { data, info } = await input
      .rotate() // apply EXIF orientation (BUG-17)
      .resize({ width: WORKING_SIDE, height: WORKING_SIDE, fit: 'inside', withoutEnlargement: true })
      .flatten({ background: '#000000' })
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new ImageDecodeError(`unexpected channel count ${info.channels}`);
    return {
      rgb: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      width: info.width,
      height: info.height,
      originalWidth: swap ? meta.height : meta.width,
      originalHeight: swap ? meta.width : meta.height,
    };
  } catch (err) {
    if (err instanceof ImageDecodeError) throw err;
    throw new ImageDecodeError(err instanceof Error ? err.message : String(err));
  }
}

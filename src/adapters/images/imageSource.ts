// The size recommendation's image source: the shared safe download (SSRF checks, size caps), within the platform
// proxy's time budget.
import type { Config } from '../../config.ts';
import { ImageUnavailableError, type ImageSource } from '../../app/sizeRecommendation.ts';
import { ImageFetchError, safeFetch } from './safeFetch.ts';

/** The platform proxy gives the worker 5 s in total, so the download gets at most that (as in the original). */
export const SIZE_REC_FETCH_TIMEOUT_MS = 5000;

export function safeImageSource(config: Pick<Config, 'IMAGE_FETCH_ALLOW_HOSTS' | 'IMAGE_FETCH_TIMEOUT_MS' | 'IMAGE_MAX_BYTES'>): ImageSource {
  return {
    async fetch(url) {
      try {
        const { bytes } = await safeFetch(url, {
          allowHosts: config.IMAGE_FETCH_ALLOW_HOSTS,
          timeoutMs: Math.min(config.IMAGE_FETCH_TIMEOUT_MS, SIZE_REC_FETCH_TIMEOUT_MS),
          maxBytes: config.IMAGE_MAX_BYTES,
        });
        return bytes;
      } catch (err) {
        if (err instanceof ImageFetchError) throw new ImageUnavailableError(err.code, err.message);
        throw err;
      }
    },
  };
}


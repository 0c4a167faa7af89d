// ImageGenerator over the OpenAI images.edit API (openai SDK 6.x).
// - SDK retries are OFF (the SDK would honour any Retry-After without a cap); this adapter retries 5xx and network
//   errors itself with bounded exponential backoff, and turns a 429 into PipelineError('rate_limited') so the saga
//   schedules a retry instead of blocking a worker slot.
// - One deadline (`timeoutMs`) covers the whole call including in-adapter retries, enforced with an AbortSignal,
//   because the SDK's own timer stops once headers arrive (a stalled body would hang forever) and because the
//   original's 3 x 180 s worst case outlived its hard limit (BUG-22).
// - `output_format: 'jpeg'`, so the bytes match the `.jpg` path and `image/jpeg` content type (BUG-18).
// - Errors carry codes; the user-facing text comes from USER_MESSAGES, never from the upstream body (BUG-20).
import OpenAI, { APIConnectionError, APIError, toFile } from 'openai';
import sharp from 'sharp';
import type { Logger } from '../../logger.ts';
import type { Metrics } from '../../metrics.ts';
import {
  PipelineError,
  type CallContext,
  type GeneratedImage,
  type ImageGenerator,
  type PreparedImage,
  type RateLimiter,
} from '../../app/ports/pipeline.ts';
import { estimateCostUsd, normalizeUsage, type RawImageUsage } from './pricing.ts';
import { sniffImageType } from '../images/safeFetch.ts';

/** The original worker's default, used when the task's prompt is blank (original-system.md §5.5). */
export const DEFAULT_TRYON_PROMPT =
  "Virtual try-on: model.jpg is the person photo and image_1.jpg is the clothing photo. Dress the model in model.jpg with the clothing from image_1.jpg. Maintain the model's original pose, body shape, skin tone, background, and lighting from model.jpg. The clothing should fit naturally and look realistic.";

export const effectivePrompt = (prompt: string): string => (prompt.trim() === '' ? DEFAULT_TRYON_PROMPT : prompt.trim());

/** Lower bound on a 429's retry delay, whatever Retry-After says. */
export const MIN_RATE_LIMIT_RETRY_MS = 10_000;

export interface OpenAIGeneratorOptions {
  apiKey: string;
  baseURL?: string;
  model: string;
  quality: 'low' | 'medium' | 'high' | 'auto';
  size: string;
  /** Deadline for one generate() call, retries included. */
  timeoutMs: number;
  /** Extra attempts after a 5xx or a network error. */
  maxRetries: number;
  rateLimiter?: RateLimiter;
  metrics?: Pick<Metrics, 'openaiRequests' | 'rateLimitWaitSeconds'>;
  logger?: Logger;
  /** Backoff before retry k (0-based) is min(base * 2^k, max) with up to 25 % jitter. */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
}

/** Parses `retry-after-ms` / `retry-after` (seconds or an HTTP date) into ms. */
export function retryAfterMs(headers: Headers | undefined, now = Date.now()): number | undefined {
  if (!headers) return undefined;
  const ms = Number(headers.get('retry-after-ms'));
  if (headers.get('retry-after-ms') && Number.isFinite(ms) && ms >= 0) return ms;
  const ra = headers.get('retry-after');
  if (!ra) return undefined;
  const secs = Number(ra);
  if (Number.isFinite(secs) && secs >= 0) return secs * 1000;
  const date = Date.parse(ra);
  return Number.isFinite(date) ? Math.max(0, date - now) : undefined;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

interface ImagesResponseLike {
  data?: { b64_json?: string | null; url?: string | null }[] | null;
  usage?: RawImageUsage | null;
}

export function createOpenAIGenerator(opts: OpenAIGeneratorOptions): ImageGenerator {
  const client = new OpenAI({ apiKey: opts.apiKey, baseURL: opts.baseURL ?? null, maxRetries: 0, timeout: opts.timeoutMs });
  const base = opts.backoffBaseMs ?? 1000;
  const cap = opts.backoffMaxMs ?? 8000;
  const count = (status: string) => opts.metrics?.openaiRequests.inc({ status });

  async function decode(resp: ImagesResponseLike): Promise<Buffer> {
    const b64 = resp?.data?.[0]?.b64_json;
    if (typeof b64 !== 'string' || b64 === '') throw new PipelineError('upstream_error', 'openai response has no b64_json image');
    const bytes = Buffer.from(b64, 'base64');
    const kind = sniffImageType(bytes);
    if (kind === 'image/jpeg') return bytes;
    if (!kind) throw new PipelineError('upstream_error', 'openai response image is not a known image format');
    // An upstream (or a proxy) that ignored output_format: convert, so stored bytes always match image/jpeg.
    try {
      return await sharp(bytes).flatten({ background: '#ffffff' }).jpeg({ quality: 90 }).toBuffer();
    } catch (err) {
      throw new PipelineError('upstream_error', 'openai response image cannot be decoded', { cause: err });
    }
  }

  return {
    provider: 'openai',
    async generate(input: { images: PreparedImage[]; prompt: string }, ctx: CallContext): Promise<GeneratedImage> {
      const deadline = AbortSignal.timeout(opts.timeoutMs);
      const signal = ctx.signal ? AbortSignal.any([ctx.signal, deadline]) : deadline;
      const log = opts.logger?.child({ request_id: ctx.requestId });
      const prompt = effectivePrompt(input.prompt);
      // Classify an abort: the caller's own abort propagates untouched, our deadline is upstream_timeout.
      const aborted = (err: unknown): never => {
        if (ctx.signal?.aborted) {
          count('aborted');
          throw ctx.signal.reason;
        }
        count('timeout');
        throw new PipelineError('upstream_timeout', `openai did not answer within ${opts.timeoutMs} ms`, { cause: err });
      };

      for (let attempt = 0; ; attempt++) {
        if (opts.rateLimiter) {
          let waited: number;
          try {
            waited = await opts.rateLimiter.acquire(signal);
          } catch (err) {
            if (signal.aborted) return aborted(err);
            throw err;
          }
          opts.metrics?.rateLimitWaitSeconds.observe(waited / 1000);
        }
        if (signal.aborted) return aborted(signal.reason);
        let retryable: PipelineError;
        try {
          // Files are rebuilt per attempt: an uploaded File body is consumed.
          const files = await Promise.all(input.images.map((im) => toFile(im.bytes, im.filename, { type: im.contentType })));
          const resp = (await client.images.edit(
            {
              model: opts.model,
              image: files,
              prompt,
              quality: opts.quality,
              size: opts.size as '1024x1536',
              output_format: 'jpeg',
              n: 1,
            },
            { signal, maxRetries: 0 },
          )) as ImagesResponseLike;
          count('200');
          const bytes = await decode(resp);
          const usage = normalizeUsage(resp?.usage);
          const costUsd = usage ? estimateCostUsd(usage, opts.model) : null;
          log?.info({ attempt, usage, estimated_cost_usd: costUsd }, 'openai_success');
          return { bytes, contentType: 'image/jpeg', provider: 'openai', usage, costUsd };
        } catch (err) {
          if (err instanceof PipelineError) throw err;
          if (signal.aborted) return aborted(err);
          if (err instanceof APIError && typeof err.status === 'number') {
            const status = err.status;
            count(String(status));
            if (status === 429) {
              const wait = Math.max(MIN_RATE_LIMIT_RETRY_MS, retryAfterMs(err.headers) ?? 0);
              log?.warn({ attempt, status, retry_after_ms: wait }, 'openai_rate_limited');
              throw new PipelineError('rate_limited', 'openai rate limit (429)', { retryAfterMs: wait, cause: err });
            }
            if (status === 400 && err.code === 'moderation_blocked') {
              log?.warn({ attempt, status, code: err.code }, 'openai_moderation_blocked');
              throw new PipelineError('moderation_blocked', 'openai moderation_blocked', { cause: err });
            }
            const detail = `openai HTTP ${status}${err.code ? ` ${err.code}` : ''}`;
            if (status < 500) {
              log?.warn({ attempt, status, code: err.code, type: err.type }, 'openai_client_error');
              throw new PipelineError('upstream_error', detail, { cause: err });
            }
            retryable = new PipelineError('upstream_error', detail, { cause: err });
          } else if (err instanceof APIConnectionError) {
            count('network');
            retryable = new PipelineError('upstream_error', 'openai network error', { cause: err });
          } else {
            // No status and not a connection error: a broken body (e.g. the socket closed mid-response) or a bug.
            count('error');
            retryable = new PipelineError('upstream_error', `openai call failed: ${(err as Error)?.name ?? 'error'}`, { cause: err });
          }
        }
        if (attempt >= opts.maxRetries) throw retryable;
        const delay = Math.round(Math.min(base * 2 ** attempt, cap) * (1 - Math.random() * 0.25));
        log?.warn({ attempt, error: retryable.message, retry_in_ms: delay }, 'openai_retry');
        try {
          await sleep(delay, signal);
        } catch (err) {
          return aborted(err);
        }
      }
    },
  };
}

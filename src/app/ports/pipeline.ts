// Ports the generation saga runs through. Adapters live in src/adapters/*; errors cross the port as these types.
import type { GenerationUsage } from '../../domain/events.ts';

export interface PreparedImage {
  filename: string; // model.jpg, image_1.jpg, ...
  bytes: Buffer;
  contentType: 'image/jpeg';
}

export interface CallContext {
  requestId: string;
  signal?: AbortSignal;
}

/** Safe download of every input (in parallel) and resize to what the generator takes. */
export interface InputImages {
  prepare(urls: readonly string[], ctx: CallContext): Promise<{ images: PreparedImage[]; downloadMs: number; resizeMs: number }>;
}

export interface GeneratedImage {
  bytes: Buffer;
  contentType: 'image/jpeg' | 'image/png' | 'image/webp';
  /** `openai` or `preview` (the offline stand-in); recorded on the completion event and in metrics */
  provider: string;
  usage: GenerationUsage | null;
  costUsd: number | null;
}

export interface ImageGenerator {
  readonly provider: string;
  generate(input: { images: PreparedImage[]; prompt: string }, ctx: CallContext): Promise<GeneratedImage>;
}

/** Where generated images go; paths are the platform's (`generated/{user}/{session}.jpg`, `stores/{store}/generated/{session}.jpg`). */
export interface ResultStore {
  readonly kind: string;
  /** Upsert: a re-run of the same generation overwrites, never fails on an existing object. */
  put(path: string, bytes: Buffer, contentType: string, ctx: CallContext): Promise<void>;
  /** A URL valid for `ttlSeconds`. */
  signedUrl(path: string, ttlSeconds: number, ctx: CallContext): Promise<string>;
}

/** Error codes that the saga turns into RetryScheduled or GenerationFailed. */
export type PipelineErrorCode =
  | 'rate_limited' // upstream 429: RetryScheduled while attempts remain
  | 'moderation_blocked'
  | 'upstream_error'
  | 'upstream_timeout'
  | 'image_fetch_failed'
  | 'image_invalid'
  | 'storage_failed'
  | 'internal_error'
  | 'worker_lost';

export const USER_MESSAGES: Record<PipelineErrorCode, string> = {
  rate_limited: 'The image service is busy. Please try again in a few minutes.',
  moderation_blocked:
    'Your image was flagged by the safety filter. Please use different images that comply with content guidelines.',
  upstream_error: 'The image service failed to generate your try-on. Your credit has been refunded.',
  upstream_timeout: 'The image service took too long to answer. Your credit has been refunded.',
  image_fetch_failed: 'One of the input images could not be downloaded. Your credit has been refunded.',
  image_invalid: 'One of the input images is not a valid image. Your credit has been refunded.',
  storage_failed: 'The generated image could not be stored. Your credit has been refunded.',
  internal_error: 'Internal error during generation. Your credit has been refunded.',
  worker_lost: 'The generation did not complete in time. Your credit has been refunded.',
};

export class PipelineError extends Error {
  override readonly name = 'PipelineError';
  constructor(
    readonly code: PipelineErrorCode,
    message: string,
    readonly options: { retryAfterMs?: number; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
  }
  get userMessage(): string {
    return USER_MESSAGES[this.code];
  }
}

/** A global request budget (shared through Redis when present). Resolves when a slot is granted; returns ms waited. */
export interface RateLimiter {
  acquire(signal?: AbortSignal): Promise<number>;
}

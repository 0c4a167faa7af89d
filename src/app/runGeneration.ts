// One attempt of a generation (the saga's "run" step): download and resize the inputs, generate, store the result,
// time each stage. It appends nothing: it returns the outcome as the generation command to decide, and the saga appends
// it (or drops it when the attempt no longer holds the generation).
import type { GenerationCommand } from '../domain/generation.ts';
import type { GenerationCompleted, GenerationRequested } from '../domain/events.ts';
import { resultPath } from '../domain/resultPath.ts';
import { parseAccountId } from '../domain/streams.ts';
import type { Logger } from '../logger.ts';
import { PipelineError, USER_MESSAGES, type ImageGenerator, type InputImages, type ResultStore } from './ports/pipeline.ts';

export type RunCommand = Extract<GenerationCommand, { type: 'Complete' | 'ScheduleRetry' | 'Fail' | 'Release' }>;

export interface RunOutcome {
  command: RunCommand;
  /** who generated (or was asked to): labels the outcome's metrics */
  provider: string;
}

export interface RunDeps {
  images: InputImages;
  generator: ImageGenerator;
  results: ResultStore;
  workerId: string;
  clock: () => number;
  /** the run's logger (request, session, attempt) */
  log: Logger;
  signedUrlTtlSeconds: number;
  max429Retries: number;
}

export interface RunInput {
  sessionId: string;
  request: GenerationRequested['data'];
  attempt: number;
  /** epoch ms; the run stops `leaseMarginMs` before it, so no worker works past its lease */
  leaseUntil: number;
  leaseMarginMs: number;
  /** the worker is shutting down: stop, and give the generation back */
  shutdown?: AbortSignal | undefined;
}

export async function runGeneration(deps: RunDeps, run: RunInput): Promise<RunOutcome> {
  const req = run.request;
  const leaseSignal = AbortSignal.timeout(Math.max(1, run.leaseUntil - deps.clock() - run.leaseMarginMs));
  const signal = run.shutdown ? AbortSignal.any([leaseSignal, run.shutdown]) : leaseSignal;
  const ctx = { requestId: req.requestId, signal };
  let provider = deps.generator.provider;
  try {
    const prepared = await deps.images.prepare(req.imageUrls, ctx);
    const t0 = performance.now();
    const image = await deps.generator.generate({ images: prepared.images, prompt: req.prompt }, ctx);
    const generateMs = performance.now() - t0;
    provider = image.provider;
    const path = resultPath(req.channel, parseAccountId(req.account), run.sessionId);
    const t1 = performance.now();
    await deps.results.put(path, image.bytes, image.contentType, ctx);
    const resultUrl = await deps.results.signedUrl(path, deps.signedUrlTtlSeconds, ctx);
    const uploadMs = performance.now() - t1;
    const totalMs = Math.max(0, deps.clock() - Date.parse(req.requestedAt));
    const data: GenerationCompleted['data'] = {
      resultPath: path,
      resultUrl,
      contentType: image.contentType,
      provider: image.provider,
      usage: image.usage,
      costUsd: image.costUsd,
      timings: {
        downloadMs: Math.round(prepared.downloadMs),
        resizeMs: Math.round(prepared.resizeMs),
        generateMs: Math.round(generateMs),
        uploadMs: Math.round(uploadMs),
        totalMs: Math.round(totalMs),
      },
    };
    return { command: { type: 'Complete', attempt: run.attempt, data }, provider };
  } catch (err) {
    const command = classifyFailure(err, {
      attempt: run.attempt,
      workerId: deps.workerId,
      now: deps.clock(),
      max429Retries: deps.max429Retries,
      shuttingDown: run.shutdown?.aborted ?? false,
      leaseEnded: leaseSignal.aborted,
    });
    if (command.type === 'Fail' && command.code === 'internal_error') deps.log.error({ err }, 'generation_internal_error');
    return { command, provider };
  }
}

export interface FailureContext {
  attempt: number;
  workerId: string;
  now: number;
  max429Retries: number;
  /** the worker is shutting down */
  shuttingDown: boolean;
  /** the run reached the end of its lease */
  leaseEnded: boolean;
}

/** Upstream 429s are retried no sooner than this. */
export const MIN_RETRY_AFTER_MS = 10_000;

/**
 * What a failed attempt becomes, pure: given back on shutdown (while the lease still runs), a retry for an upstream
 * rate limit, the pipeline's own failure code, a timeout at the end of the lease, or an internal error.
 */
export function classifyFailure(err: unknown, c: FailureContext): Exclude<RunCommand, { type: 'Complete' }> {
  if (c.shuttingDown && !c.leaseEnded) return { type: 'Release', attempt: c.attempt, workerId: c.workerId, reason: 'worker_shutdown' };
  if (err instanceof PipelineError && err.code === 'rate_limited') {
    return {
      type: 'ScheduleRetry',
      attempt: c.attempt,
      now: c.now,
      retryAfterMs: Math.max(MIN_RETRY_AFTER_MS, err.options.retryAfterMs ?? MIN_RETRY_AFTER_MS),
      reason: err.message,
      max429Retries: c.max429Retries,
    };
  }
  if (err instanceof PipelineError) return { type: 'Fail', attempt: c.attempt, code: err.code, message: err.message, userMessage: err.userMessage };
  if (c.leaseEnded) {
    return { type: 'Fail', attempt: c.attempt, code: 'upstream_timeout', message: 'the run reached the end of its lease', userMessage: USER_MESSAGES.upstream_timeout };
  }
  return {
    type: 'Fail',
    attempt: c.attempt,
    code: 'internal_error',
    message: String((err as Error)?.message ?? err),
    userMessage: USER_MESSAGES.internal_error,
  };
}

// The saga's pure parts as specifications: given a generation's events, nextStep names the step (ledger.md, the saga
// table); settleCommand and chargeRejection name what settling and a refused hold become; classifyFailure names what a
// failed attempt becomes.
import { describe, expect, it } from 'vitest';
import { classifyFailure, MIN_RETRY_AFTER_MS, type FailureContext } from '../../src/app/runGeneration.ts';
import { PipelineError, USER_MESSAGES } from '../../src/app/ports/pipeline.ts';
import type { GenerationEvent } from '../../src/domain/events.ts';
import { foldGeneration } from '../../src/domain/generation.ts';
import { chargeRejection, nextStep, settleCommand, type SagaStep } from '../../src/domain/saga.ts';

const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const iso = (ms: number) => new Date(ms).toISOString();

const requested: GenerationEvent = {
  type: 'GenerationRequested',
  data: {
    sessionId: 's1', taskId: 't1', channel: 'b2c', account: 'user:u1', imageUrls: ['https://x.test/a.jpg'], prompt: 'p', requestId: 'r1',
    payloadVersion: 1, requestedAt: iso(T0), acceptedAt: iso(T0), cost: 1,
  },
};
const charged: GenerationEvent = { type: 'GenerationCharged', data: { amount: 1 } };
const started = (leaseUntil: number): GenerationEvent => ({ type: 'GenerationStarted', data: { attempt: 1, workerId: 'w1', leaseUntil: iso(leaseUntil) } });
const retry = (notBefore: number): GenerationEvent => ({ type: 'RetryScheduled', data: { attempt: 1, notBefore: iso(notBefore), reason: '429' } });
const released: GenerationEvent = { type: 'GenerationReleased', data: { attempt: 1, workerId: 'w1', reason: 'worker_shutdown' } };
const completed: GenerationEvent = {
  type: 'GenerationCompleted',
  data: { resultPath: 'p', contentType: 'image/jpeg', provider: 't', usage: null, costUsd: null, timings: { downloadMs: 0, resizeMs: 0, generateMs: 0, uploadMs: 0, totalMs: 0 } },
};
const failed: GenerationEvent = { type: 'GenerationFailed', data: { code: 'upstream_error', message: 'x', userMessage: 'x' } };
const rejected: GenerationEvent = { type: 'GenerationRejected', data: { code: 'insufficient_credits', message: 'x' } };
const rejectedInvalid: GenerationEvent = { type: 'GenerationRejected', data: { code: 'invalid_request', message: 'bad', channel: 'b2c', account: 'user:u1' } };

/** Given events, at a time, then the next step. */
const given = (...events: GenerationEvent[]) => ({
  at: (now: number) => ({ then: (step: SagaStep) => expect(nextStep(foldGeneration(events), now)).toEqual(step) }),
});

describe('nextStep (the saga table)', () => {
  it('nothing requested: missing', () => given().at(T0).then({ kind: 'missing' }));
  it('requested: charge', () => given(requested).at(T0).then({ kind: 'charge' }));
  it('charged: claim', () => given(requested, charged).at(T0).then({ kind: 'claim', command: 'Claim' }));
  it('released on shutdown: claim at once', () => given(requested, charged, started(T0 + 60_000), released).at(T0).then({ kind: 'claim', command: 'Claim' }));
  it('started, lease live: leased until it ends', () => given(requested, charged, started(T0 + 60_000)).at(T0 + 59_999).then({ kind: 'leased', until: T0 + 60_000 }));
  it('started, lease expired: recover', () => given(requested, charged, started(T0 + 60_000)).at(T0 + 60_000).then({ kind: 'claim', command: 'Recover' }));
  it('retry not due: wait until it is', () => given(requested, charged, started(T0 + 60_000), retry(T0 + 10_000)).at(T0 + 9_999).then({ kind: 'wait', until: T0 + 10_000 }));
  it('retry due: claim', () => given(requested, charged, started(T0 + 60_000), retry(T0 + 10_000)).at(T0 + 10_000).then({ kind: 'claim', command: 'Claim' }));
  it('completed: settle', () => given(requested, charged, started(T0), completed).at(T0).then({ kind: 'settle', status: 'completed' }));
  it('failed: settle', () => given(requested, charged, started(T0), failed).at(T0).then({ kind: 'settle', status: 'failed' }));
  it('rejected: settle (a hold a racing worker took is returned)', () => given(requested, rejected).at(T0).then({ kind: 'settle', status: 'rejected' }));
  it('rejected before it was requested (invalid task): settle, with nothing to settle', () => given(rejectedInvalid).at(T0).then({ kind: 'settle', status: 'rejected' }));
});

describe('settleCommand and chargeRejection', () => {
  it('captures a completed generation and refunds any other', () => {
    expect(settleCommand('g1', 'completed')).toEqual({ type: 'Capture', generationId: 'g1' });
    expect(settleCommand('g1', 'failed')).toEqual({ type: 'Refund', generationId: 'g1', reason: 'generation_failed' });
    expect(settleCommand('g1', 'rejected')).toEqual({ type: 'Refund', generationId: 'g1', reason: 'generation_rejected' });
  });
  it('rejects for the expired window as such, and for any other refusal as a lack of credits', () => {
    expect(chargeRejection('charge_window_expired')).toBe('charge_window_expired');
    expect(chargeRejection('insufficient_credits')).toBe('insufficient_credits');
    expect(chargeRejection('invalid_amount')).toBe('insufficient_credits');
  });
});

describe('classifyFailure', () => {
  const ctx: FailureContext = { attempt: 2, workerId: 'w1', now: T0, max429Retries: 3, shuttingDown: false, leaseEnded: false };

  it('gives the generation back on shutdown while the lease still runs, whatever the error', () => {
    expect(classifyFailure(new Error('aborted'), { ...ctx, shuttingDown: true })).toEqual({ type: 'Release', attempt: 2, workerId: 'w1', reason: 'worker_shutdown' });
    expect(classifyFailure(new PipelineError('upstream_error', '500'), { ...ctx, shuttingDown: true }).type).toBe('Release');
  });

  it('schedules a retry for an upstream rate limit, no sooner than the minimum', () => {
    expect(classifyFailure(new PipelineError('rate_limited', '429', { retryAfterMs: 30_000 }), ctx)).toEqual({
      type: 'ScheduleRetry', attempt: 2, now: T0, retryAfterMs: 30_000, reason: '429', max429Retries: 3,
    });
    expect(classifyFailure(new PipelineError('rate_limited', '429', { retryAfterMs: 1 }), ctx)).toMatchObject({ retryAfterMs: MIN_RETRY_AFTER_MS });
    expect(classifyFailure(new PipelineError('rate_limited', '429'), ctx)).toMatchObject({ retryAfterMs: MIN_RETRY_AFTER_MS });
  });

  it("fails with the pipeline's own code and user message", () => {
    expect(classifyFailure(new PipelineError('moderation_blocked', 'flagged'), ctx)).toEqual({
      type: 'Fail', attempt: 2, code: 'moderation_blocked', message: 'flagged', userMessage: USER_MESSAGES.moderation_blocked,
    });
    // a pipeline error keeps its code even when the lease ended, or on shutdown once the lease ended
    expect(classifyFailure(new PipelineError('image_invalid', 'x'), { ...ctx, leaseEnded: true, shuttingDown: true })).toMatchObject({ type: 'Fail', code: 'image_invalid' });
  });

  it('fails as a timeout when another error ends the run at its lease, else as an internal error', () => {
    expect(classifyFailure(new Error('The operation was aborted'), { ...ctx, leaseEnded: true })).toEqual({
      type: 'Fail', attempt: 2, code: 'upstream_timeout', message: 'the run reached the end of its lease', userMessage: USER_MESSAGES.upstream_timeout,
    });
    expect(classifyFailure(new TypeError('boom'), ctx)).toEqual({ type: 'Fail', attempt: 2, code: 'internal_error', message: 'boom', userMessage: USER_MESSAGES.internal_error });
    expect(classifyFailure('a string', ctx)).toMatchObject({ code: 'internal_error', message: 'a string' });
  });
});

// The generation decider, given/when/then (ledger.md saga table: intake, charge, claim, run outcomes, recover, release).
import { describe, expect, it } from 'vitest';
import type { GenerationCompleted, GenerationEvent, GenerationRequested } from '../../src/domain/events.ts';
import {
  decideGeneration,
  evolveGeneration,
  initialGeneration,
  isClaimable,
  type GenerationCommand,
} from '../../src/domain/generation.ts';
import { decider } from '../support/decider.ts';

const generation = decider<ReturnType<typeof initialGeneration>, GenerationEvent, GenerationCommand>({
  initial: initialGeneration,
  evolve: (s, e) => evolveGeneration(s, e),
  decide: decideGeneration,
});

const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const iso = (ms: number) => new Date(ms).toISOString();
const LEASE = 60_000;

const request: GenerationRequested['data'] = {
  sessionId: 's1',
  taskId: 't1',
  channel: 'b2c',
  account: 'user:u1',
  imageUrls: ['https://example.test/a.jpg'],
  prompt: 'try on',
  requestId: 'req-1',
  payloadVersion: 1,
  requestedAt: iso(T0 - 1000),
  acceptedAt: iso(T0),
  cost: 1,
};
const completion: GenerationCompleted['data'] = {
  resultPath: 'generated/u1/s1.jpg',
  contentType: 'image/jpeg',
  provider: 'test',
  usage: null,
  costUsd: null,
  timings: { downloadMs: 1, resizeMs: 1, generateMs: 1, uploadMs: 1, totalMs: 4 },
};

const requested: GenerationEvent = { type: 'GenerationRequested', data: request };
const charged: GenerationEvent = { type: 'GenerationCharged', data: { amount: 1 } };
const started = (attempt: number, at = T0, workerId = 'w1'): GenerationEvent => ({
  type: 'GenerationStarted',
  data: { attempt, workerId, leaseUntil: iso(at + LEASE) },
});
const retry = (attempt: number, notBefore: number): GenerationEvent => ({
  type: 'RetryScheduled',
  data: { attempt, notBefore: iso(notBefore), reason: '429' },
});
const completed: GenerationEvent = { type: 'GenerationCompleted', data: completion };
const failed: GenerationEvent = { type: 'GenerationFailed', data: { code: 'upstream_error', message: '500', userMessage: 'sorry' } };
const rejected: GenerationEvent = { type: 'GenerationRejected', data: { code: 'insufficient_credits', message: 'no credits' } };

const claim = (now = T0, maxAttempts = 3): GenerationCommand => ({ type: 'Claim', workerId: 'w2', now, leaseMs: LEASE, maxAttempts });
const recover = (now: number, maxAttempts = 3): GenerationCommand => ({ type: 'Recover', workerId: 'w2', now, leaseMs: LEASE, maxAttempts });
const scheduleRetry = (attempt: number, now = T0, max429Retries = 2): GenerationCommand => ({
  type: 'ScheduleRetry',
  attempt,
  now,
  retryAfterMs: 10_000,
  reason: '429',
  max429Retries,
});

describe('Request (intake)', () => {
  it('records the request on a new stream', () => {
    generation.given().when({ type: 'Request', data: request }).then(requested);
  });

  it('a duplicate delivery of an existing generation changes nothing, at any stage', () => {
    for (const history of [[requested], [requested, charged], [requested, charged, started(1)], [requested, rejected]]) {
      generation.given(...history).when({ type: 'Request', data: { ...request, taskId: 'other' } }).thenNothing();
    }
  });
});

describe('MarkCharged', () => {
  it('moves a requested generation to charged', () => {
    generation.given(requested).when({ type: 'MarkCharged', amount: 1 }).then(charged);
  });

  it('is a no-op once charged (also later in the lifecycle)', () => {
    generation.given(requested, charged).when({ type: 'MarkCharged', amount: 1 }).thenNothing();
    generation.given(requested, charged, started(1)).when({ type: 'MarkCharged', amount: 1 }).thenNothing();
    generation.given(requested, charged, started(1), retry(1, T0)).when({ type: 'MarkCharged', amount: 1 }).thenNothing();
  });

  it('refuses a generation that does not exist', () => {
    generation.given().when({ type: 'MarkCharged', amount: 1 }).thenRejects('not_allowed');
  });
});

describe('Reject', () => {
  it('rejects a requested generation for lack of credit', () => {
    generation.given(requested).when({ type: 'Reject', code: 'insufficient_credits', message: 'no credits' }).then(rejected);
  });

  it('records an invalid request that never had a stream, with where it belongs', () => {
    generation
      .given()
      .when({ type: 'Reject', code: 'invalid_request', message: 'bad payload', channel: 'b2b', account: 'store:s1' })
      .then({ type: 'GenerationRejected', data: { code: 'invalid_request', message: 'bad payload', channel: 'b2b', account: 'store:s1' } });
  });

  it('refuses to reject a missing generation for credits, or one already charged', () => {
    generation.given().when({ type: 'Reject', code: 'insufficient_credits', message: 'x' }).thenRejects('not_allowed');
    generation.given(requested, charged).when({ type: 'Reject', code: 'insufficient_credits', message: 'x' }).thenRejects('not_allowed');
    generation.given(requested, charged, started(1)).when({ type: 'Reject', code: 'invalid_request', message: 'x' }).thenRejects('not_allowed');
  });
});

describe('Claim', () => {
  it('starts a charged generation with attempt 1 and a lease', () => {
    generation.given(requested, charged).when(claim(T0)).then({
      type: 'GenerationStarted',
      data: { attempt: 1, workerId: 'w2', leaseUntil: iso(T0 + LEASE) },
    });
  });

  it('refuses what is not charged yet, or already started', () => {
    generation.given(requested).when(claim()).thenRejects('not_allowed');
    generation.given().when(claim()).thenRejects('not_allowed');
    generation.given(requested, charged, started(1)).when(claim()).thenRejects('not_allowed');
  });

  it('refuses a retry before its notBefore and restarts it after', () => {
    const history = [requested, charged, started(1), retry(1, T0 + 10_000)];
    generation.given(...history).when(claim(T0 + 9_999)).thenRejects('not_due');
    generation.given(...history).when(claim(T0 + 10_000)).then({
      type: 'GenerationStarted',
      data: { attempt: 2, workerId: 'w2', leaseUntil: iso(T0 + 10_000 + LEASE) },
    });
    expect(isClaimable(generation.given(...history).state(), T0 + 10_000)).toBe(true);
  });

  it('fails as worker_lost when a due retry has no attempts left', () => {
    const d = generation.given(requested, charged, started(1), retry(1, T0), started(2), retry(2, T0)).when(claim(T0, 2)).decision;
    expect(d).toMatchObject({ ok: true, events: [{ type: 'GenerationFailed', data: { code: 'worker_lost' } }] });
  });
});

describe('Recover (lease expiry)', () => {
  const history = [requested, charged, started(1, T0, 'w1')];

  it('leaves a live lease alone', () => {
    generation.given(...history).when(recover(T0 + LEASE - 1)).thenRejects('lease_active');
  });

  it('re-claims an expired lease with a new attempt', () => {
    generation.given(...history).when(recover(T0 + LEASE)).then({
      type: 'GenerationStarted',
      data: { attempt: 2, workerId: 'w2', leaseUntil: iso(T0 + 2 * LEASE) },
    });
  });

  it('fails as worker_lost when the attempts are spent', () => {
    const d = generation.given(...history).when(recover(T0 + LEASE, 1)).decision;
    expect(d).toMatchObject({ ok: true, events: [{ type: 'GenerationFailed', data: { code: 'worker_lost' } }] });
  });

  it('has nothing to recover unless started', () => {
    generation.given(requested, charged).when(recover(T0 + LEASE)).thenRejects('not_allowed');
    generation.given(requested, charged, started(1), retry(1, T0)).when(recover(T0 + LEASE)).thenRejects('not_allowed');
  });
});

describe('run outcomes (Complete, Fail, ScheduleRetry, Release)', () => {
  const running = [requested, charged, started(1)];

  it('completes, fails or releases the attempt that holds the generation', () => {
    generation.given(...running).when({ type: 'Complete', attempt: 1, data: completion }).then(completed);
    generation
      .given(...running)
      .when({ type: 'Fail', attempt: 1, code: 'upstream_error', message: '500', userMessage: 'sorry' })
      .then(failed);
    generation
      .given(...running)
      .when({ type: 'Release', attempt: 1, workerId: 'w1', reason: 'worker_shutdown' })
      .then({ type: 'GenerationReleased', data: { attempt: 1, workerId: 'w1', reason: 'worker_shutdown' } });
  });

  it('discards the outcome of a stale attempt (the lease was recovered by another worker)', () => {
    const recovered = [...running, started(2, T0 + LEASE, 'w2')];
    generation.given(...recovered).when({ type: 'Complete', attempt: 1, data: completion }).thenRejects('stale_attempt');
    generation.given(...recovered).when({ type: 'Fail', attempt: 1, code: 'x', message: 'x', userMessage: 'x' }).thenRejects('stale_attempt');
    generation.given(...recovered).when(scheduleRetry(1)).thenRejects('stale_attempt');
    generation.given(...recovered).when({ type: 'Release', attempt: 1, workerId: 'w1', reason: 'x' }).thenRejects('stale_attempt');
  });

  it('refuses an outcome for a generation that is not running', () => {
    generation.given(requested, charged).when({ type: 'Complete', attempt: 0, data: completion }).thenRejects('stale_attempt');
    generation.given(requested, charged, started(1), retry(1, T0)).when({ type: 'Complete', attempt: 1, data: completion }).thenRejects('stale_attempt');
  });

  it('schedules a retry on 429 while the budget lasts, then fails as rate_limited', () => {
    generation.given(...running).when(scheduleRetry(1, T0)).then(retry(1, T0 + 10_000));
    const twice = [...running, retry(1, T0), started(2), retry(2, T0), started(3)];
    generation.given(...twice).when(scheduleRetry(3, T0, 3)).then(retry(3, T0 + 10_000));
    const d = generation.given(...twice).when(scheduleRetry(3, T0, 2)).decision;
    expect(d).toMatchObject({ ok: true, events: [{ type: 'GenerationFailed', data: { code: 'rate_limited' } }] });
  });

  it('a released generation is charged again and claimable at once', () => {
    const released: GenerationEvent = { type: 'GenerationReleased', data: { attempt: 1, workerId: 'w1', reason: 'worker_shutdown' } };
    const s = generation.given(...running, released).state();
    expect(s).toMatchObject({ status: 'charged', attempt: 1, leaseUntil: null });
    generation.given(...running, released).when(claim(T0)).then({
      type: 'GenerationStarted',
      data: { attempt: 2, workerId: 'w2', leaseUntil: iso(T0 + LEASE) },
    });
  });
});

describe('terminal states accept nothing', () => {
  const terminal: Record<string, GenerationEvent[]> = {
    completed: [requested, charged, started(1), completed],
    failed: [requested, charged, started(1), failed],
    rejected: [requested, rejected],
    'rejected invalid': [{ type: 'GenerationRejected', data: { code: 'invalid_request', message: 'x' } }],
  };
  const commands: GenerationCommand[] = [
    { type: 'Request', data: request },
    { type: 'MarkCharged', amount: 1 },
    { type: 'Reject', code: 'insufficient_credits', message: 'x' },
    { type: 'Reject', code: 'invalid_request', message: 'x' },
    claim(T0 + 10 * LEASE),
    recover(T0 + 10 * LEASE),
    { type: 'Complete', attempt: 1, data: completion },
    { type: 'Fail', attempt: 1, code: 'x', message: 'x', userMessage: 'x' },
    scheduleRetry(1),
    { type: 'Release', attempt: 1, workerId: 'w1', reason: 'x' },
  ];
  for (const [name, history] of Object.entries(terminal)) {
    it.each(commands.map((c) => [c.type, c] as const))(`${name}: %s is a no-op`, (_type, command) => {
      generation.given(...history).when(command).thenNothing();
    });
  }
});

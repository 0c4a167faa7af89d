// The generation lifecycle in one place: statusAfter names the status after every event, and the decider's fold, the
// pending index, the auditor and the session projection all follow it.
import { describe, expect, it } from 'vitest';
import type { GenerationEvent } from '../../src/domain/events.ts';
import {
  SESSION_STATUS,
  TERMINAL_SESSION_STATUSES,
  evolveGeneration,
  initialGeneration,
  isTerminalStatus,
  statusAfter,
} from '../../src/domain/generation.ts';

const events: GenerationEvent[] = [
  {
    type: 'GenerationRequested',
    data: {
      sessionId: 's', taskId: 't', channel: 'b2c', account: 'user:u', imageUrls: ['https://x.test/a.jpg'], prompt: 'p', requestId: 'r',
      payloadVersion: 1, requestedAt: '2026-01-01T00:00:00.000Z', acceptedAt: '2026-01-01T00:00:00.000Z', cost: 1,
    },
  },
  { type: 'GenerationCharged', data: { amount: 1 } },
  { type: 'GenerationStarted', data: { attempt: 1, workerId: 'w', leaseUntil: '2026-01-01T00:05:00.000Z' } },
  { type: 'RetryScheduled', data: { attempt: 1, notBefore: '2026-01-01T00:01:00.000Z', reason: '429' } },
  { type: 'GenerationReleased', data: { attempt: 1, workerId: 'w', reason: 'worker_shutdown' } },
  {
    type: 'GenerationCompleted',
    data: { resultPath: 'p', contentType: 'image/jpeg', provider: 't', usage: null, costUsd: null, timings: { downloadMs: 0, resizeMs: 0, generateMs: 0, uploadMs: 0, totalMs: 0 } },
  },
  { type: 'GenerationFailed', data: { code: 'upstream_error', message: 'x', userMessage: 'x' } },
  { type: 'GenerationRejected', data: { code: 'insufficient_credits', message: 'x' } },
];

describe('statusAfter', () => {
  it('names the status after every generation event (ledger.md, the saga table)', () => {
    expect(Object.fromEntries(events.map((e) => [e.type, statusAfter(e)]))).toEqual({
      GenerationRequested: 'requested',
      GenerationCharged: 'charged',
      GenerationStarted: 'started',
      RetryScheduled: 'retry_scheduled',
      GenerationReleased: 'charged',
      GenerationCompleted: 'completed',
      GenerationFailed: 'failed',
      GenerationRejected: 'rejected',
    });
  });

  it('is the status the decider folds to, from any state', () => {
    for (const before of events) {
      for (const e of events) {
        const state = evolveGeneration(evolveGeneration(initialGeneration(), before), e);
        expect(state.status, `${before.type} then ${e.type}`).toBe(statusAfter(e));
      }
    }
  });

  it('ends a generation only on completed, failed or rejected, which the web app shows as completed or failed', () => {
    expect(events.filter((e) => isTerminalStatus(statusAfter(e))).map((e) => e.type)).toEqual(['GenerationCompleted', 'GenerationFailed', 'GenerationRejected']);
    expect(TERMINAL_SESSION_STATUSES).toEqual(['completed', 'failed']);
    for (const e of events) expect(TERMINAL_SESSION_STATUSES.includes(SESSION_STATUS[statusAfter(e)])).toBe(isTerminalStatus(statusAfter(e)));
  });
});

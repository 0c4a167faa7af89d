// PendingIndex: which generations recovery must still drive. Regression for a hold taken after the generation was
// rejected (two workers racing on a short balance): once refunded, nothing is pending.
import { describe, expect, it } from 'vitest';
import { PendingIndex } from '../../src/app/pending.ts';
import type { RecordedEvent } from '../../src/app/ports/eventStore.ts';

let position = 0;
const recorded = (streamId: string, type: string, data: Record<string, unknown>, at = 0): RecordedEvent => ({
  id: `e${position}`,
  type,
  data,
  metadata: { requestId: 'r', causationId: 'c', correlationId: 'r', workerId: 'w', occurredAt: new Date(at).toISOString() },
  streamId,
  revision: 0,
  position: { commit: BigInt(position), prepare: BigInt(position++) },
  recordedAt: new Date(at),
});

const gen = 'generation-g1';
const acc = 'credit-account-user-u1';

describe('PendingIndex', () => {
  it('lists a requested generation, then drops it once terminal and settled', () => {
    const index = new PendingIndex(0);
    index.apply(recorded(gen, 'GenerationRequested', { sessionId: 'g1' }));
    expect(index.due(0)).toEqual(['g1']);
    index.apply(recorded(acc, 'CreditDeducted', { generationId: 'g1', amount: 1 }));
    index.apply(recorded(gen, 'GenerationCharged', { amount: 1 }));
    index.apply(recorded(gen, 'GenerationStarted', { attempt: 1, workerId: 'w', leaseUntil: new Date(60_000).toISOString() }));
    expect(index.due(0)).toEqual([]);
    expect(index.due(60_000)).toEqual(['g1']);
    index.apply(recorded(gen, 'GenerationCompleted', {}));
    expect(index.size).toBe(1); // the hold is still open
    index.apply(recorded(acc, 'CreditCaptured', { generationId: 'g1', amount: 1 }));
    expect(index.size).toBe(0);
  });

  it('keeps a hold taken after the rejection until it is refunded, then drops it', () => {
    const index = new PendingIndex(0);
    index.apply(recorded(gen, 'GenerationRequested', { sessionId: 'g1' }));
    index.apply(recorded(gen, 'GenerationRejected', { code: 'insufficient_credits', message: 'x' }));
    expect(index.size).toBe(0);
    index.apply(recorded(acc, 'CreditDeducted', { generationId: 'g1', amount: 1 }));
    expect(index.due(0, true)).toEqual(['g1']);
    index.apply(recorded(acc, 'CreditRefunded', { generationId: 'g1', amount: 1, reason: 'generation_rejected' }));
    expect(index.size).toBe(0);
    expect(index.due(Number.MAX_SAFE_INTEGER, true)).toEqual([]);
  });
});

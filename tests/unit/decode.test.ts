// Stored events are decoded, never cast: one decoder per stream type with an upcast table. The repository, the pending
// index, the projections, verify, the statement and the HTTP views all read through them.
import { describe, expect, it } from 'vitest';
import { openSqliteEventStore } from '../../src/adapters/eventstore/sqlite/sqliteEventStore.ts';
import { ACCOUNT, AggregateRepository } from '../../src/app/aggregates.ts';
import { PendingIndex } from '../../src/app/pending.ts';
import { verifyLedger } from '../../src/app/verify.ts';
import {
  UndecodableEventError,
  decodeAccountEvent,
  decodeGenerationEvent,
  decodeLedgerEvent,
  eventDecoder,
  type StoredEvent,
  type Upcaster,
} from '../../src/domain/decode.ts';
import type { CreditsGranted } from '../../src/domain/events.ts';
import { accountStream, generationStream } from '../../src/domain/streams.ts';

const meta = { requestId: 'r', causationId: 'c', correlationId: 'r', workerId: 'w', occurredAt: '2026-01-01T00:00:00.000Z' };

describe('decodeAccountEvent / decodeGenerationEvent', () => {
  it('returns the current events as they are', () => {
    const granted = { type: 'CreditsGranted', data: { amount: 5, reason: 'purchase', reference: 'o-1' } };
    expect(decodeAccountEvent(granted)).toEqual(granted);
    const charged = { type: 'GenerationCharged', data: { amount: 1 } };
    expect(decodeGenerationEvent(charged)).toEqual(charged);
  });

  it('refuses another stream type, an unknown type, data that is not an object and an amount that is not whole credits', () => {
    expect(() => decodeGenerationEvent({ type: 'CreditsGranted', data: { amount: 1, reason: 'purchase', reference: 'x' } })).toThrow(/not a generation event/);
    expect(() => decodeAccountEvent({ type: 'GenerationCharged', data: { amount: 1 } })).toThrow(/not a credit-account event/);
    expect(() => decodeAccountEvent({ type: 'CreditsGifted', data: { amount: 1 } })).toThrow(UndecodableEventError);
    expect(() => decodeGenerationEvent({ type: 'GenerationCharged', data: null })).toThrow(/data is not an object/);
    for (const amount of [0, -1, 1.5, '2', undefined]) {
      expect(() => decodeAccountEvent({ type: 'CreditDeducted', data: { generationId: 'g', amount, requestId: 'r' } })).toThrow(/not a positive whole number/);
    }
  });

  it('routes by stream type and leaves other streams alone', () => {
    expect(decodeLedgerEvent(accountStream('user:u1'), { type: 'CreditsGranted', data: { amount: 1, reason: 'purchase', reference: 'x' } })).toMatchObject({
      stream: 'account',
      account: { kind: 'user', id: 'u1' },
    });
    expect(decodeLedgerEvent(generationStream('s1'), { type: 'GenerationCharged', data: { amount: 1 } })).toMatchObject({ stream: 'generation', sessionId: 's1' });
    expect(decodeLedgerEvent('$settings', { type: '$metadata', data: {} })).toBeNull();
  });
});

describe('upcasting', () => {
  // An older shape, as a future change would leave it in the log: `CreditsGiven {credits}` became
  // `CreditsGranted {amount, reason, reference}`, and grants once had no reference.
  const upcasters: Record<string, Upcaster> = {
    CreditsGiven: (s) => {
      const d = s.data as { credits: number; why: string };
      return { type: 'CreditsGranted', data: { amount: d.credits, reason: d.why } };
    },
    CreditsGranted: (s) => {
      const d = s.data as { reference?: string };
      return d.reference === undefined ? { type: s.type, data: { ...d, reference: 'legacy' } } : s;
    },
  };
  const decode = eventDecoder<CreditsGranted>('credit-account', { CreditsGranted: true }, upcasters);

  it('chains upcasters until the shape is current, then decodes', () => {
    expect(decode({ type: 'CreditsGiven', data: { credits: 3, why: 'purchase' } })).toEqual({
      type: 'CreditsGranted',
      data: { amount: 3, reason: 'purchase', reference: 'legacy' },
    });
    const current: StoredEvent = { type: 'CreditsGranted', data: { amount: 1, reason: 'purchase', reference: 'o' } };
    expect(decode(current)).toEqual(current);
  });

  it('refuses upcasters that never settle', () => {
    const loop = eventDecoder<CreditsGranted>('credit-account', { CreditsGranted: true }, {
      A: (s) => ({ type: 'B', data: s.data }),
      B: (s) => ({ type: 'A', data: s.data }),
    });
    expect(() => loop({ type: 'A', data: {} })).toThrow(/do not converge/);
  });
});

describe('readers of the log decode', () => {
  it('an event the decoder refuses stops the fold, the pending index and verify reports it, instead of being folded as something else', async () => {
    const store = openSqliteEventStore({ path: ':memory:' });
    try {
      const stream = accountStream('user:u1');
      await store.append(stream, [{ id: '00000000-0000-5000-8000-000000000001', type: 'CreditsGranted', data: { amount: 5, reason: 'purchase', reference: 'o-1' }, metadata: meta }], 'no_stream');
      await store.append(stream, [{ id: '00000000-0000-5000-8000-000000000002', type: 'CreditsGifted', data: { amount: 5 }, metadata: meta }], 0);
      await expect(new AggregateRepository(store).load(ACCOUNT, stream)).rejects.toThrow(/CreditsGifted is not a credit-account event/);
      await expect(PendingIndex.fromLog(store)).rejects.toThrow(/credit-account-user-u1@1/);
      const { violations } = await verifyLedger(store);
      expect(violations).toEqual([expect.objectContaining({ invariant: 1, subject: stream, message: expect.stringMatching(/undecodable event: .*CreditsGifted/) })]);
    } finally {
      await store.close();
    }
  });
});

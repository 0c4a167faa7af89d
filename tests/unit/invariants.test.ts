// The LedgerAuditor: every kind of violation of invariants 1-3 is detected, and a clean history has none.
import { describe, expect, it } from 'vitest';
import type { LedgerEvent } from '../../src/domain/events.ts';
import { LedgerAuditor, type Violation } from '../../src/domain/invariants.ts';
import { accountStream, generationStream, transferStream } from '../../src/domain/streams.ts';

const A = 'user:alice';
const B = 'user:bob';
const acc = (account: string) => accountStream(account);
const gen = (id: string) => generationStream(id);

type Entry = [stream: string, event: LedgerEvent, at?: number];

const requested = (id: string, account = A): Entry => [
  gen(id),
  {
    type: 'GenerationRequested',
    data: {
      sessionId: id, taskId: id, channel: 'b2c', account, imageUrls: [], prompt: 'p', requestId: `r-${id}`,
      payloadVersion: 1, requestedAt: '2026-01-01T00:00:00Z', acceptedAt: '2026-01-01T00:00:00Z', cost: 1,
    },
  },
];
const grant = (account: string, amount: number): Entry => [acc(account), { type: 'CreditsGranted', data: { amount, reason: 'purchase', reference: `o-${amount}` } }];
const revoke = (account: string, amount: number): Entry => [acc(account), { type: 'CreditsRevoked', data: { amount, reason: 'x', reference: `r-${amount}` } }];
const deduct = (id: string, account = A): Entry => [acc(account), { type: 'CreditDeducted', data: { generationId: id, amount: 1, requestId: `r-${id}` } }];
const capture = (id: string, account = A): Entry => [acc(account), { type: 'CreditCaptured', data: { generationId: id, amount: 1 } }];
const refund = (id: string, account = A): Entry => [acc(account), { type: 'CreditRefunded', data: { generationId: id, amount: 1, reason: 'x' } }];
const charged = (id: string): Entry => [gen(id), { type: 'GenerationCharged', data: { amount: 1 } }];
const started = (id: string): Entry => [gen(id), { type: 'GenerationStarted', data: { attempt: 1, workerId: 'w', leaseUntil: '2026-01-01T00:01:00Z' } }];
const completed = (id: string): Entry => [
  gen(id),
  {
    type: 'GenerationCompleted',
    data: { resultPath: 'p', contentType: 'image/jpeg', provider: 't', usage: null, costUsd: null, timings: { downloadMs: 0, resizeMs: 0, generateMs: 0, uploadMs: 0, totalMs: 0 } },
  },
];
const failed = (id: string): Entry => [gen(id), { type: 'GenerationFailed', data: { code: 'upstream_error', message: 'x', userMessage: 'x' } }];
const rejected = (id: string): Entry => [gen(id), { type: 'GenerationRejected', data: { code: 'insufficient_credits', message: 'x' } }];

function audit(entries: Entry[], quiescent = false, settledBefore?: number): Violation[] {
  const a = new LedgerAuditor();
  for (const [stream, event, at] of entries) a.add(stream, event, at ?? 0);
  return a.report(quiescent, settledBefore).violations;
}

const expectOne = (violations: Violation[], invariant: number, message: RegExp) => {
  expect(violations, JSON.stringify(violations)).toEqual(expect.arrayContaining([expect.objectContaining({ invariant, message: expect.stringMatching(message) })]));
};

const completedCycle = (id: string) => [requested(id), deduct(id), charged(id), started(id), completed(id), capture(id)];
const failedCycle = (id: string) => [requested(id), deduct(id), charged(id), started(id), failed(id), refund(id)];

describe('LedgerAuditor', () => {
  it('finds nothing wrong in a clean, settled history', () => {
    const entries = [grant(A, 3), ...completedCycle('g1'), ...failedCycle('g2'), requested('g3'), rejected('g3'), revoke(A, 1)];
    expect(audit(entries, true)).toEqual([]);
    const a = new LedgerAuditor();
    for (const [s, e] of entries) a.add(s, e);
    expect(a.report(true).summary).toMatchObject({ granted: 3, revoked: 1, deducted: 2, captured: 1, refunded: 1, openHolds: 0, generations: 3 });
  });

  describe('invariant 1: balance never below zero', () => {
    it('detects a revocation or a deduction below zero', () => {
      expectOne(audit([grant(A, 1), revoke(A, 2)]), 1, /balance -1 after CreditsRevoked/);
      expectOne(audit([requested('g1'), deduct('g1')]), 1, /balance -1 after CreditDeducted/);
    });

    it('detects an account event outside an account stream', () => {
      expectOne(audit([[gen('g1'), { type: 'CreditsGranted', data: { amount: 1, reason: 'purchase', reference: 'x' } }]]), 1, /outside a credit-account stream/);
    });
  });

  describe('invariant 2: one deduction, at most one settlement, after it and after the end', () => {
    it('detects a second deduction for one generation', () => {
      expectOne(audit([grant(A, 2), requested('g1'), deduct('g1'), deduct('g1')]), 2, /deducted 2 times/);
    });

    it('detects deductions from two accounts, and from an account the generation does not belong to', () => {
      const v = audit([grant(A, 1), grant(B, 1), requested('g1', A), deduct('g1', A), deduct('g1', B)]);
      expectOne(v, 2, /deducted from user:bob and user:alice/);
      expectOne(v, 2, /belongs to user:alice/);
    });

    it('detects a settlement without a deduction', () => {
      expectOne(audit([requested('g1'), completed('g1'), capture('g1')]), 2, /CreditCaptured without a deduction/);
      expectOne(audit([requested('g1'), failed('g1'), refund('g1')]), 2, /CreditRefunded without a deduction/);
    });

    it('detects a second settlement', () => {
      expectOne(audit([grant(A, 1), ...completedCycle('g1'), capture('g1')]), 2, /settled 2 times/);
      expectOne(audit([grant(A, 1), ...failedCycle('g1'), capture('g1')]), 2, /settled 2 times/);
    });

    it('detects a settlement before the generation is terminal (the broken-saga case)', () => {
      expectOne(audit([grant(A, 1), requested('g1'), deduct('g1'), charged('g1'), capture('g1')]), 2, /before the generation was terminal/);
      expectOne(audit([grant(A, 1), requested('g1'), deduct('g1'), charged('g1'), started('g1'), refund('g1')]), 2, /before the generation was terminal/);
    });

    it('detects the settlement of the wrong kind', () => {
      expectOne(audit([grant(A, 1), requested('g1'), deduct('g1'), charged('g1'), started('g1'), failed('g1'), capture('g1')]), 2, /captured although the generation failed/);
      expectOne(audit([grant(A, 1), requested('g1'), deduct('g1'), charged('g1'), started('g1'), completed('g1'), refund('g1')]), 2, /refunded although the generation completed/);
    });

    it('detects a settlement on another account than the hold', () => {
      expectOne(audit([grant(A, 1), grant(B, 1), requested('g1'), deduct('g1'), charged('g1'), started('g1'), failed('g1'), refund('g1', B)]), 2, /on user:bob, held on user:alice/);
    });

    it('detects an event after the generation was terminal', () => {
      expectOne(audit([requested('g1'), rejected('g1'), charged('g1')]), 2, /GenerationCharged after the generation was rejected/);
    });
  });

  describe('invariant 3: after recovery nothing is held and every outcome is settled', () => {
    it('detects an open hold', () => {
      expectOne(audit([grant(A, 1), requested('g1'), deduct('g1'), charged('g1')], true), 3, /hold of user:alice still open/);
      // a hold left by a worker that lost the race to a rejection
      expectOne(audit([grant(A, 1), requested('g1'), rejected('g1'), deduct('g1')], true), 3, /still open \(generation rejected\)/);
    });

    it('detects a completion that was not captured', () => {
      expectOne(audit([requested('g1'), completed('g1')], true), 3, /completed but not captured/);
    });

    it('detects a failure or rejection that kept a charge', () => {
      expectOne(audit([grant(A, 1), requested('g1'), deduct('g1'), failed('g1'), capture('g1')], true), 3, /failed but a charge was kept/);
    });

    it('detects deducted != captured + refunded', () => {
      expectOne(audit([grant(A, 1), requested('g1'), deduct('g1')], true), 3, /deducted 1 != captured 0 \+ refunded 0/);
    });

    it('on a live ledger applies only to generations idle since before the cut-off, and not without quiescence', () => {
      const at = ([stream, event]: Entry, t: number): Entry => [stream, event, t];
      const entries: Entry[] = [grant(A, 2), at(requested('old'), 100), at(deduct('old'), 100), at(requested('new'), 5000), at(deduct('new'), 5000)];
      const v = audit(entries, false, 1000);
      expect(v.map((x) => x.subject)).toEqual(['old']);
      expect(audit(entries, false)).toEqual([]);
    });
  });

  describe('where a violation shows', () => {
    // Entries with revisions per stream and ids, as verify passes them from the recorded events.
    function located(entries: Entry[], quiescent = true): Violation[] {
      const a = new LedgerAuditor();
      const revisions = new Map<string, number>();
      for (const [stream, event] of entries) {
        const revision = (revisions.get(stream) ?? -1) + 1;
        revisions.set(stream, revision);
        a.add(stream, event, 0, { id: `${stream}#${revision}`, revision });
      }
      return a.report(quiescent).violations;
    }

    it('names the stream and event that broke an invariant while folding', () => {
      const [v] = located([grant(A, 1), revoke(A, 2)]);
      expect(v).toMatchObject({ invariant: 1, stream: acc(A), revision: 1, event_id: `${acc(A)}#1`, event_type: 'CreditsRevoked' });
      const [w] = located([grant(A, 2), requested('g1'), deduct('g1'), deduct('g1')]).filter((x) => x.invariant === 2);
      expect(w).toMatchObject({ stream: acc(A), revision: 2, event_type: 'CreditDeducted' });
    });

    it('points an open hold at its deduction and an unsettled outcome at the generation\'s last event', () => {
      const hold = located([grant(A, 1), requested('g1'), deduct('g1'), charged('g1')]).find((x) => /still open/.test(x.message));
      expect(hold).toMatchObject({ stream: acc(A), revision: 1, event_type: 'CreditDeducted' });
      const uncaptured = located([requested('g2'), completed('g2')]).find((x) => /not captured/.test(x.message));
      expect(uncaptured).toMatchObject({ stream: gen('g2'), revision: 1, event_type: 'GenerationCompleted', event_id: `${gen('g2')}#1` });
    });
  });
  describe('transfers: both legs or neither (a Shopify purchase, store -> shopper)', () => {
    const S = 'store:s1';
    const P = 'shopper:s1.' + 'a'.repeat(32);
    const tr = (id: string, e: LedgerEvent): Entry => [transferStream(id), e];
    const asked = (id: string, amount = 2) => tr(id, { type: 'TransferRequested', data: { transferId: id, from: S, to: P, amount } });
    const paid = (id: string, amount = 2): Entry => [acc(S), { type: 'CreditsTransferredOut', data: { amount, transferId: id, to: P } }];
    const received = (id: string, amount = 2, to = P): Entry => [acc(to), { type: 'CreditsGranted', data: { amount, reason: 'transfer_in', reference: `transfer:${id}` } }];
    const done = (id: string, amount = 2) => tr(id, { type: 'TransferCompleted', data: { amount } });
    const refused = (id: string) => tr(id, { type: 'TransferRejected', data: { code: 'insufficient_credits', message: 'm' } });

    it('finds nothing wrong in completed and rejected transfers, and counts them', () => {
      const entries = [grant(S, 5), asked('o1'), paid('o1'), received('o1'), done('o1'), asked('o2', 9), refused('o2')];
      expect(audit(entries, true)).toEqual([]);
      const a = new LedgerAuditor();
      for (const [st, e] of entries) a.add(st, e);
      expect(a.report(true).summary).toMatchObject({ transferred: 2, transfers: { completed: 1, rejected: 1 } });
    });

    it('detects a minted credit: a receiving leg without its paying leg, or of another amount', () => {
      expectOne(audit([grant(S, 5), asked('o1'), received('o1')]), 1, /receiving leg of 2 after paying legs of 0/);
      expectOne(audit([grant(S, 5), asked('o1'), paid('o1'), received('o1', 3)]), 1, /receiving leg of 3 after paying legs of 2/);
      expectOne(audit([grant(S, 5), asked('o1'), paid('o1'), received('o1', 2, 'user:x')]), 1, /receiving leg on user:x/);
    });

    it('detects a leg without a request, a completion without both legs, a rejection after a leg', () => {
      expectOne(audit([grant(S, 5), paid('o1')]), 1, /paying leg of a transfer that is none/);
      expectOne(audit([grant(S, 5), asked('o1'), paid('o1'), done('o1')]), 1, /completed with 2 paid and 0 received/);
      expectOne(audit([grant(S, 5), asked('o1'), paid('o1'), refused('o1')]), 1, /rejected after 2 paid/);
    });

    it('with nothing in flight, names a transfer left half done (lost credits) or unfinished', () => {
      expectOne(audit([grant(S, 5), asked('o1'), paid('o1')], true), 1, /transfer requested with 2 paid and 0 received/);
      expectOne(audit([grant(S, 5), asked('o1')], true), 3, /transfer requested with 0 paid and 0 received/);
      expect(audit([grant(S, 5), asked('o1'), paid('o1')], false)).toEqual([]); // live: it may be finishing right now
    });
  });
});

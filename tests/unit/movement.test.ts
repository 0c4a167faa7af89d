// Credit arithmetic in one place: accountMovement names the movement of every account event, MOVEMENT_EFFECT what it
// does to each quantity; the decider's totals, the auditor and the read model's totals are all derived from them.
import { describe, expect, it } from 'vitest';
import { evolveAccount, initialAccount } from '../../src/domain/account.ts';
import type { AccountEvent } from '../../src/domain/events.ts';
import { LedgerAuditor } from '../../src/domain/invariants.ts';
import { MOVEMENT_EFFECT, MOVEMENT_KINDS, accountMovement, change } from '../../src/domain/movement.ts';
import { accountStream } from '../../src/domain/streams.ts';

const granted: AccountEvent = { type: 'CreditsGranted', data: { amount: 10, reason: 'purchase', reference: 'o-1' } };
const revoked: AccountEvent = { type: 'CreditsRevoked', data: { amount: 2, reason: 'duplicate', reference: 'r-1' } };
const deducted = (g: string, amount = 3): AccountEvent => ({ type: 'CreditDeducted', data: { generationId: g, amount, requestId: `req-${g}` } });
const captured = (g: string, amount = 3): AccountEvent => ({ type: 'CreditCaptured', data: { generationId: g, amount } });
const refunded = (g: string, amount = 3): AccountEvent => ({ type: 'CreditRefunded', data: { generationId: g, amount, reason: 'generation_failed' } });

describe('accountMovement', () => {
  it('names the kind, amount and references of every account event', () => {
    expect([granted, revoked, deducted('g1'), captured('g1'), refunded('g2')].map(accountMovement)).toEqual([
      { kind: 'granted', credits: 10, generationId: null, reference: 'o-1', reason: 'purchase', requestId: null },
      { kind: 'revoked', credits: 2, generationId: null, reference: 'r-1', reason: 'duplicate', requestId: null },
      { kind: 'deducted', credits: 3, generationId: 'g1', reference: null, reason: null, requestId: 'req-g1' },
      { kind: 'captured', credits: 3, generationId: 'g1', reference: null, reason: null, requestId: null },
      { kind: 'refunded', credits: 3, generationId: 'g2', reference: null, reason: 'generation_failed', requestId: null },
    ]);
  });

  it('moves the balance as invariant 1 says, holds as ledger.md says, and the platform totals net of revocations', () => {
    // per credit of each kind: balance = granted - revoked - deducted + refunded - transferred out;
    // held = deducted - captured - refunded; spent = captured + transferred out (the platform's shopper purchase)
    const sign = (kind: string, plus: string[], minus: string[]) => (plus.includes(kind) ? 1 : minus.includes(kind) ? -1 : 0);
    for (const kind of MOVEMENT_KINDS) {
      expect(MOVEMENT_EFFECT[kind], kind).toEqual({
        balance: sign(kind, ['granted', 'refunded'], ['revoked', 'deducted', 'transferred']),
        held: sign(kind, ['deducted'], ['captured', 'refunded']),
        earned: sign(kind, ['granted'], ['revoked']),
        spent: sign(kind, ['captured', 'transferred'], []),
      });
    }
  });

  it('gives the decider, the auditor and the derived quantities the same numbers', () => {
    const history = [granted, deducted('g1'), captured('g1'), deducted('g2'), revoked, refunded('g2'), deducted('g3')];
    const state = history.reduce((s, e) => evolveAccount(s, e, 0), initialAccount());
    const sum = (q: 'balance' | 'held' | 'earned' | 'spent') => history.map(accountMovement).reduce((a, m) => a + change(m, q), 0);
    expect(state).toMatchObject({ balance: 2, granted: 10, revoked: 2, deducted: 9, captured: 3, refunded: 3 });
    expect(sum('balance')).toBe(state.balance);
    expect(sum('balance')).toBe(state.granted - state.revoked - state.deducted + state.refunded);
    expect(sum('held')).toBe(Object.values(state.open).reduce((a, n) => a + n, 0));
    expect(sum('earned')).toBe(state.granted - state.revoked);
    expect(sum('spent')).toBe(state.captured);
    const auditor = new LedgerAuditor();
    for (const e of history) auditor.add(accountStream('user:u1'), e);
    expect(auditor.report(false).summary).toMatchObject({ granted: 10, revoked: 2, deducted: 9, captured: 3, refunded: 3 });
  });
});

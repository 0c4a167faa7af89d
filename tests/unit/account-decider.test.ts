// The credit account decider, given/when/then (ledger.md: account events, charge window, never below zero).
import { describe, expect, it } from 'vitest';
import {
  CHARGE_WINDOW_MS,
  MAX_CREDITS,
  SETTLED_RETENTION_MS,
  decideAccount,
  evolveAccount,
  initialAccount,
  type AccountCommand,
} from '../../src/domain/account.ts';
import type { AccountEvent, GrantReason } from '../../src/domain/events.ts';
import { decider } from '../support/decider.ts';

const account = decider<ReturnType<typeof initialAccount>, AccountEvent, AccountCommand>({
  initial: initialAccount,
  evolve: evolveAccount,
  decide: decideAccount,
});

const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const granted = (amount: number, reference = `order-${amount}`): AccountEvent => ({
  type: 'CreditsGranted',
  data: { amount, reason: 'purchase', reference },
});
const deducted = (generationId: string, amount = 1): AccountEvent => ({
  type: 'CreditDeducted',
  data: { generationId, amount, requestId: `req-${generationId}` },
});
const captured = (generationId: string, amount = 1): AccountEvent => ({ type: 'CreditCaptured', data: { generationId, amount } });
const refunded = (generationId: string, amount = 1): AccountEvent => ({
  type: 'CreditRefunded',
  data: { generationId, amount, reason: 'generation_failed' },
});
const deduct = (generationId: string, amount = 1, now = T0, acceptedAt = T0): AccountCommand => ({
  type: 'Deduct',
  generationId,
  amount,
  requestId: `req-${generationId}`,
  acceptedAt: new Date(acceptedAt).toISOString(),
  now,
});

describe('Grant', () => {
  it('grants a positive amount with a reason and a reference', () => {
    account.given().when({ type: 'Grant', amount: 5, reason: 'signup_bonus', reference: 'welcome' }).then({
      type: 'CreditsGranted',
      data: { amount: 5, reason: 'signup_bonus', reference: 'welcome' },
    });
  });

  it('is idempotent on the reference when the repeat has the same amount', () => {
    account.given(granted(5, 'order-1')).when({ type: 'Grant', amount: 5, reason: 'purchase', reference: 'order-1' }).thenNothing();
  });

  it('refuses a reference already used with another amount, and says which (a caller bug surfaces)', () => {
    const d = account.given(granted(5, 'order-1')).when({ type: 'Grant', amount: 9, reason: 'purchase', reference: 'order-1' });
    d.thenRejects('reference_conflict');
    expect(!d.decision.ok && d.decision.message).toBe('reference "order-1" was already used for a grant of 5 credits, not 9');
  });

  it('applies a grant with another reference', () => {
    account
      .given(granted(5, 'order-1'))
      .when({ type: 'Grant', amount: 2, reason: 'purchase', reference: 'order-2' })
      .then({ type: 'CreditsGranted', data: { amount: 2, reason: 'purchase', reference: 'order-2' } });
  });

  it.each([0, -1, 1.5, Number.NaN, MAX_CREDITS + 1, 3_000_000_000, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER + 1])('rejects the amount %s', (amount) => {
    account.given().when({ type: 'Grant', amount, reason: 'purchase', reference: 'r' }).thenRejects('invalid_amount');
  });

  it('bounds the credits granted to an account by MAX_CREDITS (2^31 - 1), so every balance and total stays exact', () => {
    expect(MAX_CREDITS).toBe(2 ** 31 - 1);
    account.given().when({ type: 'Grant', amount: MAX_CREDITS, reason: 'purchase', reference: 'max' }).then(granted(MAX_CREDITS, 'max'));
    const full = account.given(granted(MAX_CREDITS, 'max'));
    full.when({ type: 'Grant', amount: 1, reason: 'purchase', reference: 'one-more' }).thenRejects('credit_bound_exceeded');
    // The probe's 2^53 case can no longer arise: 9007199254740991 + 9007199254740991 + 1 is refused at the first step.
    account.given().when({ type: 'Grant', amount: Number.MAX_SAFE_INTEGER, reason: 'purchase', reference: 'a' }).thenRejects('invalid_amount');
    account.given(granted(MAX_CREDITS - 1, 'a')).when({ type: 'Grant', amount: 1, reason: 'purchase', reference: 'b' }).then(granted(1, 'b'));
  });

  it('bounds the published totals too: spending the balance does not make room for more grants', () => {
    // total_earned (granted - revoked) and total_spent (captured) are published as integers; captured <= granted - revoked.
    const spent = account.given(granted(MAX_CREDITS - 1, 'a'), deducted('g1', MAX_CREDITS - 1), captured('g1', MAX_CREDITS - 1));
    expect(spent.state().balance).toBe(0);
    spent.when({ type: 'Grant', amount: 2, reason: 'purchase', reference: 'b' }).thenRejects('credit_bound_exceeded');
    spent.when({ type: 'Grant', amount: 1, reason: 'purchase', reference: 'b' }).then(granted(1, 'b'));
    // a revocation lowers the net grant, and so makes room again
    account
      .given(granted(MAX_CREDITS, 'a'), { type: 'CreditsRevoked', data: { amount: 10, reason: 'x', reference: 'r' } })
      .when({ type: 'Grant', amount: 10, reason: 'purchase', reference: 'b' })
      .then(granted(10, 'b'));
    // a replay of an applied grant is still a replay at the bound
    account.given(granted(MAX_CREDITS, 'max')).when({ type: 'Grant', amount: MAX_CREDITS, reason: 'purchase', reference: 'max' }).thenNothing();
  });

  it('rejects an unknown reason and a blank reference', () => {
    account.given().when({ type: 'Grant', amount: 1, reason: 'gift' as GrantReason, reference: 'r' }).thenRejects('invalid_reason');
    account.given().when({ type: 'Grant', amount: 1, reason: 'purchase', reference: '  ' }).thenRejects('invalid_reference');
  });

  it('a grant reference does not block a revocation with the same reference', () => {
    account
      .given(granted(5, 'x'))
      .when({ type: 'Revoke', amount: 1, reason: 'correction', reference: 'x' })
      .then({ type: 'CreditsRevoked', data: { amount: 1, reason: 'correction', reference: 'x' } });
  });
});

describe('Revoke', () => {
  it('revokes up to the whole balance', () => {
    account
      .given(granted(5))
      .when({ type: 'Revoke', amount: 5, reason: 'chargeback', reference: 'cb-1' })
      .then({ type: 'CreditsRevoked', data: { amount: 5, reason: 'chargeback', reference: 'cb-1' } });
  });

  it('never goes below zero', () => {
    account.given(granted(5)).when({ type: 'Revoke', amount: 6, reason: 'chargeback', reference: 'cb-1' }).thenRejects('insufficient_credits');
    account.given().when({ type: 'Revoke', amount: 1, reason: 'chargeback', reference: 'cb-1' }).thenRejects('insufficient_credits');
  });

  it('cannot take credits that are held for a generation', () => {
    account.given(granted(3), deducted('g1', 2)).when({ type: 'Revoke', amount: 2, reason: 'x', reference: 'cb' }).thenRejects('insufficient_credits');
    account
      .given(granted(3), deducted('g1', 2))
      .when({ type: 'Revoke', amount: 1, reason: 'x', reference: 'cb' })
      .then({ type: 'CreditsRevoked', data: { amount: 1, reason: 'x', reference: 'cb' } });
  });

  it('is idempotent on the reference, even when the balance no longer covers it', () => {
    const revoked: AccountEvent = { type: 'CreditsRevoked', data: { amount: 5, reason: 'cb', reference: 'cb-1' } };
    account.given(granted(5), revoked).when({ type: 'Revoke', amount: 5, reason: 'cb', reference: 'cb-1' }).thenNothing();
  });

  it('refuses a revocation reference already used with another amount', () => {
    const revoked: AccountEvent = { type: 'CreditsRevoked', data: { amount: 2, reason: 'cb', reference: 'cb-1' } };
    account.given(granted(5), revoked).when({ type: 'Revoke', amount: 3, reason: 'cb', reference: 'cb-1' }).thenRejects('reference_conflict');
  });

  it('rejects a bad amount and a blank reference', () => {
    account.given(granted(5)).when({ type: 'Revoke', amount: 0, reason: 'x', reference: 'r' }).thenRejects('invalid_amount');
    account.given(granted(5)).when({ type: 'Revoke', amount: MAX_CREDITS + 1, reason: 'x', reference: 'r' }).thenRejects('invalid_amount');
    account.given(granted(5)).when({ type: 'Revoke', amount: 1, reason: 'x', reference: '' }).thenRejects('invalid_reference');
  });
});

describe('Deduct', () => {
  it('holds the cost when the balance covers it', () => {
    account.given(granted(2)).when(deduct('g1', 2)).then(deducted('g1', 2));
  });

  it('refuses when the balance is below the cost', () => {
    account.given(granted(1)).when(deduct('g1', 2)).thenRejects('insufficient_credits');
    account.given().when(deduct('g1', 1)).thenRejects('insufficient_credits');
  });

  it('rejects a non-positive cost and one beyond MAX_CREDITS', () => {
    account.given(granted(2)).when(deduct('g1', 0)).thenRejects('invalid_amount');
    account.given(granted(2)).when(deduct('g1', MAX_CREDITS + 1)).thenRejects('invalid_amount');
  });

  it('does nothing when the generation is already held (a re-driven charge)', () => {
    // Even with no balance left: the hold is the charge.
    account.given(granted(1), deducted('g1', 1)).when(deduct('g1', 1)).thenNothing();
  });

  it('does nothing for a generation settled recently: a worker with a stale read cannot charge twice', () => {
    for (const settle of [captured, refunded]) {
      account
        .given({ event: granted(5), at: T0 }, { event: deducted('g1'), at: T0 }, { event: settle('g1'), at: T0 + 1000 })
        .when(deduct('g1', 1, T0 + 2000))
        .thenNothing();
    }
  });

  it('refuses a generation accepted longer ago than the charge window', () => {
    account.given(granted(5)).when(deduct('g1', 1, T0 + CHARGE_WINDOW_MS + 1, T0)).thenRejects('charge_window_expired');
  });

  it('accepts a generation accepted exactly at the edge of the window', () => {
    account.given(granted(5)).when(deduct('g1', 1, T0 + CHARGE_WINDOW_MS, T0)).then(deducted('g1', 1));
  });

  it('remembers settled ids for longer than the window, so a late stale deduction is refused by one or the other', () => {
    const history = [
      { event: granted(5), at: T0 },
      { event: deducted('g1'), at: T0 },
      { event: captured('g1'), at: T0 + 10 },
    ];
    // Inside the retention the id is remembered ...
    account.given(...history, { event: granted(1, 'late'), at: T0 + SETTLED_RETENTION_MS }).when(deduct('g1', 1, T0 + 20)).thenNothing();
    // ... after it the id is pruned, and by then the window has long closed.
    const pruned = account.given(...history, { event: granted(1, 'later'), at: T0 + 10 + SETTLED_RETENTION_MS + 1 });
    expect(pruned.state().recentlySettled).toEqual({});
    pruned.when(deduct('g1', 1, T0 + 10 + SETTLED_RETENTION_MS + 1)).thenRejects('charge_window_expired');
  });
});

describe('Capture and Refund', () => {
  it('captures the held amount', () => {
    account.given(granted(5), deducted('g1', 3)).when({ type: 'Capture', generationId: 'g1' }).then(captured('g1', 3));
  });

  it('refunds the held amount', () => {
    account
      .given(granted(5), deducted('g1', 3))
      .when({ type: 'Refund', generationId: 'g1', reason: 'generation_failed' })
      .then(refunded('g1', 3));
  });

  it('does nothing without a hold: never deducted, or already settled', () => {
    account.given(granted(5)).when({ type: 'Capture', generationId: 'g1' }).thenNothing();
    account.given(granted(5)).when({ type: 'Refund', generationId: 'g1', reason: 'x' }).thenNothing();
    account.given(granted(5), deducted('g1'), captured('g1')).when({ type: 'Capture', generationId: 'g1' }).thenNothing();
    account.given(granted(5), deducted('g1'), captured('g1')).when({ type: 'Refund', generationId: 'g1', reason: 'x' }).thenNothing();
    account.given(granted(5), deducted('g1'), refunded('g1')).when({ type: 'Capture', generationId: 'g1' }).thenNothing();
  });
});

describe('evolve', () => {
  it('keeps balance = granted - revoked - deducted + refunded, with captures moving nothing', () => {
    const s = account
      .given(
        granted(10),
        { type: 'CreditsRevoked', data: { amount: 2, reason: 'x', reference: 'r' } },
        deducted('g1', 3),
        deducted('g2', 1),
        captured('g1', 3),
        refunded('g2', 1),
        deducted('g3', 2),
      )
      .state();
    expect(s).toMatchObject({ balance: 3, granted: 10, revoked: 2, deducted: 6, captured: 3, refunded: 1, open: { g3: 2 } });
    expect(s.balance).toBe(s.granted - s.revoked - s.deducted + s.refunded);
  });

  it('keeps settled ids only for the retention period (bounded state)', () => {
    const s = account
      .given(
        { event: granted(10), at: T0 },
        { event: deducted('old'), at: T0 },
        { event: captured('old'), at: T0 },
        { event: deducted('new'), at: T0 + SETTLED_RETENTION_MS },
        { event: refunded('new'), at: T0 + SETTLED_RETENTION_MS + 1 },
      )
      .state();
    expect(Object.keys(s.recentlySettled)).toEqual(['g:new']);
    expect(s.open).toEqual({});
  });
});

describe('TransferOut (the paying leg of a transfer)', () => {
  const out = (amount: number, transferId = 'order-9'): AccountCommand => ({ type: 'TransferOut', amount, transferId, to: 'shopper:s.abc' });
  const paid = (amount: number, transferId = 'order-9'): AccountEvent => ({ type: 'CreditsTransferredOut', data: { amount, transferId, to: 'shopper:s.abc' } });

  it('pays from the balance, and is idempotent on the transfer id', () => {
    account.given(granted(5)).when(out(3)).then(paid(3));
    account.given(granted(5), paid(3)).when(out(3)).thenNothing();
  });

  it('refuses more than the balance (nothing moves: the transfer ends rejected), and another amount for the same id', () => {
    account.given(granted(2)).when(out(3)).thenRejects('insufficient_credits');
    account.given(granted(9), paid(3)).when(out(4)).thenRejects('reference_conflict');
  });
});

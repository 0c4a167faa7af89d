// Credit arithmetic, in one place. Every account event is one movement of one kind (accountMovement); what one credit of
// each kind does to the balance, the credits held and the totals the platform shows is one table (MOVEMENT_EFFECT).
// The decider's state, the auditor, the statement, the credit-balances projection and its rebuild all derive from
// these two, so a new account event or movement kind is taught here and the compiler lists the rest.
import type { AccountEvent } from './events.ts';
import { assertNever } from './exhaustive.ts';

/** The kinds of movement of ledger.md; the account keeps a running total of each (its `granted`, `revoked`, ...). */
export type MovementKind =
  | 'granted'
  | 'revoked'
  | 'deducted'
  | 'captured'
  | 'refunded'
  | 'overage_charged'
  | 'overage_captured'
  | 'overage_refund_due'
  | 'transferred';

/** The movement kind of each account event type (a table, so SQL over stored rows can use it too). */
export const MOVEMENT_KIND: Record<AccountEvent['type'], MovementKind> = {
  CreditsGranted: 'granted',
  CreditsRevoked: 'revoked',
  CreditDeducted: 'deducted',
  CreditCaptured: 'captured',
  CreditRefunded: 'refunded',
  OverageCharged: 'overage_charged',
  OverageCaptured: 'overage_captured',
  OverageRefundDue: 'overage_refund_due',
  CreditsTransferredOut: 'transferred',
};

/**
 * What one credit of each kind does to:
 * - `balance`: the spendable balance (invariant 1: granted - revoked - deducted + refunded); a hold lowers it at once;
 * - `held`: credits deducted for generations not yet captured or refunded;
 * - `earned`: credits granted net of revocations (a revocation corrects a grant): the platform's `total_earned` /
 *   `total_purchased`. The account's own `granted` total stays gross; `earned = granted - revoked`;
 * - `spent`: credits a capture made final: the platform's `total_spent`; a transfer out is spent too (the platform's
 *   shopper purchase counted it in the store's `total_spent`), and the receiving account earns it (`transfer_in`).
 * The overage kinds move no credit at all (the generation is billed through the subscription): overage never mints
 * or spends a credit, and the account's running totals of those kinds are what finance bills and owes.
 */
export interface MovementEffect {
  balance: -1 | 0 | 1;
  held: -1 | 0 | 1;
  earned: -1 | 0 | 1;
  spent: 0 | 1;
}
export const MOVEMENT_EFFECT: Record<MovementKind, MovementEffect> = {
  granted: { balance: 1, held: 0, earned: 1, spent: 0 },
  revoked: { balance: -1, held: 0, earned: -1, spent: 0 },
  deducted: { balance: -1, held: 1, earned: 0, spent: 0 },
  captured: { balance: 0, held: -1, earned: 0, spent: 1 },
  refunded: { balance: 1, held: -1, earned: 0, spent: 0 },
  overage_charged: { balance: 0, held: 0, earned: 0, spent: 0 },
  overage_captured: { balance: 0, held: 0, earned: 0, spent: 0 },
  overage_refund_due: { balance: 0, held: 0, earned: 0, spent: 0 },
  transferred: { balance: -1, held: 0, earned: 0, spent: 1 },
};
export const MOVEMENT_KINDS = Object.keys(MOVEMENT_EFFECT) as MovementKind[];
/** A running total of every movement kind, all zero: what an account and the auditor start from. */
export const zeroMovementTotals = (): Record<MovementKind, number> =>
  Object.fromEntries(MOVEMENT_KINDS.map((k) => [k, 0])) as Record<MovementKind, number>;

export interface AccountMovement {
  kind: MovementKind;
  /** the event's own amount, unsigned */
  credits: number;
  /** the generation a hold, capture or refund belongs to */
  generationId: string | null;
  /** a grant's or revocation's idempotency key; an overage's Paddle reference */
  reference: string | null;
  reason: string | null;
  /** the request that took a hold */
  requestId: string | null;
}

export function accountMovement(e: AccountEvent): AccountMovement {
  const kind = MOVEMENT_KIND[e.type];
  const credits = e.data.amount;
  switch (e.type) {
    case 'CreditsGranted':
    case 'CreditsRevoked':
      return { kind, credits, generationId: null, reference: e.data.reference, reason: e.data.reason, requestId: null };
    case 'CreditDeducted':
      return { kind, credits, generationId: e.data.generationId, reference: null, reason: null, requestId: e.data.requestId };
    case 'CreditCaptured':
      return { kind, credits, generationId: e.data.generationId, reference: null, reason: null, requestId: null };
    case 'CreditRefunded':
      return { kind, credits, generationId: e.data.generationId, reference: null, reason: e.data.reason, requestId: null };
    case 'OverageCharged':
      return { kind, credits, generationId: e.data.generationId, reference: e.data.paddleReference, reason: null, requestId: e.data.requestId };
    case 'OverageCaptured':
      return { kind, credits, generationId: e.data.generationId, reference: null, reason: null, requestId: null };
    case 'OverageRefundDue':
      return { kind, credits, generationId: e.data.generationId, reference: e.data.paddleReference, reason: e.data.reason, requestId: null };
    case 'CreditsTransferredOut':
      return { kind, credits, generationId: null, reference: transferReference(e.data.transferId), reason: 'transfer_out', requestId: null };
    default:
      return assertNever(e, 'account event');
  }
}

/** The reference both legs of a transfer carry: the paying leg's, and the receiving grant's (reason transfer_in). */
export const transferReference = (transferId: string) => `transfer:${transferId}`;

/** Signed change of a quantity by one movement, e.g. `change(m, 'balance')` for a statement line. */
export const change = (m: Pick<AccountMovement, 'kind' | 'credits'>, quantity: keyof MovementEffect): number =>
  m.credits * MOVEMENT_EFFECT[m.kind][quantity];

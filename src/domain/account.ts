// The credit account decider: a pool's balance and its open holds. Pure: decide(state, command) -> events | rejection,
// evolve(state, event) -> state.
//
// Why `recentlySettled`: the saga decides to deduct after reading the generation stream, and no store gives an atomic
// read across two streams. A worker whose read of the generation went stale could deduct again for a generation that
// another worker already charged, ran and settled (its hold is no longer `open`). The account therefore remembers
// settled generation ids for SETTLED_RETENTION_MS of event time, and refuses to deduct for a generation accepted more
// than CHARGE_WINDOW_MS ago. Any deduction either happens inside the window (the settled id is still remembered, so it
// is a no-op) or is refused. State stays bounded by the recent rate, not by history.
import type { AccountEvent, GrantReason, OverageTerms } from './events.ts';
import { GRANT_REASONS } from './events.ts';
import { assertNever } from './exhaustive.ts';
import { accountMovement, change, zeroMovementTotals, type MovementKind } from './movement.ts';

export const CHARGE_WINDOW_MS = 60 * 60 * 1000;
/** Window plus a margin for clock skew between workers. */
export const SETTLED_RETENTION_MS = CHARGE_WINDOW_MS + 60 * 60 * 1000;

/**
 * The most credits one account can hold or have been granted (net of revocations): 2^31 - 1, the largest value of the
 * platform's `integer` credit columns (user_credits, store_credits, store_shopper_credits) and of the projections' own
 * tables. Every amount, balance, hold and published total stays within it, so every store and read model holds it
 * exactly (and a JavaScript number never comes near 2^53). balance + held + captured = granted - revoked, so bounding
 * the net grant bounds them all.
 */
export const MAX_CREDITS = 2_147_483_647;

/** `granted` ... `refunded`: running (gross) total of each movement kind (domain/movement.ts). */
export interface AccountState extends Record<MovementKind, number> {
  balance: number;
  /** generationId -> amount held */
  open: Record<string, number>;
  /** generationId -> an overage charge not yet captured or owed back (no credit is held for it) */
  overage: Record<string, { amount: number; paddleReference: string | null }>;
  /** `g:<generationId>` -> settled at (epoch ms of the settling event), oldest first. The prefix keeps keys
   * non-numeric so JavaScript preserves insertion order, which pruning relies on. */
  recentlySettled: Record<string, number>;
  /** idempotency keys of grants (`grant:<ref>`), revocations (`revoke:<ref>`) and transfers out (`transfer:<id>`)
   * already applied -> their amount */
  references: Record<string, number>;
}

/** The shape version of AccountState: bump it whenever the shape changes, so stored snapshots of the old shape are
 * ignored (the stream is folded again) instead of being loaded as the new one. */
export const ACCOUNT_STATE_VERSION = 4; // 4: `overage` and the overage totals; 3: `transferred` total; 2: `references` maps each reference to its amount

export const initialAccount = (): AccountState => ({
  balance: 0,
  ...zeroMovementTotals(),
  open: {},
  overage: {},
  recentlySettled: {},
  references: {},
});

export type AccountCommand =
  | { type: 'Grant'; amount: number; reason: GrantReason; reference: string }
  | { type: 'Revoke'; amount: number; reason: string; reference: string }
  /** `overage`: the generation may run as an overage (billed, or when the balance is short): no credit moves then */
  | { type: 'Deduct'; generationId: string; amount: number; requestId: string; acceptedAt: string; now: number; overage?: OverageTerms }
  | { type: 'Capture'; generationId: string }
  | { type: 'Refund'; generationId: string; reason: string }
  /** the paying leg of a transfer; idempotent by transferId */
  | { type: 'TransferOut'; amount: number; transferId: string; to: string };

export type AccountRejectionCode =
  | 'invalid_amount'
  | 'invalid_reason'
  | 'invalid_reference'
  | 'reference_conflict'
  | 'credit_bound_exceeded'
  | 'insufficient_credits'
  | 'charge_window_expired';

export type AccountDecision = { ok: true; events: AccountEvent[] } | { ok: false; code: AccountRejectionCode; message: string };

const accept = (...events: AccountEvent[]): AccountDecision => ({ ok: true, events });
const refuse = (code: AccountRejectionCode, message: string): AccountDecision => ({ ok: false, code, message });
const isCreditAmount = (n: number) => Number.isInteger(n) && n > 0 && n <= MAX_CREDITS;
const INVALID_AMOUNT = `amount must be a whole number of credits from 1 to ${MAX_CREDITS}`;

/** A repeated reference is a replay only with the same amount; another amount is a caller's bug, said so. */
function replayOf(state: AccountState, key: string, amount: number, what: string): AccountDecision | null {
  const recorded = state.references[key];
  if (recorded === undefined) return null;
  if (recorded === amount) return accept();
  return refuse('reference_conflict', `reference ${JSON.stringify(key.slice(key.indexOf(':') + 1))} was already used for a ${what} of ${recorded} credits, not ${amount}`);
}

export function decideAccount(state: AccountState, command: AccountCommand): AccountDecision {
  switch (command.type) {
    case 'Grant': {
      if (!isCreditAmount(command.amount)) return refuse('invalid_amount', INVALID_AMOUNT);
      if (!GRANT_REASONS.includes(command.reason)) return refuse('invalid_reason', `reason must be one of ${GRANT_REASONS.join(', ')}`);
      if (!command.reference.trim()) return refuse('invalid_reference', 'a grant needs a reference (order id, webhook id)');
      const replay = replayOf(state, `grant:${command.reference}`, command.amount, 'grant');
      if (replay) return replay;
      const net = state.granted - state.revoked;
      if (net + command.amount > MAX_CREDITS) {
        return refuse(
          'credit_bound_exceeded',
          `granting ${command.amount} would raise the credits granted to this account to ${net + command.amount}, past the ledger's bound of ${MAX_CREDITS} (the platform's integer columns); at most ${Math.max(0, MAX_CREDITS - net)} more can be granted`,
        );
      }
      return accept({ type: 'CreditsGranted', data: { amount: command.amount, reason: command.reason, reference: command.reference } });
    }
    case 'Revoke': {
      if (!isCreditAmount(command.amount)) return refuse('invalid_amount', INVALID_AMOUNT);
      if (!command.reference.trim()) return refuse('invalid_reference', 'a revocation needs a reference');
      const replay = replayOf(state, `revoke:${command.reference}`, command.amount, 'revocation');
      if (replay) return replay;
      if (state.balance < command.amount) {
        return refuse('insufficient_credits', `cannot revoke ${command.amount}: balance is ${state.balance}`);
      }
      return accept({ type: 'CreditsRevoked', data: { amount: command.amount, reason: command.reason, reference: command.reference } });
    }
    case 'Deduct': {
      if (!isCreditAmount(command.amount)) return refuse('invalid_amount', INVALID_AMOUNT);
      // One charge per generation, held or overage: whichever was taken first stands.
      if (isCharged(state, command.generationId)) return accept();
      if (command.now - Date.parse(command.acceptedAt) > CHARGE_WINDOW_MS) {
        return refuse('charge_window_expired', 'the generation was accepted too long ago to be charged');
      }
      const { overage } = command;
      if (overage && (overage.billed || state.balance < command.amount)) {
        const { generationId, amount, requestId } = command;
        return accept({ type: 'OverageCharged', data: { generationId, amount, requestId, tier: overage.tier, paddleReference: overage.paddleReference } });
      }
      if (state.balance < command.amount) {
        return refuse('insufficient_credits', `balance ${state.balance} is below the cost ${command.amount}`);
      }
      return accept({
        type: 'CreditDeducted',
        data: { generationId: command.generationId, amount: command.amount, requestId: command.requestId },
      });
    }
    case 'TransferOut': {
      if (!isCreditAmount(command.amount)) return refuse('invalid_amount', INVALID_AMOUNT);
      if (!command.transferId.trim()) return refuse('invalid_reference', 'a transfer needs an id (the order id)');
      const replay = replayOf(state, `transfer:${command.transferId}`, command.amount, 'transfer');
      if (replay) return replay;
      if (state.balance < command.amount) {
        return refuse('insufficient_credits', `cannot transfer ${command.amount}: balance is ${state.balance}`);
      }
      return accept({ type: 'CreditsTransferredOut', data: { amount: command.amount, transferId: command.transferId, to: command.to } });
    }
    case 'Capture': {
      const generationId = command.generationId;
      const amount = state.open[generationId];
      if (amount !== undefined) return accept({ type: 'CreditCaptured', data: { generationId, amount } });
      const overage = state.overage[generationId];
      return overage ? accept({ type: 'OverageCaptured', data: { generationId, amount: overage.amount } }) : accept();
    }
    case 'Refund': {
      const generationId = command.generationId;
      const amount = state.open[generationId];
      if (amount !== undefined) return accept({ type: 'CreditRefunded', data: { generationId, amount, reason: command.reason } });
      const overage = state.overage[generationId];
      return overage
        ? accept({ type: 'OverageRefundDue', data: { generationId, amount: overage.amount, reason: command.reason, paddleReference: overage.paddleReference } })
        : accept();
    }
  }
}

/** The generation holds credits here, owes an overage here, or was settled here recently. */
export const isCharged = (state: AccountState, generationId: string): boolean =>
  generationId in state.open || generationId in state.overage || `g:${generationId}` in state.recentlySettled;

/**
 * Applies one event. `at` is the event's occurredAt in epoch ms: it ages out settled ids identically on every replica.
 * Takes ownership of `state` and updates it in place (the maps can hold thousands of ids, so copying them per event
 * would make a replay quadratic); a caller that must keep the old state copies it first.
 */
export function evolveAccount(s: AccountState, event: AccountEvent, at: number): AccountState {
  const m = accountMovement(event);
  s[m.kind] += m.credits;
  s.balance += change(m, 'balance');
  switch (event.type) {
    case 'CreditsGranted':
      s.references[`grant:${event.data.reference}`] = event.data.amount;
      break;
    case 'CreditsRevoked':
      s.references[`revoke:${event.data.reference}`] = event.data.amount;
      break;
    case 'CreditDeducted':
      s.open[event.data.generationId] = event.data.amount;
      break;
    case 'CreditsTransferredOut':
      s.references[`transfer:${event.data.transferId}`] = event.data.amount;
      break;
    case 'CreditCaptured':
    case 'CreditRefunded':
      delete s.open[event.data.generationId];
      s.recentlySettled[`g:${event.data.generationId}`] = at;
      break;
    case 'OverageCharged':
      s.overage[event.data.generationId] = { amount: event.data.amount, paddleReference: event.data.paddleReference };
      break;
    case 'OverageCaptured':
    case 'OverageRefundDue':
      delete s.overage[event.data.generationId];
      s.recentlySettled[`g:${event.data.generationId}`] = at;
      break;
    default:
      assertNever(event, 'account event');
  }
  // Insertion order is settlement order, so the expired ids are a prefix.
  for (const key in s.recentlySettled) {
    if (at - s.recentlySettled[key]! <= SETTLED_RETENTION_MS) break;
    delete s.recentlySettled[key];
  }
  return s;
}

export function foldAccount(events: Iterable<{ event: AccountEvent; at: number }>, from: AccountState = initialAccount()): AccountState {
  let s = from;
  for (const { event, at } of events) s = evolveAccount(s, event, at);
  return s;
}

// The saga's decisions (ledger.md, "The saga"), pure: given where a generation stands, which step comes next, and
// which account command settles it. src/app/saga.ts performs the steps; tests/unit/saga-steps.test.ts specifies them.
import type { AccountCommand, AccountRejectionCode } from './account.ts';
import type { RejectionCode } from './events.ts';
import { isClaimable, isLeaseExpired, isTerminal, type GenerationState, type TerminalStatus } from './generation.ts';

export type SagaStep =
  /** nothing was requested under this session id */
  | { kind: 'missing' }
  /** terminal: capture (completed) or refund (failed, rejected) its hold, if one is open (none without a request) */
  | { kind: 'settle'; status: TerminalStatus }
  /** requested: take the hold (or find it taken) and mark it charged, or reject it */
  | { kind: 'charge' }
  /** a rate-limit retry that is not due yet */
  | { kind: 'wait'; until: number }
  /** another attempt holds a live lease */
  | { kind: 'leased'; until: number }
  /** charged, released or due for a retry (`Claim`), or its lease expired (`Recover`): start an attempt */
  | { kind: 'claim'; command: 'Claim' | 'Recover' };

export function nextStep(s: GenerationState, now: number): SagaStep {
  if (s.status === 'none') return { kind: 'missing' };
  if (isTerminal(s)) return { kind: 'settle', status: s.status };
  if (!s.request) return { kind: 'missing' };
  if (s.status === 'requested') return { kind: 'charge' };
  if (s.status === 'retry_scheduled' && !isClaimable(s, now)) return { kind: 'wait', until: Date.parse(s.notBefore!) };
  if (s.status === 'started' && !isLeaseExpired(s, now)) return { kind: 'leased', until: Date.parse(s.leaseUntil!) };
  return { kind: 'claim', command: s.status === 'started' ? 'Recover' : 'Claim' };
}

/** Settling a terminal generation: a completed one's hold becomes final, any other's is returned. */
export function settleCommand(generationId: string, status: TerminalStatus): Extract<AccountCommand, { type: 'Capture' | 'Refund' }> {
  return status === 'completed' ? { type: 'Capture', generationId } : { type: 'Refund', generationId, reason: `generation_${status}` };
}

/** Why a generation is rejected when its account refuses the hold. */
export const chargeRejection = (code: AccountRejectionCode): RejectionCode =>
  code === 'charge_window_expired' ? 'charge_window_expired' : 'insufficient_credits';

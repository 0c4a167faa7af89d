// Deterministic event ids (ledger.md): derived from the stream, the step and the attempt, so a retried append of the
// same step carries the same id and the store recognises it. Every writer of the ledger names its steps here.
import type { AccountCommand } from './account.ts';
import type { GenerationEvent } from './events.ts';
import { assertNever } from './exhaustive.ts';
import type { GenerationCommand, GenerationState } from './generation.ts';
import type { TransferCommand } from './transfer.ts';
import { deterministicEventId } from './streams.ts';

/** The step an account command performs (also its causation): one per grant or revocation reference, one per hold. */
export function accountStep(c: AccountCommand): string {
  switch (c.type) {
    case 'Grant':
      return `grant:${c.reference}`;
    case 'Revoke':
      return `revoke:${c.reference}`;
    case 'Deduct':
      return `deduct:${c.generationId}`;
    case 'Capture':
      return `capture:${c.generationId}`;
    case 'Refund':
      return `refund:${c.generationId}`;
    case 'TransferOut':
      return `transfer:${c.transferId}`;
    default:
      return assertNever(c, 'account command');
  }
}

/**
 * The id of the event an account command appends. A grant, revocation or transfer out is named by its reference AND
 * its amount: two commands with one reference and different amounts deciding on the same revision (two workers) must
 * not share an id, or the store would take the second for a retry of the first and report it appended; with distinct
 * ids the second meets the revision conflict, reloads, and is refused as reference_conflict.
 */
export function accountEventId(stream: string, c: AccountCommand): string {
  const amount = c.type === 'Grant' || c.type === 'Revoke' || c.type === 'TransferOut' ? `:${c.amount}` : '';
  return deterministicEventId(stream, `${accountStep(c)}${amount}`);
}

/** A transfer's steps: requested once (named by what was asked, for the same reason as above), then completed or
 * rejected (one of the two). */
export const transferEventId = (stream: string, c: TransferCommand): string =>
  deterministicEventId(stream, c.type === 'Request' ? `requested:${c.data.from}:${c.data.to}:${c.data.amount}` : c.type === 'Complete' ? 'completed' : 'rejected');

/** The id of `event`, decided by command `c` on a generation in state `before`. */
export function generationEventId(stream: string, c: GenerationCommand, before: GenerationState, event: GenerationEvent): string {
  const id = (step: string, attempt = 0) => deterministicEventId(stream, step, attempt);
  switch (c.type) {
    case 'Request':
      return id('requested');
    case 'MarkCharged':
      return id('charged');
    case 'Reject':
      return id('rejected');
    case 'Claim':
    case 'Recover':
      // A claim with no attempts left decides GenerationFailed(worker_lost): the failure step's id.
      if (event.type === 'GenerationFailed') return id('lost', before.attempt);
      // Two workers claiming the same attempt must produce different ids, or one would "replay" the other's claim.
      return id(`started:${c.workerId}`, before.attempt + 1);
    case 'Complete':
      return id('completed', c.attempt);
    case 'ScheduleRetry':
      return id('retry', c.attempt);
    case 'Release':
      return id(`released:${c.workerId}`, c.attempt);
    case 'Fail':
      return id('failed', c.attempt);
    case 'Cancel':
      return id('cancelled');
    default:
      return assertNever(c, 'generation command');
  }
}

// The transfer decider (domain/transfer.ts), given/when/then: requested once, then completed or rejected, once.
import { describe, it } from 'vitest';
import type { TransferEvent } from '../../src/domain/events.ts';
import { decideTransfer, evolveTransfer, initialTransfer, type TransferCommand } from '../../src/domain/transfer.ts';
import { decider } from '../support/decider.ts';

const transfer = decider<ReturnType<typeof initialTransfer>, TransferEvent, TransferCommand>({
  initial: initialTransfer,
  evolve: (s, e) => evolveTransfer(s, e),
  decide: decideTransfer,
});
const data = { transferId: 'o1', from: 'store:s', to: 'shopper:s.abc', amount: 3 };
const requested: TransferEvent = { type: 'TransferRequested', data };

describe('transfer decider', () => {
  it('is requested once; the same request again is a replay, another amount or account a conflict', () => {
    transfer.given().when({ type: 'Request', data }).then(requested);
    transfer.given(requested).when({ type: 'Request', data }).thenNothing();
    transfer.given(requested).when({ type: 'Request', data: { ...data, amount: 4 } }).thenRejects('transfer_conflict');
    transfer.given(requested).when({ type: 'Request', data: { ...data, to: 'shopper:s.def' } }).thenRejects('transfer_conflict');
  });

  it('ends completed or rejected, once; a terminal transfer takes nothing more', () => {
    transfer.given(requested).when({ type: 'Complete' }).then({ type: 'TransferCompleted', data: { amount: 3 } });
    transfer.given(requested).when({ type: 'Reject', code: 'insufficient_credits', message: 'm' }).then({ type: 'TransferRejected', data: { code: 'insufficient_credits', message: 'm' } });
    const completed: TransferEvent = { type: 'TransferCompleted', data: { amount: 3 } };
    transfer.given(requested, completed).when({ type: 'Reject', code: 'x', message: 'm' }).thenNothing();
    transfer.given(requested, completed).when({ type: 'Complete' }).thenNothing();
    transfer.given().when({ type: 'Complete' }).thenNothing();
  });
});

// The transfer decider: one process per transfer between two accounts (a Shopify shopper purchase moves credits from
// the store pool to the shopper pool), on its own stream `transfer-{transferId}`. Requested once; then the paying leg
// (CreditsTransferredOut) and the receiving leg (CreditsGranted transfer_in) are appended on the accounts, each
// idempotent by the transfer id, and the process ends Completed; or Rejected when the paying account refuses (nothing
// moved). A crash between the legs leaves it Requested, and running it again finishes it (src/app/transfers.ts).
import type { TransferEvent, TransferRequested } from './events.ts';
import { assertNever } from './exhaustive.ts';

export type TransferStatus = 'none' | 'requested' | 'completed' | 'rejected';

export interface TransferState {
  status: TransferStatus;
  request: TransferRequested['data'] | null;
  rejection: { code: string; message: string } | null;
}

export const TRANSFER_STATE_VERSION = 1;

export const initialTransfer = (): TransferState => ({ status: 'none', request: null, rejection: null });

export type TransferCommand =
  | { type: 'Request'; data: TransferRequested['data'] }
  | { type: 'Complete' }
  | { type: 'Reject'; code: string; message: string };

export type TransferDecision = { ok: true; events: TransferEvent[] } | { ok: false; code: 'transfer_conflict'; message: string };

const same = (a: TransferRequested['data'], b: TransferRequested['data']) => a.from === b.from && a.to === b.to && a.amount === b.amount;

export function decideTransfer(s: TransferState, c: TransferCommand): TransferDecision {
  switch (c.type) {
    case 'Request':
      if (s.request) {
        return same(s.request, c.data)
          ? { ok: true, events: [] }
          : { ok: false, code: 'transfer_conflict', message: `transfer ${c.data.transferId} was requested as ${s.request.amount} from ${s.request.from} to ${s.request.to}` };
      }
      return { ok: true, events: [{ type: 'TransferRequested', data: c.data }] };
    case 'Complete':
      return { ok: true, events: s.status === 'requested' ? [{ type: 'TransferCompleted', data: { amount: s.request!.amount } }] : [] };
    case 'Reject':
      return { ok: true, events: s.status === 'requested' ? [{ type: 'TransferRejected', data: { code: c.code, message: c.message } }] : [] };
    default:
      return assertNever(c, 'transfer command');
  }
}

export function evolveTransfer(s: TransferState, e: TransferEvent): TransferState {
  switch (e.type) {
    case 'TransferRequested':
      return { ...s, status: 'requested', request: e.data };
    case 'TransferCompleted':
      return { ...s, status: 'completed' };
    case 'TransferRejected':
      return { ...s, status: 'rejected', rejection: e.data };
    default:
      return assertNever(e, 'transfer event');
  }
}

// A transfer between two accounts (domain/transfer.ts), driven to its end: request, paying leg, receiving leg,
// completed; or rejected with nothing moved. Every step is idempotent by the transfer id, so running the same transfer
// again (a redelivered command, a crash between any two appends) finishes it and never moves credits twice.
import { decideAccount } from '../domain/account.ts';
import { decideTransfer, type TransferCommand, type TransferState } from '../domain/transfer.ts';
import { transferReference } from '../domain/movement.ts';
import { accountEventId, accountStep, transferEventId } from '../domain/stepIds.ts';
import { accountIdOf, accountStream, parseAccountId, transferIdOf, transferStream } from '../domain/streams.ts';
import { ACCOUNT, TRANSFER, commandMeta, type AggregateRepository } from './aggregates.ts';
import { CreditCommandRejected, grantCredits, type CommandContext } from './credits.ts';

export interface TransferInput {
  /** paying account, e.g. `store:<id>` */
  from: string;
  /** receiving account, e.g. `shopper:<storeId>:<email>` or `shopper:<storeId>.<hash>` */
  to: string;
  amount: number;
  /** the caller's idempotency key (a Shopify order id) */
  transferId: string;
}

export type TransferOutcome = { status: 'completed' } | { status: 'rejected'; code: string; message: string };

const meta = (ctx: CommandContext, causation: string) =>
  commandMeta({ requestId: ctx.requestId, causationId: causation, workerId: ctx.workerId, at: ctx.now ?? Date.now() });

async function onTransfer(repo: AggregateRepository, stream: string, command: TransferCommand, ctx: CommandContext): Promise<TransferState> {
  const r = await repo.handle(
    TRANSFER,
    stream,
    ({ state }) => {
      const d = decideTransfer(state, command);
      if (!d.ok) throw new CreditCommandRejected(d.code, d.message);
      return { events: d.events, ids: d.events.map(() => transferEventId(stream, command)), result: null };
    },
    meta(ctx, `Transfer${command.type}:${stream}`),
  );
  void r;
  return (await repo.load(TRANSFER, stream)).state;
}

export async function transferCredits(repo: AggregateRepository, input: TransferInput, ctx: CommandContext): Promise<TransferOutcome> {
  // Accounts in their canonical form: a plain shopper email is hashed here and never stored.
  const from = accountIdOf(parseAccountId(input.from));
  const to = accountIdOf(parseAccountId(input.to));
  const transferId = transferIdOf(input.transferId);
  if (from === to) throw new CreditCommandRejected('invalid_transfer', 'a transfer needs two different accounts');
  const stream = transferStream(transferId);

  let state = await onTransfer(repo, stream, { type: 'Request', data: { transferId, from, to, amount: input.amount } }, ctx);
  // Two different requests of one transfer append the same event id (transferEventId): the store answers the second
  // as a replay of the first, so its caller must read what was requested, not assume its own (else it would pay its
  // own amount for a transfer another caller rejected; property seed -21037747).
  const requested = state.request!;
  if (requested.from !== from || requested.to !== to || requested.amount !== input.amount) {
    throw new CreditCommandRejected('transfer_conflict', `transfer ${transferId} was requested as ${requested.amount} from ${requested.from} to ${requested.to}`);
  }
  if (state.status === 'rejected') return { status: 'rejected', ...state.rejection! };
  if (state.status === 'completed') return { status: 'completed' };

  // The paying leg: refused (insufficient credits) means nothing moved, and the transfer ends rejected.
  const out = { type: 'TransferOut' as const, amount: input.amount, transferId, to };
  const fromStream = accountStream(from);
  const refusal = await repo.handle(
    ACCOUNT,
    fromStream,
    ({ state: account }) => {
      const d = decideAccount(account, out);
      return d.ok
        ? { events: d.events, ids: d.events.map(() => accountEventId(fromStream, out)), result: null }
        : { events: [], ids: [], result: { code: d.code, message: d.message } };
    },
    meta(ctx, `TransferOut:${accountStep(out)}`),
  );
  if (refusal.result) {
    state = await onTransfer(repo, stream, { type: 'Reject', ...refusal.result }, ctx);
    return state.status === 'rejected' ? { status: 'rejected', ...state.rejection! } : { status: 'completed' };
  }

  // The receiving leg; a crash before it leaves the transfer requested, and the next run appends it.
  await grantCredits(repo, to, { amount: input.amount, reason: 'transfer_in', reference: transferReference(transferId) }, ctx);
  state = await onTransfer(repo, stream, { type: 'Complete' }, ctx);
  return state.status === 'rejected' ? { status: 'rejected', ...state.rejection! } : { status: 'completed' };
}

// The commands the platform's database records in wearon.credit_inbox (the bridge: docs/platform-adoption.md), and
// the one table that says what each does to the ledger. A bridged platform path is two pieces: the SQL that records
// its command (migration.ts, BRIDGE_PIECES) and one entry here (INBOX_HANDLERS). Every handler is idempotent by the
// command's reference (a natural key, else `inbox:<id>`), so a command applied twice (a crash between the ledger
// append and the inbox mark) changes the ledger once.
import type { AggregateRepository } from '../app/aggregates.ts';
import { CreditCommandRejected, grantCredits } from '../app/credits.ts';
import { transferCredits } from '../app/transfers.ts';
import { billingIntentHandler, storeBillingHandler } from './storeCommands.ts';
import { GRANT_REASONS, type GrantReason } from '../domain/events.ts';
import { InvalidAccountError, parseAccountId } from '../domain/streams.ts';
import type { Logger } from '../logger.ts';

/** What became of a command; `applied` also covers a replay that found the ledger already changed. */
export type InboxOutcome =
  | { outcome: 'applied' }
  | { outcome: 'rejected'; reason: string }
  /** recorded for audit only: the ledger decides this movement itself (e.g. a refund the platform still calls) */
  | { outcome: 'ignored'; reason: string };

export interface InboxCommand<P = unknown> {
  /** wearon.credit_inbox.id (bigserial, as text) */
  id: string;
  type: string;
  payload: P;
  createdAt: string;
}

export interface InboxDeps {
  repo: AggregateRepository;
  workerId: string;
  clock: () => number;
  logger: Logger;
}

/** A payload that can never be applied: the command is rejected with this message. */
export class InvalidInboxPayload extends Error {
  override readonly name = 'InvalidInboxPayload';
}

export interface InboxHandler<P> {
  /** Reads the jsonb payload (throws InvalidInboxPayload). */
  parse(payload: unknown): P;
  /** The ledger accounts whose balance the command raises (intake asks for these before refusing a charge). */
  credits(p: P): string[];
  handle(deps: InboxDeps, command: InboxCommand<P>): Promise<InboxOutcome>;
}

const object = (v: unknown): Record<string, unknown> => {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InvalidInboxPayload('payload is not an object');
  return v as Record<string, unknown>;
};
const text = (o: Record<string, unknown>, k: string): string => {
  const v = o[k];
  if (typeof v !== 'string' || !v.trim()) throw new InvalidInboxPayload(`payload.${k} must be a non-empty string`);
  return v;
};
const whole = (o: Record<string, unknown>, k: string): number => {
  const v = o[k];
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new InvalidInboxPayload(`payload.${k} must be a whole number`);
  return v;
};
const account = (o: Record<string, unknown>, k: string): string => {
  const raw = text(o, k);
  try {
    parseAccountId(raw); // a shopper's plain email is hashed by the ledger's own parser, where it is used
    return raw;
  } catch (err) {
    if (err instanceof InvalidAccountError) throw new InvalidInboxPayload(`payload.${k}: ${err.message}`);
    throw err;
  }
};
/** The command's idempotency key: its natural reference, else the inbox row itself. */
const referenceOf = (o: Record<string, unknown>, inboxId: string) =>
  typeof o.reference === 'string' && o.reference.trim() ? o.reference : `inbox:${inboxId}`;

/** Ledger refusals are final outcomes; anything else (the store unreachable) leaves the command pending. */
async function outcomeOf(run: () => Promise<unknown>): Promise<InboxOutcome> {
  try {
    await run();
    return { outcome: 'applied' };
  } catch (err) {
    if (err instanceof CreditCommandRejected) return { outcome: 'rejected', reason: `${err.code}: ${err.message}` };
    throw err;
  }
}

const ctx = (deps: InboxDeps, command: InboxCommand) => ({ requestId: `inbox_${command.id}`, workerId: deps.workerId, now: deps.clock() });

/** Payload reading and the command context, shared by every handler module (storeCommands.ts too). */
export { object as payloadObject, text as payloadText, ctx as inboxContext };

export interface GrantPayload {
  account: string;
  amount: number;
  reason: GrantReason;
  /** null: the inbox id is the reference */
  reference: string | null;
}

/** Signup bonus (handle_new_user), Paddle purchases and subscriptions, merchant plan upgrades (add_store_credits). */
const grant: InboxHandler<GrantPayload> = {
  parse(payload) {
    const o = object(payload);
    const reason = text(o, 'reason');
    if (!GRANT_REASONS.includes(reason as GrantReason)) throw new InvalidInboxPayload(`payload.reason must be one of ${GRANT_REASONS.join(', ')}`);
    return { account: account(o, 'account'), amount: whole(o, 'amount'), reason: reason as GrantReason, reference: typeof o.reference === 'string' ? o.reference : null };
  },
  credits: (p) => [p.account],
  handle: (deps, c) =>
    outcomeOf(() =>
      grantCredits(deps.repo, c.payload.account, { amount: c.payload.amount, reason: c.payload.reason, reference: referenceOf(c.payload as unknown as Record<string, unknown>, c.id) }, ctx(deps, c)),
    ),
};

export interface TransferPayload {
  /** the paying account (`store:<id>`) */
  from: string;
  /** the receiving account (`shopper:<storeId>:<email>`, hashed here: the plain email never enters the ledger) */
  to: string;
  amount: number;
  /** idempotency key of the whole transfer, e.g. the Shopify order id */
  transferId: string;
}

/** Shopify shopper purchase (process_store_shopper_purchase): store pool -> shopper pool, both legs or neither. */
const transfer: InboxHandler<TransferPayload> = {
  parse(payload) {
    const o = object(payload);
    return { from: account(o, 'from'), to: account(o, 'to'), amount: whole(o, 'amount'), transferId: text(o, 'transferId') };
  },
  credits: (p) => [p.to],
  async handle(deps, c) {
    let r;
    try {
      r = await transferCredits(deps.repo, c.payload, ctx(deps, c));
    } catch (err) {
      // The same transfer id asked with another amount or other accounts: refused, as a grant's reference conflict is.
      if (err instanceof CreditCommandRejected) return { outcome: 'rejected', reason: `${err.code}: ${err.message}` };
      throw err;
    }
    return r.status === 'completed' ? { outcome: 'applied' } : { outcome: 'rejected', reason: `${r.code}: ${r.message}` };
  },
};

/** A refund the platform still calls (refund_credits & co.): the ledger refunds by session, so nothing moves. */
const ignoredRefund: InboxHandler<unknown> = {
  parse: (payload) => payload,
  credits: () => [],
  handle: async () => ({ outcome: 'ignored', reason: 'the ledger settles every generation itself; a platform refund moves no credit' }),
};

/** A handler as the dispatcher holds it: it only ever passes a payload through that handler's own `parse`. */
const entry = <P>(h: InboxHandler<P>) => h as unknown as InboxHandler<unknown>;

/** Every command type the bridge records, by its `type` column: the dispatcher table. */
export const INBOX_HANDLERS: Readonly<Record<string, InboxHandler<unknown>>> = {
  grant: entry(grant),
  transfer: entry(transfer),
  refund_ignored: entry(ignoredRefund),
  store_billing: entry(storeBillingHandler),
  billing_intent: entry(billingIntentHandler),
};

export function handlerOf(type: string): InboxHandler<unknown> | undefined {
  return Object.hasOwn(INBOX_HANDLERS, type) ? INBOX_HANDLERS[type] : undefined;
}

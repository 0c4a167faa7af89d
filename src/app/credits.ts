// Credit commands (grant, revoke) and finance reads (account view, statement) over the ledger.
import { decideAccount, type AccountCommand } from '../domain/account.ts';
import { decodeAccountEvent } from '../domain/decode.ts';
import type { AccountEvent, GrantReason } from '../domain/events.ts';
import { accountMovement, change } from '../domain/movement.ts';
import { accountEventId, accountStep } from '../domain/stepIds.ts';
import { accountIdOf, accountStream, parseAccountId } from '../domain/streams.ts';
import { ACCOUNT, commandMeta, type AggregateRepository } from './aggregates.ts';
import type { EventStore, RecordedEvent } from './ports/eventStore.ts';

export class CreditCommandRejected extends Error {
  override readonly name = 'CreditCommandRejected';
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

export interface CommandContext {
  requestId: string;
  workerId: string;
  now?: number;
}

async function applyCommand(repo: AggregateRepository, account: string, command: AccountCommand, ctx: CommandContext) {
  const ref = parseAccountId(account);
  const stream = accountStream(ref);
  const r = await repo.handle(
    ACCOUNT,
    stream,
    ({ state }) => {
      const d = decideAccount(state, command);
      if (!d.ok) throw new CreditCommandRejected(d.code, d.message);
      return { events: d.events, ids: d.events.map(() => accountEventId(stream, command)), result: state };
    },
    commandMeta({ requestId: ctx.requestId, causationId: `${command.type}:${accountStep(command)}`, workerId: ctx.workerId, at: ctx.now ?? Date.now() }),
  );
  return { account: accountIdOf(ref), applied: r.appended, revision: r.revision };
}

/** Idempotent on (account, reference): a second grant with the same reference changes nothing. */
export function grantCredits(
  repo: AggregateRepository,
  account: string,
  input: { amount: number; reason: GrantReason; reference: string },
  ctx: CommandContext,
) {
  return applyCommand(repo, account, { type: 'Grant', ...input }, ctx);
}

export function revokeCredits(
  repo: AggregateRepository,
  account: string,
  input: { amount: number; reason: string; reference: string },
  ctx: CommandContext,
) {
  return applyCommand(repo, account, { type: 'Revoke', ...input }, ctx);
}

export interface AccountView {
  account: string;
  stream: string;
  exists: boolean;
  revision: number;
  balance: number;
  held: number;
  granted: number;
  revoked: number;
  deducted: number;
  captured: number;
  refunded: number;
  open_holds: Array<{ generation_id: string; amount: number }>;
}

export async function accountView(repo: AggregateRepository, account: string): Promise<AccountView> {
  const ref = parseAccountId(account);
  const stream = accountStream(ref);
  const { state, revision } = await repo.load(ACCOUNT, stream);
  const open = Object.entries(state.open).map(([generation_id, amount]) => ({ generation_id, amount }));
  return {
    account: accountIdOf(ref),
    stream,
    exists: revision >= 0,
    revision,
    balance: state.balance,
    held: open.reduce((a, h) => a + h.amount, 0),
    granted: state.granted,
    revoked: state.revoked,
    deducted: state.deducted,
    captured: state.captured,
    refunded: state.refunded,
    open_holds: open,
  };
}

export interface StatementLine {
  revision: number;
  occurred_at: string;
  event_id: string;
  type: AccountEvent['type'];
  /** signed change of the spendable balance */
  amount: number;
  balance: number;
  generation_id: string | null;
  reason: string | null;
  reference: string | null;
  request_id: string;
}

/** Balance effect of one stored account event; captures move nothing (the hold already left the balance). */
export function balanceChange(r: RecordedEvent): number {
  return change(accountMovement(decodeAccountEvent(r)), 'balance');
}

/** One statement line: a recorded account event and the balance after it. */
export function statementLine(r: RecordedEvent, balance: number): StatementLine {
  const e = decodeAccountEvent(r);
  const m = accountMovement(e);
  return {
    revision: r.revision,
    occurred_at: r.metadata.occurredAt,
    event_id: r.id,
    type: e.type,
    amount: change(m, 'balance'),
    balance,
    generation_id: m.generationId,
    reason: m.reason,
    reference: m.reference,
    request_id: r.metadata.requestId,
  };
}

/**
 * Every movement of an account with its running balance, in pages. The running balance needs the balance before
 * the page: this re-folds from the start once per call, which suits the CLI's one-shot export. Paging (HTTP, the
 * console) goes through StatementReader (statements.ts), which caches balances per block of revisions.
 */
export async function statement(
  store: EventStore,
  account: string,
  page: { fromRevision?: number; limit?: number } = {},
): Promise<{ account: string; lines: StatementLine[]; next_revision: number | null }> {
  const ref = parseAccountId(account);
  const stream = accountStream(ref);
  const from = page.fromRevision ?? 0;
  const limit = page.limit ?? 1000;
  const lines: StatementLine[] = [];
  let balance = 0;
  let revision = 0;
  let next: number | null = null;
  for (;;) {
    const events = await store.readStream(stream, { fromRevision: revision, maxCount: 1000 });
    for (const r of events) {
      balance += balanceChange(r);
      if (r.revision < from) continue;
      if (lines.length === limit) {
        next = r.revision;
        break;
      }
      lines.push(statementLine(r, balance));
    }
    if (next !== null || events.length < 1000) break;
    revision = events[events.length - 1]!.revision + 1;
  }
  return { account: accountIdOf(ref), lines, next_revision: next };
}

const CSV_COLUMNS: (keyof StatementLine)[] = [
  'revision',
  'occurred_at',
  'type',
  'amount',
  'balance',
  'generation_id',
  'reason',
  'reference',
  'request_id',
  'event_id',
];

export function statementCsv(lines: StatementLine[]): string {
  const cell = (v: unknown) => {
    const s = v === null || v === undefined ? '' : String(v);
    // Defuse spreadsheet formulas (OWASP CSV injection: cells led by = + - @ TAB CR get a leading '); numbers (the
    // signed amounts) stay numbers. Then quote what needs it.
    const safe = typeof v !== 'number' && /^[=+\-@\t\r]/.test(s) ? `'${s}` : s;
    return /[",\n\r]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
  };
  return [CSV_COLUMNS.join(','), ...lines.map((l) => CSV_COLUMNS.map((c) => cell(l[c])).join(','))].join('\n') + '\n';
}

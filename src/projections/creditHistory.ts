// credit-history: one line per credit movement, published into the platform's history tables where the web app reads
// it: credit_transactions (B2C: user accounts) and store_credit_transactions (B2B: store pools, and shopper pools with
// the shopper in the description, as the platform logs them). Amounts are the balance effect of domain/movement.ts
// (the platform's sign: negative = spend); a deduction shows when it happens, a refund as its own row, a capture not at
// all (it changes no balance); what import-balances appended is the opening state and is kept, never published.
// Exactly once: each platform row carries `ledger_event_id` (unique), inserted with ON CONFLICT DO NOTHING in the same
// transaction as the checkpoint; a rebuild retracts the rows that have one and publishes them again, never touching
// the platform's own rows (ledger_event_id NULL). `verify` reconciles the rows per account with the balance change.
import type { LedgerRecord } from '../app/recorded.ts';
import type { AccountEvent, GrantReason } from '../domain/events.ts';
import { assertNever } from '../domain/exhaustive.ts';
import { accountMovement, change } from '../domain/movement.ts';
import { ACCOUNT_STREAM_PREFIX, accountIdOf, parseAccountId, type AccountKind } from '../domain/streams.ts';
import { byKey, compare, columnNames, type Drift, type Loose } from './drift.ts';
import { IMPORT_REQUEST_ID } from './importBalances.ts';
import { atOrBefore, iso, ownerColumns, type FoldResult, type Projection } from './projection.ts';
import type { ReadModel, Row, Value } from './readModel.ts';
import { HISTORY, HISTORY_TABLES, HISTORY_TYPES, OPENING_TOTALS, type HistoryTable } from './schema.ts';

type TypeOf<T extends HistoryTable> = (typeof HISTORY_TYPES)[T]['platform'][number] | (typeof HISTORY_TYPES)[T]['added'][number];
/** How one kind of movement shows: its type in each table, and the description's first words. */
interface Shows {
  b2c: TypeOf<'credit_transactions'>;
  b2b: TypeOf<'store_credit_transactions'>;
  text: string;
}

/**
 * The type of an opening line: the state at the import (the opening grant, a hold the import re-created for a paid
 * session in flight). Kept by the projection for the reconciliation, never published: the platform's own rows from
 * before the import already show those credits.
 */
export const OPENING_BALANCE = 'opening_balance';

/**
 * How a grant shows in the platform's history, by reason: the one table a new grant reason is added to (the compiler
 * asks). `null`: an opening line.
 */
export const GRANT_SHOWS: Record<GrantReason, Shows | null> = {
  signup_bonus: { b2c: 'signup_bonus', b2b: 'adjustment', text: 'Welcome bonus' },
  purchase: { b2c: 'purchase', b2b: 'purchase', text: 'Credit purchase' },
  subscription: { b2c: 'subscription', b2b: 'subscription', text: 'Subscription credits' },
  opening_balance: null,
  adjustment: { b2c: 'adjustment', b2b: 'adjustment', text: 'Credit adjustment' },
  // the receiving leg of a transfer (a shopper's credits bought from the store's pool)
  transfer_in: { b2c: 'transfer', b2b: 'transfer', text: 'Shopper credit purchase' },
};

/** A revocation (finance takes credits back, whatever its reason text). */
const REVOCATION_SHOWS: Shows = { b2c: 'adjustment', b2b: 'adjustment', text: 'Credit adjustment' };
/** The paying leg of a transfer: a `deduction` of the store's pool, worded as the platform's process_store_shopper_purchase. */
const TRANSFER_OUT_SHOWS: Shows = { b2c: 'transfer', b2b: 'deduction', text: 'Shopper credit purchase for order' };
/** Generation movements, with the platform's own descriptions (producer and RPC defaults). */
const DEDUCTION_SHOWS = { b2c: 'generation', b2b: 'deduction', user: 'Virtual try-on generation', store: 'B2B generation', shopper: 'B2B shopper generation' } as const;
const REFUND_SHOWS = { b2c: 'refund', b2b: 'refund', user: 'Generation failed - refund', store: 'Generation failed - refund', shopper: 'B2B shopper generation failed - refund' } as const;

interface Line {
  platform_table: HistoryTable | null;
  type: string;
  description: string;
  request_id: string | null;
  /** the row's amount when it is not the balance effect: an `overage` row counts generations billed (-1) or owed back (+1), as the platform's */
  amount?: number;
}

const tableOf = (kind: AccountKind): HistoryTable => (kind === 'user' ? 'credit_transactions' : 'store_credit_transactions');

const openingLine = (what: string): Line => ({ platform_table: null, type: OPENING_BALANCE, description: what, request_id: null });

/**
 * The platform row of one account event, or null for a movement that changes no balance (a capture: the deduction
 * already shows), since the reconciliation counts lines. B2B `request_id` is the movement's key in its account: the
 * generation id of a deduction and of its refund (the client's request id can repeat, and (store, request_id, type) is
 * unique in the platform's table), the reference of a grant, revocation or transfer.
 */
export function historyLine(kind: AccountKind, e: AccountEvent, shopperHash: string | null): Line | null {
  const side = kind === 'user' ? 'b2c' : 'b2b';
  const table = tableOf(kind);
  const shopper = shopperHash ? ` (shopper_hash=${shopperHash})` : '';
  const line = (type: string, text: string, requestId: string): Line => ({
    platform_table: table,
    type,
    description: text + shopper,
    request_id: side === 'b2b' ? requestId : null,
  });
  switch (e.type) {
    case 'CreditsGranted': {
      const s = GRANT_SHOWS[e.data.reason];
      if (!s) return openingLine(`Opening balance (${e.data.reference})`);
      const text = e.data.reason === 'signup_bonus' ? `${s.text}: ${e.data.amount} free credits` : `${s.text} (${e.data.reference})`;
      return line(s[side], text, e.data.reference);
    }
    case 'CreditsRevoked':
      return line(REVOCATION_SHOWS[side], `${REVOCATION_SHOWS.text} (${e.data.reference}: ${e.data.reason})`, e.data.reference);
    case 'CreditsTransferredOut':
      return line(TRANSFER_OUT_SHOWS[side], `${TRANSFER_OUT_SHOWS.text} ${e.data.transferId}`, accountMovement(e).reference!);
    case 'CreditDeducted':
      return line(DEDUCTION_SHOWS[side], side === 'b2c' ? DEDUCTION_SHOWS.user : `${DEDUCTION_SHOWS[kind]} (request ${e.data.requestId})`, e.data.generationId);
    case 'CreditRefunded':
      return line(REFUND_SHOWS[side], REFUND_SHOWS[kind], e.data.generationId);
    case 'CreditCaptured':
    case 'OverageCaptured':
      return null;
    case 'OverageCharged':
      // Billed through Paddle by the route: its own `overage` row (amount -1) is the line, and the bridge read the
      // intent from it. An overage the ledger decided (store pool short, subscription allowing it) has no such row.
      if (e.data.paddleReference !== null) return null;
      return { ...line('overage', `Overage charge (${e.data.tier ?? 'no tier'}) recorded by the ledger, to bill (request ${e.data.requestId})`, e.data.generationId), amount: -1 };
    case 'OverageRefundDue':
      return {
        ...line('overage', `Overage refund due (${e.data.reason}) for Paddle charge ${e.data.paddleReference ?? 'none: never billed'}`, e.data.generationId),
        amount: 1,
      };
    default:
      return assertNever(e, 'account event');
  }
}

export const creditHistory: Projection = {
  name: 'credit-history',
  state: HISTORY,
  publish: HISTORY_TABLES.map((t) => publishSql(t)),
  retract: HISTORY_TABLES.map((t) => `DELETE FROM ${t} WHERE ledger_event_id IS NOT NULL`),
  reads: { streamPrefixes: [ACCOUNT_STREAM_PREFIX] },
  keyOf: (r) => (r.stream === 'account' ? r.recorded.id : null),
  reduce(prev, r) {
    // Keyed by event id: a line, once written, never changes.
    if (prev || r.stream !== 'account') return prev;
    const e = r.recorded;
    const owner = ownerColumns(r.account);
    // What the import appended (opening grant, re-created holds) is the state at the import, already in the platform's rows.
    const line = e.metadata.requestId === IMPORT_REQUEST_ID ? openingLine(`${r.event.type} at the import`) : historyLine(r.account.kind, r.event, owner.shopper_hash);
    if (!line) return prev;
    return {
      event_id: e.id,
      global_commit: Number(e.position.commit),
      global_prepare: Number(e.position.prepare),
      account: owner.account,
      account_kind: r.account.kind,
      owner_id: owner.owner_id,
      ...line,
      amount: line.amount ?? change(accountMovement(r.event), 'balance'),
      occurred_at: iso(e.metadata.occurredAt),
    };
  },
  async seed(tx, shadow, from) {
    await tx.exec(`INSERT INTO ${shadow.state.name} SELECT * FROM ${HISTORY.name} WHERE ${atOrBefore(from, 'global_commit', 'global_prepare')}`, null);
  },
  async verify(expected, readModel) {
    const drifts: Drift[] = [];
    const lines = new Map([...expected.rows].map(([k, v]) => [k.toLowerCase(), v]));
    const withAccount = (_k: string, r: Loose) => ({ account: r.account as string });
    compare(drifts, 'credit-history', HISTORY.name, lines, byKey(await readModel.readAll(HISTORY), 'event_id'), columnNames(HISTORY), withAccount, true);
    // Every published line is in the platform table as written, and no row claims a ledger event the ledger lacks.
    for (const t of HISTORY_TABLES) {
      const owner = t === 'credit_transactions' ? 'user_id' : 'store_id';
      const exp = new Map(
        [...lines]
          .filter(([, l]) => l.platform_table === t)
          .map(([k, l]) => [k, { ...l, [owner]: String(l.owner_id).toLowerCase(), created_at: l.occurred_at }]),
      );
      const act = byKey(await readModel.query(`SELECT * FROM ${t} WHERE ledger_event_id IS NOT NULL`), 'ledger_event_id');
      const columns = [owner, 'amount', 'type', 'description', 'created_at', ...(t === 'store_credit_transactions' ? ['request_id'] : [])];
      const who = (_k: string, r: Loose) => ({ account: (r.account as string | undefined) ?? `${t === 'credit_transactions' ? 'user' : 'store'}:${r[owner]}` });
      compare(drifts, 'credit-history', t, exp, act, columns, who, true);
    }
    drifts.push(...(await reconcile(lines, readModel)));
    return drifts;
  },
};

/** Inserts the lines of one platform table; a line already there (its ledger_event_id) is left alone. */
function publishSql(t: HistoryTable): string {
  const b2b = t === 'store_credit_transactions';
  return `INSERT INTO ${t} (${b2b ? 'store_id' : 'user_id'}, amount, type, description,${b2b ? ' request_id,' : ''} created_at, ledger_event_id)
   SELECT {uuid:h.owner_id}, h.amount, h.type, h.description,${b2b ? ' h.request_id,' : ''} {ts:h.occurred_at}, h.event_id
   FROM {t:${HISTORY.name}} h WHERE h.platform_table = '${t}' AND {keys:h.event_id}
   ON CONFLICT (ledger_event_id) DO NOTHING`;
}

/** A platform row the platform wrote itself: its shopper, when the description names one (016's `(shopper=<email>)`). */
const SHOPPER_IN_DESCRIPTION = /\(shopper=([^)\s]+)\)\s*$/;

/**
 * Per account: the history rows since the import sum to the balance change since the import. The balance change is
 * the ledger's (every movement but the opening balance); the rows are the platform table's: the ones this projection
 * wrote (by ledger_event_id) and any the platform wrote itself after the account's import (a path that still writes
 * history behind the ledger's back). The account's import is its opening line or opening totals row (an account opened
 * later: the first import). `overage` rows are money, not credits (the platform moves no credit for them), and are left
 * out. Without an import only this projection's rows count.
 */
async function reconcile(lines: FoldResult['rows'], readModel: ReadModel): Promise<Drift[]> {
  const expected = new Map<string, number>();
  const importedAt = new Map<string, number>();
  const imported = (account: string, when: Value) => {
    const at = Date.parse(String(when));
    importedAt.set(account, Math.min(at, importedAt.get(account) ?? at));
  };
  const accountOfEvent = new Map<string, string>();
  for (const [id, l] of lines) {
    const account = String(l.account).toLowerCase();
    accountOfEvent.set(id, account);
    if (l.type === OPENING_BALANCE) {
      imported(account, l.occurred_at!);
      expected.set(account, expected.get(account) ?? 0);
    } else if (l.type !== 'overage') expected.set(account, (expected.get(account) ?? 0) + Number(l.amount)); // money, not credits, as below
  }
  // An account the import found empty has no opening line; its opening totals row says when it was imported.
  for (const r of await readModel.query(`SELECT account, recorded_at FROM ${OPENING_TOTALS.name}`)) imported(String(r.account).toLowerCase(), r.recorded_at!);
  const firstImport = importedAt.size ? Math.min(...importedAt.values()) : null;
  const actual = new Map<string, number>();
  const tableOfAccount = new Map<string, HistoryTable>();
  for (const t of HISTORY_TABLES) {
    const owner = t === 'credit_transactions' ? 'user_id' : 'store_id';
    const since = firstImport === null ? '' : ` OR created_at >= ?`;
    const rows = await readModel.query(
      `SELECT ${owner} AS owner, amount, description, ledger_event_id, created_at FROM ${t} WHERE type <> 'overage' AND (ledger_event_id IS NOT NULL${since})`,
      firstImport === null ? [] : [new Date(firstImport).toISOString()],
    );
    for (const r of rows) {
      let account: string;
      if (r.ledger_event_id != null) account = accountOfEvent.get(String(r.ledger_event_id).toLowerCase()) ?? ownerAccount(t, r);
      else {
        account = ownerAccount(t, r);
        if (Date.parse(String(r.created_at)) < (importedAt.get(account) ?? firstImport!)) continue; // before this account's import
      }
      actual.set(account, (actual.get(account) ?? 0) + Number(r.amount));
      tableOfAccount.set(account, t);
    }
  }
  const drifts: Drift[] = [];
  for (const account of new Set([...expected.keys(), ...actual.keys()])) {
    const exp = expected.get(account) ?? 0;
    const act = actual.get(account) ?? 0;
    if (exp === act) continue;
    const table = tableOfAccount.get(account) ?? tableOf(account.startsWith('user:') ? 'user' : 'store');
    drifts.push({ projection: 'credit-history', table, key: account, account, kind: 'mismatch', column: 'sum(amount) since import', expected: exp, actual: act });
  }
  return drifts;
}

/** The account a platform-written row belongs to: its user or store, or the shopper its description names. */
function ownerAccount(t: HistoryTable, r: Row): string {
  const owner = String(r.owner).toLowerCase();
  if (t === 'credit_transactions') return `user:${owner}`;
  const shopper = SHOPPER_IN_DESCRIPTION.exec(String(r.description ?? ''))?.[1];
  if (shopper) {
    try {
      return accountIdOf(parseAccountId(`shopper:${owner}:${shopper}`)).toLowerCase();
    } catch {
      // not an email the ledger could hold: the store's row
    }
  }
  return `store:${owner}`;
}

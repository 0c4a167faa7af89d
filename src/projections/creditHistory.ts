// credit-history: one line per credit movement, published into the platform's history tables where the web app reads
// it: credit_transactions (B2C: user accounts) and store_credit_transactions (B2B: store pools, and shopper pools with
// the shopper in the description, as the platform logs them). Amounts are the balance effect of domain/movement.ts
// (the platform's sign: negative = spend); a deduction shows when it happens, a refund as its own row, a capture not at
// all (it changes no balance). Exactly once: each platform row carries `ledger_event_id` (unique), inserted with
// ON CONFLICT DO NOTHING in the same transaction as the checkpoint; a rebuild retracts the rows that have one and
// publishes them again, never touching the platform's own rows (ledger_event_id NULL).
import type { LedgerRecord } from '../app/recorded.ts';
import type { AccountEvent, GrantReason } from '../domain/events.ts';
import { assertNever } from '../domain/exhaustive.ts';
import { accountMovement, change } from '../domain/movement.ts';
import { accountIdOf, parseAccountId, type AccountKind } from '../domain/streams.ts';
import { byKey, compare, columnNames, type Drift, type Loose } from './drift.ts';
import { atOrBefore, iso, ownerColumns, type FoldResult, type Projection } from './projection.ts';
import type { ReadModel, Row } from './readModel.ts';
import { HISTORY, HISTORY_TABLES, HISTORY_TYPES, type HistoryTable } from './schema.ts';

type TypeOf<T extends HistoryTable> = (typeof HISTORY_TYPES)[T]['platform'][number] | (typeof HISTORY_TYPES)[T]['added'][number];
/** How one kind of movement shows: its type in each table, and the description's first words. */
interface Shows {
  b2c: TypeOf<'credit_transactions'>;
  b2b: TypeOf<'store_credit_transactions'>;
  text: string;
}

/** The type of the opening-balance line: kept by the projection (reconciliation), never published. */
export const OPENING_BALANCE = 'opening_balance';

/**
 * How a grant shows in the platform's history, by reason: the one table a new grant reason is added to (the compiler
 * asks). `null`: no platform row (an opening balance is the sum of the platform's own rows before the import).
 */
export const GRANT_SHOWS: Record<GrantReason, Shows | null> = {
  signup_bonus: { b2c: 'signup_bonus', b2b: 'adjustment', text: 'Welcome bonus' },
  purchase: { b2c: 'purchase', b2b: 'purchase', text: 'Credit purchase' },
  subscription: { b2c: 'subscription', b2b: 'subscription', text: 'Subscription credits' },
  opening_balance: null,
  adjustment: { b2c: 'adjustment', b2b: 'adjustment', text: 'Credit adjustment' },
  transfer_in: { b2c: 'transfer', b2b: 'transfer', text: 'Shopper credit purchase' },
};

/**
 * How a revocation shows, by its reason (free text in the ledger): the store leg of a shopper purchase is a
 * `deduction`, as the platform's process_store_shopper_purchase logs it; any other reason is an adjustment.
 */
export const REVOCATION_SHOWS: Readonly<Record<string, Shows>> = {
  transfer_out: { b2c: 'transfer', b2b: 'deduction', text: 'Shopper credit purchase' },
};
const REVOCATION_DEFAULT: Shows = { b2c: 'adjustment', b2b: 'adjustment', text: 'Credit adjustment' };

/** Generation movements, with the platform's own descriptions (producer and RPC defaults). */
const DEDUCTION_SHOWS = { b2c: 'generation', b2b: 'deduction', user: 'Virtual try-on generation', store: 'B2B generation', shopper: 'B2B shopper generation' } as const;
const REFUND_SHOWS = { b2c: 'refund', b2b: 'refund', user: 'Generation failed - refund', store: 'Generation failed - refund', shopper: 'B2B shopper generation failed - refund' } as const;

interface Line {
  platform_table: HistoryTable | null;
  type: string;
  description: string;
  request_id: string | null;
}

const tableOf = (kind: AccountKind): HistoryTable => (kind === 'user' ? 'credit_transactions' : 'store_credit_transactions');

/**
 * The platform row of one account event, or null (a capture). B2B `request_id` is the movement's key in its account:
 * the generation id of a deduction and its refund (the client's request id can repeat, and (store, request_id, type) is
 * unique in the platform's table), the reference of a grant or revocation.
 */
export function historyLine(kind: AccountKind, e: AccountEvent, shopperHash: string | null): Line | null {
  const side = kind === 'user' ? 'b2c' : 'b2b';
  const table = tableOf(kind);
  const shopper = shopperHash ? ` (shopper_hash=${shopperHash})` : '';
  const fromShows = (s: Shows, text: string, requestId: string): Line => ({
    platform_table: table,
    type: s[side],
    description: text + shopper,
    request_id: side === 'b2b' ? requestId : null,
  });
  switch (e.type) {
    case 'CreditsGranted': {
      const s = GRANT_SHOWS[e.data.reason];
      if (!s) return { platform_table: null, type: OPENING_BALANCE, description: `Opening balance (${e.data.reference})`, request_id: null };
      const text = e.data.reason === 'signup_bonus' ? `${s.text}: ${e.data.amount} free credits` : `${s.text} (${e.data.reference})`;
      return fromShows(s, text, e.data.reference);
    }
    case 'CreditsRevoked': {
      const s = Object.hasOwn(REVOCATION_SHOWS, e.data.reason) ? REVOCATION_SHOWS[e.data.reason]! : REVOCATION_DEFAULT;
      return fromShows(s, `${s.text} (${e.data.reference}: ${e.data.reason})`, e.data.reference);
    }
    case 'CreditDeducted':
      return {
        platform_table: table,
        type: DEDUCTION_SHOWS[side],
        description: (side === 'b2c' ? DEDUCTION_SHOWS.user : `${DEDUCTION_SHOWS[kind]} (request ${e.data.requestId})`) + shopper,
        request_id: side === 'b2b' ? e.data.generationId : null,
      };
    case 'CreditRefunded':
      return { platform_table: table, type: REFUND_SHOWS[side], description: REFUND_SHOWS[kind] + shopper, request_id: side === 'b2b' ? e.data.generationId : null };
    case 'CreditCaptured':
      return null;
    default:
      return assertNever(e, 'account event');
  }
}

export const creditHistory: Projection = {
  name: 'credit-history',
  state: HISTORY,
  publish: HISTORY_TABLES.map((t) => publishSql(t)),
  retract: HISTORY_TABLES.map((t) => `DELETE FROM ${t} WHERE ledger_event_id IS NOT NULL`),
  keyOf: (r) => (r.stream === 'account' ? r.recorded.id : null),
  reduce(prev, r) {
    // Keyed by event id: a line, once written, never changes.
    if (prev || r.stream !== 'account') return prev;
    const owner = ownerColumns(r.account);
    const line = historyLine(r.account.kind, r.event, owner.shopper_hash);
    if (!line) return prev;
    const e = r.recorded;
    return {
      event_id: e.id,
      global_commit: Number(e.position.commit),
      global_prepare: Number(e.position.prepare),
      account: owner.account,
      account_kind: r.account.kind,
      owner_id: owner.owner_id,
      ...line,
      amount: change(accountMovement(r.event), 'balance'),
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
 * history behind the ledger's back). `overage` rows are money, not credits (the platform moves no credit for them), and
 * are left out. Without an import (no opening balance anywhere) only this projection's rows count.
 */
async function reconcile(lines: FoldResult['rows'], readModel: ReadModel): Promise<Drift[]> {
  const expected = new Map<string, number>();
  const importedAt = new Map<string, number>();
  const accountOfEvent = new Map<string, string>();
  for (const [id, l] of lines) {
    const account = String(l.account).toLowerCase();
    accountOfEvent.set(id, account);
    if (l.type === OPENING_BALANCE) {
      const at = Date.parse(String(l.occurred_at));
      importedAt.set(account, Math.min(at, importedAt.get(account) ?? at));
      expected.set(account, expected.get(account) ?? 0);
    } else expected.set(account, (expected.get(account) ?? 0) + Number(l.amount));
  }
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

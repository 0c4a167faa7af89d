// Compares every read-model row with a fresh pure fold of the events (up to each projection's checkpoint, so lag is
// not drift): the projections' own tables completely, and the platform tables for every session/account the ledger knows.
import { START, comparePositions, type EventStore, type Position, type RecordedEvent } from '../app/ports/eventStore.ts';
import type { Logger } from '../logger.ts';
import { readAfter } from '../app/log.ts';
import { PROJECTIONS, PROJECTION_NAMES, fold, type FoldResult, type ProjectionName } from './projections.ts';
import type { ReadModel, TableSpec, Value } from './readModel.ts';

export interface Drift {
  projection: ProjectionName;
  table: string;
  /** row key: session id, account id, or ledger entry event id */
  key: string;
  account?: string;
  session?: string;
  kind: 'missing' | 'unexpected' | 'mismatch';
  column?: string;
  expected?: Value;
  actual?: Value;
}

const same = (a: Value | undefined, b: Value | undefined) => {
  if (a === null || a === undefined) return b === null || b === undefined;
  if (typeof a === 'number' || typeof b === 'number') return Number(a) === Number(b);
  if (typeof a === 'string' && typeof b === 'string' && /^\d{4}-\d\d-\d\dT/.test(a)) return Date.parse(a) === Date.parse(b);
  return a === b;
};

function compare(
  out: Drift[],
  projection: ProjectionName,
  table: string,
  expected: Map<string, Loose>,
  actual: Map<string, Loose>,
  columns: readonly string[],
  who: (key: string, row: Loose) => Pick<Drift, 'account' | 'session'>,
  reportUnexpected: boolean,
): void {
  for (const [key, exp] of expected) {
    const act = actual.get(key);
    if (!act) {
      out.push({ projection, table, key, kind: 'missing', ...who(key, exp) });
      continue;
    }
    for (const c of columns) {
      if (!same(exp[c], act[c])) out.push({ projection, table, key, kind: 'mismatch', column: c, expected: exp[c] ?? null, actual: act[c] ?? null, ...who(key, exp) });
    }
  }
  if (reportUnexpected) for (const [key, act] of actual) if (!expected.has(key)) out.push({ projection, table, key, kind: 'unexpected', ...who(key, act) });
}

type Loose = Record<string, Value | undefined>;
const byKey = (rows: Loose[], key: string | ((r: Loose) => string)) =>
  new Map(rows.map((r) => [typeof key === 'string' ? String(r[key]).toLowerCase() : key(r), r]));
const names = (t: TableSpec) => t.columns.map((c) => c.name);

export async function verifyReadModels(store: EventStore, readModel: ReadModel, logger: Logger): Promise<Drift[]> {
  const cps = new Map((await readModel.checkpoints()).map((c) => [c.projection, c.position]));
  const upTo = (n: string): Position => cps.get(n) ?? START;
  const folds = new Map<ProjectionName, FoldResult>(PROJECTION_NAMES.map((n) => [n, { rows: new Map(), entries: [] }]));
  const max = PROJECTION_NAMES.map(upTo).reduce((a, b) => (comparePositions(a, b) >= 0 ? a : b));
  let after: Position = START;
  for (;;) {
    const page: RecordedEvent[] = (await readAfter(store, after, 5000)).filter((e) => comparePositions(e.position, max) <= 0);
    if (page.length === 0) break;
    for (const n of PROJECTION_NAMES) {
      const limit = upTo(n);
      fold(PROJECTIONS[n], page.filter((e) => comparePositions(e.position, limit) <= 0), folds.get(n));
    }
    after = page[page.length - 1]!.position;
  }

  const drifts: Drift[] = [];
  // session-status
  const s = folds.get('session-status')!;
  const sp = PROJECTIONS['session-status'];
  const sessionWho = (k: string) => ({ session: k });
  const sRows = new Map([...s.rows].map(([k, v]) => [k.toLowerCase(), v]));
  compare(drifts, 'session-status', sp.state.name, sRows, byKey(await readModel.readAll(sp.state), 'session_id'), names(sp.state), sessionWho, true);
  const platformSession = (r: Loose) => ({ ...r, prompt_system: r.prompt, created_at: r.requested_at, credits_used: r.cost });
  const SESSION_COLS = ['status', 'error_message', 'generated_image_url', 'processing_time_ms', 'completed_at', 'input_tokens', 'output_tokens', 'estimated_cost_usd'];
  for (const [table, channel, owner] of [['generation_sessions', 'b2c', 'user_id'], ['store_generation_sessions', 'b2b', 'store_id']] as const) {
    const exp = new Map([...sRows].filter(([, r]) => r.channel === channel).map(([k, r]) => [k, { ...platformSession(r), [owner]: r.owner_id }]));
    const act = byKey(await readModel.query(`SELECT * FROM ${table}`), 'id');
    compare(drifts, 'session-status', table, exp, act, [...SESSION_COLS, owner], sessionWho, false);
  }

  // credit-balances
  const c = folds.get('credit-balances')!;
  const cp = PROJECTIONS['credit-balances'];
  const accountWho = (k: string) => ({ account: k });
  compare(drifts, 'credit-balances', cp.state.name, c.rows, byKey(await readModel.readAll(cp.state), 'account'), names(cp.state), accountWho, true);
  const entries = cp.entries!;
  compare(
    drifts,
    'credit-balances',
    entries.name,
    byKey(c.entries, 'event_id'),
    byKey(await readModel.readAll(entries), 'event_id'),
    names(entries),
    (_k, r) => ({ account: r.account as string }),
    true,
  );
  const acc: Loose[] = [...c.rows.values()];
  const expFor = (kind: string, key: (r: Loose) => string, spentCol: string, grantCol: string) =>
    new Map(acc.filter((r) => r.kind === kind).map((r) => [key(r), { account: r.account, balance: r.balance, [grantCol]: r.granted, [spentCol]: r.spent }]));
  const withAccount = (_k: string, r: Loose) => ({ account: r.account as string });
  compare(drifts, 'credit-balances', 'user_credits', expFor('user', (r) => String(r.owner_id).toLowerCase(), 'total_spent', 'total_earned'),
    byKey(await readModel.query('SELECT * FROM user_credits'), 'user_id'), ['balance', 'total_earned', 'total_spent'], withAccount, false);
  compare(drifts, 'credit-balances', 'store_credits', expFor('store', (r) => String(r.owner_id).toLowerCase(), 'total_spent', 'total_purchased'),
    byKey(await readModel.query('SELECT * FROM store_credits'), 'store_id'), ['balance', 'total_purchased', 'total_spent'], withAccount, false);
  const shopperKey = (r: Loose) => `${String(r.owner_id ?? r.store_id).toLowerCase()}.${String(r.shopper_hash)}`;
  compare(drifts, 'credit-balances', 'store_shopper_credits', expFor('shopper', shopperKey, 'total_spent', 'total_purchased'),
    byKey((await readModel.query('SELECT * FROM store_shopper_credits WHERE shopper_hash IS NOT NULL')).map((r) => ({ ...r, owner_id: r.store_id })), shopperKey),
    ['balance', 'total_purchased', 'total_spent'], withAccount, false);
  if (drifts.length) logger.warn({ drifts: drifts.length, first: drifts.slice(0, 5) }, 'read_model_drift');
  return drifts;
}

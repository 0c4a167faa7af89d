// credit-balances: one row per credit account (credit_accounts) and one ledger entry per movement (ledger_entries),
// published into the platform's user_credits, store_credits and store_shopper_credits. All arithmetic is the domain's
// (domain/movement.ts).
import { MOVEMENT_EFFECT, MOVEMENT_KIND, accountMovement, change, type MovementEffect } from '../domain/movement.ts';
import { byKey, compare, columnNames, type Drift, type Loose } from './drift.ts';
import { atOrBefore, iso, notApplied, ownerColumns, pos, type Projection } from './projection.ts';
import { ACCOUNT_STREAM_PREFIX, accountIdOf } from '../domain/streams.ts';
import { ACCOUNTS, LEDGER_ENTRIES, OPENING_TOTALS, PUBLISH_ACCOUNTS } from './schema.ts';

export const creditBalances: Projection = {
  name: 'credit-balances',
  state: ACCOUNTS,
  entries: LEDGER_ENTRIES,
  publish: PUBLISH_ACCOUNTS,
  reads: { streamPrefixes: [ACCOUNT_STREAM_PREFIX] },
  keyOf: (r) => (r.stream === 'account' ? accountIdOf(r.account) : null),
  reduce(prev, r, entries) {
    if (r.stream !== 'account' || (prev && notApplied(prev, r))) return prev;
    const e = r.recorded;
    const m = accountMovement(r.event);
    const balance = ((prev?.balance as number | undefined) ?? 0) + change(m, 'balance');
    const held = ((prev?.held as number | undefined) ?? 0) + change(m, 'held');
    const ref = r.account;
    const owner = ownerColumns(ref);
    const occurredAt = iso(e.metadata.occurredAt);
    entries.push({
      event_id: e.id,
      global_commit: Number(e.position.commit),
      global_prepare: Number(e.position.prepare),
      account: owner.account,
      account_kind: ref.kind,
      owner_id: owner.owner_id,
      event_type: r.event.type,
      amount: change(m, 'balance'),
      credits: m.credits,
      balance_after: balance,
      held_after: held,
      generation_id: m.generationId,
      reference: m.reference ?? m.requestId, // a hold's reference is the request that took it
      reason: m.reason,
      occurred_at: occurredAt,
    });
    return {
      account: owner.account,
      kind: ref.kind,
      owner_id: owner.owner_id,
      shopper_hash: owner.shopper_hash,
      balance,
      // the platform's total_earned / total_purchased and total_spent (domain/movement.ts)
      granted: ((prev?.granted as number | undefined) ?? 0) + change(m, 'earned'),
      spent: ((prev?.spent as number | undefined) ?? 0) + change(m, 'spent'),
      held,
      updated_at: occurredAt,
      ...pos(r),
    };
  },
  async seed(tx, shadow, from) {
    // Entries up to `from`; each account's totals are the sums of its movements, by the same table the reducer applies.
    const entries = shadow.entries!.name;
    await tx.exec(`INSERT INTO ${entries} SELECT * FROM ${LEDGER_ENTRIES.name} WHERE ${atOrBefore(from, 'global_commit', 'global_prepare')}`, null);
    const sum = (quantity: keyof MovementEffect) =>
      `SUM(CASE x.event_type ${Object.entries(MOVEMENT_KIND).map(([type, kind]) => `WHEN '${type}' THEN x.credits * ${MOVEMENT_EFFECT[kind][quantity]}`).join(' ')} ELSE 0 END)`;
    await tx.exec(
      `INSERT INTO ${shadow.state.name} (account, kind, owner_id, shopper_hash, balance, granted, spent, held, updated_at, last_commit, last_prepare)
       SELECT a.account, a.kind, a.owner_id, a.shopper_hash, ${sum('balance')}, ${sum('earned')}, ${sum('spent')}, ${sum('held')},
         MAX(x.occurred_at), MAX(x.global_commit), MAX(x.global_prepare)
       FROM ${entries} x JOIN ${ACCOUNTS.name} a ON a.account = x.account
       GROUP BY a.account, a.kind, a.owner_id, a.shopper_hash`,
      null,
    );
  },
  async verify(expected, readModel) {
    const drifts: Drift[] = [];
    const accountWho = (k: string) => ({ account: k });
    compare(drifts, 'credit-balances', ACCOUNTS.name, expected.rows, byKey(await readModel.readAll(ACCOUNTS), 'account'), columnNames(ACCOUNTS), accountWho, true);
    const withAccount = (_k: string, r: Loose) => ({ account: r.account as string });
    compare(drifts, 'credit-balances', LEDGER_ENTRIES.name, byKey(expected.entries, 'event_id'), byKey(await readModel.readAll(LEDGER_ENTRIES), 'event_id'),
      columnNames(LEDGER_ENTRIES), withAccount, true);
    // The platform tables: balance and totals of every account the ledger knows (totals continue from the import's).
    const acc: Loose[] = [...expected.rows.values()];
    const opening = byKey(await readModel.readAll(OPENING_TOTALS), 'account');
    const total = (r: Loose, column: 'earned' | 'spent') => Number(column === 'earned' ? r.granted : r.spent) + Number(opening.get(String(r.account))?.[column] ?? 0);
    const expFor = (kind: string, key: (r: Loose) => string, spentCol: string, grantCol: string) =>
      new Map(acc.filter((r) => r.kind === kind).map((r) => [key(r), { account: r.account, balance: r.balance, [grantCol]: total(r, 'earned'), [spentCol]: total(r, 'spent') }]));
    compare(drifts, 'credit-balances', 'user_credits', expFor('user', (r) => String(r.owner_id).toLowerCase(), 'total_spent', 'total_earned'),
      byKey(await readModel.query('SELECT * FROM user_credits'), 'user_id'), ['balance', 'total_earned', 'total_spent'], withAccount, false);
    compare(drifts, 'credit-balances', 'store_credits', expFor('store', (r) => String(r.owner_id).toLowerCase(), 'total_spent', 'total_purchased'),
      byKey(await readModel.query('SELECT * FROM store_credits'), 'store_id'), ['balance', 'total_purchased', 'total_spent'], withAccount, false);
    const shopperKey = (r: Loose) => `${String(r.owner_id ?? r.store_id).toLowerCase()}.${String(r.shopper_hash)}`;
    compare(drifts, 'credit-balances', 'store_shopper_credits', expFor('shopper', shopperKey, 'total_spent', 'total_purchased'),
      byKey((await readModel.query('SELECT * FROM store_shopper_credits WHERE shopper_hash IS NOT NULL')).map((r) => ({ ...r, owner_id: r.store_id })), shopperKey),
      ['balance', 'total_purchased', 'total_spent'], withAccount, false);
    return drifts;
  },
  async report(readModel, metrics) {
    // The one owner of wearon_credit_open_holds: credits held, summed over every account.
    const r = await readModel.query(`SELECT COALESCE(SUM(held), 0) AS held FROM ${ACCOUNTS.name}`);
    metrics.openHolds.set(Number(r[0]?.held ?? 0));
  },
};


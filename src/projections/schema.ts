// Tables and SQL shared by the Postgres and SQLite read models: the projections' own tables (state, ledger entries,
// checkpoints), the platform tables when a database lacks them, and the statements that publish projection state into
// the platform tables the web app reads. Written once with a few dialect tokens (renderSql).
import type { ColType, Dialect, TableSpec } from './readModel.ts';

/**
 * Credit columns (amounts, balances, holds, totals) are `integer`, as in the platform's credit tables: the ledger bounds
 * every such value by MAX_CREDITS = 2^31 - 1 (src/domain/account.ts), so each one fits exactly. Widening the bound
 * means widening these columns and the platform's together.
 */
const CREDITS: ColType = 'int';

export const SESSIONS: TableSpec = {
  name: 'projected_sessions',
  key: 'session_id',
  columns: [
    { name: 'session_id', type: 'text', notNull: true },
    { name: 'channel', type: 'text', notNull: true },
    { name: 'account', type: 'text', notNull: true },
    { name: 'owner_id', type: 'text', notNull: true },
    { name: 'shopper_hash', type: 'text' },
    { name: 'request_id', type: 'text' },
    { name: 'model_image_url', type: 'text', notNull: true },
    { name: 'outfit_image_url', type: 'text' },
    { name: 'prompt', type: 'text', notNull: true },
    { name: 'cost', type: CREDITS, notNull: true },
    { name: 'requested_at', type: 'ts', notNull: true },
    { name: 'status', type: 'text', notNull: true },
    { name: 'error_code', type: 'text' },
    { name: 'error_message', type: 'text' },
    { name: 'generated_image_url', type: 'text' },
    { name: 'input_tokens', type: 'int' },
    { name: 'output_tokens', type: 'int' },
    { name: 'estimated_cost_usd', type: 'float' },
    { name: 'processing_time_ms', type: 'int' },
    { name: 'completed_at', type: 'ts' },
    { name: 'last_commit', type: 'bigint', notNull: true },
    { name: 'last_prepare', type: 'bigint', notNull: true },
  ],
  /** outcomes per hour (the console's chart) */
  indexes: [['completed_at']],
};

export const ACCOUNTS: TableSpec = {
  name: 'credit_accounts',
  key: 'account',
  columns: [
    { name: 'account', type: 'text', notNull: true },
    { name: 'kind', type: 'text', notNull: true },
    { name: 'owner_id', type: 'text', notNull: true },
    { name: 'shopper_hash', type: 'text' },
    { name: 'balance', type: CREDITS, notNull: true },
    /** granted - revoked: total_earned / total_purchased */
    { name: 'granted', type: CREDITS, notNull: true },
    /** captured: total_spent */
    { name: 'spent', type: CREDITS, notNull: true },
    /** deducted and not yet captured or refunded */
    { name: 'held', type: CREDITS, notNull: true },
    { name: 'updated_at', type: 'ts', notNull: true },
    { name: 'last_commit', type: 'bigint', notNull: true },
    { name: 'last_prepare', type: 'bigint', notNull: true },
  ],
};

export const LEDGER_ENTRIES: TableSpec = {
  name: 'ledger_entries',
  key: 'event_id',
  columns: [
    { name: 'event_id', type: 'text', notNull: true },
    { name: 'global_commit', type: 'bigint', notNull: true },
    { name: 'global_prepare', type: 'bigint', notNull: true },
    { name: 'account', type: 'text', notNull: true },
    { name: 'account_kind', type: 'text', notNull: true },
    { name: 'owner_id', type: 'text', notNull: true },
    { name: 'event_type', type: 'text', notNull: true },
    /** signed effect on the balance: grant +, revoke -, deduct -, refund +, capture 0 */
    { name: 'amount', type: CREDITS, notNull: true },
    /** the event's own (unsigned) amount, e.g. what a capture made final */
    { name: 'credits', type: CREDITS, notNull: true },
    { name: 'balance_after', type: CREDITS, notNull: true },
    { name: 'held_after', type: CREDITS, notNull: true },
    { name: 'generation_id', type: 'text' },
    { name: 'reference', type: 'text' },
    { name: 'reason', type: 'text' },
    { name: 'occurred_at', type: 'ts', notNull: true },
  ],
  indexes: [['account', 'global_commit'], ['generation_id'], ['occurred_at']],
};

/**
 * credit-history: one line per credit movement that changes a balance (captures change none), keyed by the event id;
 * `platform_table` says where the line is published (NULL: an opening balance, which the platform's rows from before
 * the import already explain). See creditHistory.ts.
 */
export const HISTORY: TableSpec = {
  name: 'credit_history',
  key: 'event_id',
  columns: [
    { name: 'event_id', type: 'text', notNull: true },
    { name: 'global_commit', type: 'bigint', notNull: true },
    { name: 'global_prepare', type: 'bigint', notNull: true },
    { name: 'account', type: 'text', notNull: true },
    { name: 'account_kind', type: 'text', notNull: true },
    { name: 'owner_id', type: 'text', notNull: true },
    { name: 'platform_table', type: 'text' },
    /** the platform's type (its CHECK list, extended by HISTORY_TYPES), or `opening_balance` */
    { name: 'type', type: 'text', notNull: true },
    /** signed effect on the balance, the platform's sign convention (negative = spend) */
    { name: 'amount', type: CREDITS, notNull: true },
    { name: 'description', type: 'text', notNull: true },
    /** store_credit_transactions.request_id */
    { name: 'request_id', type: 'text' },
    { name: 'occurred_at', type: 'ts', notNull: true },
  ],
  /** replay --from seeds the lines up to a position */
  indexes: [['global_commit']],
};

/**
 * The platform's totals at import that the ledger's own do not count (import-balances writes them once per account):
 * `earned` = total_earned / total_purchased minus the opening grant, `spent` = total_spent minus the holds it
 * re-created. Published totals are the ledger's plus these, so they continue across the cut-over. Not a projection's
 * table: a rebuild keeps it.
 */
export const OPENING_TOTALS: TableSpec = {
  name: 'opening_totals',
  key: 'account',
  columns: [
    { name: 'account', type: 'text', notNull: true },
    { name: 'kind', type: 'text', notNull: true },
    { name: 'owner_id', type: 'text', notNull: true },
    { name: 'shopper_hash', type: 'text' },
    { name: 'earned', type: CREDITS, notNull: true },
    { name: 'spent', type: CREDITS, notNull: true },
    { name: 'recorded_at', type: 'ts', notNull: true },
  ],
};

/** Every table the projections own, and the import's opening totals (created by `migrate` in both read models). */
export const PROJECTION_TABLES: readonly TableSpec[] = [SESSIONS, ACCOUNTS, LEDGER_ENTRIES, HISTORY, OPENING_TOTALS];

/**
 * A rebuild's shadow table: same columns and key, no secondary indexes while the rebuild writes it (by key); the swap
 * renames it into the live table's place and gives it the live indexes (ReadModelTx.replaceTable). Logged in Postgres,
 * though a crash only restarts the rebuild: an unlogged one would have to be rewritten at the swap (SET LOGGED).
 */
export const shadowOf = (t: TableSpec): TableSpec => ({ ...t, name: `rebuild_${t.name}`, indexes: [] });

const PG_TYPES: Record<string, string> = { text: 'text', int: 'integer', bigint: 'bigint', float: 'double precision', ts: 'timestamptz' };
const SQLITE_TYPES: Record<string, string> = { text: 'TEXT', int: 'INTEGER', bigint: 'INTEGER', float: 'REAL', ts: 'TEXT' };
export const pgArrayType = (t: string) => `${PG_TYPES[t]}[]`;

export function tableDdl(d: Dialect, t: TableSpec): string[] {
  const types = d === 'postgres' ? PG_TYPES : SQLITE_TYPES;
  const cols = t.columns.map((c) => `${c.name} ${types[c.type]}${c.notNull ? ' NOT NULL' : ''}${c.name === t.key ? ' PRIMARY KEY' : ''}`);
  const out = [`CREATE TABLE IF NOT EXISTS ${t.name} (\n  ${cols.join(',\n  ')}\n)`];
  for (const idx of t.indexes ?? []) out.push(`CREATE INDEX IF NOT EXISTS ${t.name}_${idx.join('_')}_idx ON ${t.name} (${idx.join(', ')})`);
  // Supabase grants new public tables to anon/authenticated (PostgREST): RLS without policies keeps the service's own
  // tables (finance data) to the owner and the service role.
  if (d === 'postgres') out.push(`ALTER TABLE ${t.name} ENABLE ROW LEVEL SECURITY`);
  return out;
}

export const CHECKPOINTS_DDL = `CREATE TABLE IF NOT EXISTS projection_checkpoints (
  projection text PRIMARY KEY,
  commit_position bigint NOT NULL,
  prepare_position bigint NOT NULL,
  events bigint NOT NULL DEFAULT 0,
  updated_at {tstype},
  failure text
)`;

/** Checkpoint columns added after the first release (migrate adds them when missing). */
export const CHECKPOINT_COLUMNS: [string, string][] = [
  // JSON of the event the projection is stuck at (ProjectionFailure), NULL while it is not
  ['failure', 'text'],
];

/**
 * The platform tables (original-system.md §2.1, §3.1, §3.2) for databases that lack them (tests, embedded mode,
 * a fresh Postgres). Supabase has them already, with FKs to users/stores that are deliberately not created here.
 */
export const PLATFORM_DDL = [
  `CREATE TABLE IF NOT EXISTS user_credits (
  id {uuidpk},
  user_id {uuid} NOT NULL UNIQUE,
  balance integer NOT NULL DEFAULT 10 CHECK (balance >= 0),
  total_earned integer DEFAULT 10,
  total_spent integer DEFAULT 0,
  updated_at {tstype} DEFAULT {now}
)`,
  `CREATE TABLE IF NOT EXISTS store_credits (
  id {uuidpk},
  store_id {uuid} NOT NULL UNIQUE,
  balance integer NOT NULL DEFAULT 0 CHECK (balance >= 0),
  total_purchased integer NOT NULL DEFAULT 0,
  total_spent integer NOT NULL DEFAULT 0,
  updated_at {tstype} DEFAULT {now}
)`,
  `CREATE TABLE IF NOT EXISTS store_shopper_credits (
  id {uuidpk},
  store_id {uuid} NOT NULL,
  shopper_email text NOT NULL,
  balance integer NOT NULL DEFAULT 0 CHECK (balance >= 0),
  total_purchased integer NOT NULL DEFAULT 0,
  total_spent integer NOT NULL DEFAULT 0,
  created_at {tstype} DEFAULT {now},
  updated_at {tstype} DEFAULT {now},
  UNIQUE (store_id, shopper_email)
)`,
  `CREATE TABLE IF NOT EXISTS credit_transactions (
  id {uuidpk},
  user_id {uuid} NOT NULL,
  amount integer NOT NULL,
  type text NOT NULL CONSTRAINT credit_transactions_type_check CHECK (type IN ({types:credit_transactions})),
  description text,
  created_at {tstype} DEFAULT {now}
)`,
  `CREATE TABLE IF NOT EXISTS store_credit_transactions (
  id {uuidpk},
  store_id {uuid} NOT NULL,
  amount integer NOT NULL,
  type text NOT NULL CONSTRAINT store_credit_transactions_type_check CHECK (type IN ({types:store_credit_transactions})),
  request_id text,
  description text,
  created_at {tstype} NOT NULL DEFAULT {now},
  CONSTRAINT unique_credit_transaction_request UNIQUE (store_id, request_id, type)
)`,
  `CREATE TABLE IF NOT EXISTS generation_sessions (
  id {uuidpk},
  user_id {uuid} NOT NULL,
  status text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'pending', 'processing', 'completed', 'failed')),
  model_image_url text NOT NULL,
  outfit_image_url text,
  accessories {json} DEFAULT '[]',
  stitched_image_url text,
  prompt_system text NOT NULL,
  prompt_user text,
  generated_image_url text,
  credits_used integer DEFAULT 1,
  error_message text,
  processing_time_ms integer,
  created_at {tstype} DEFAULT {now},
  completed_at {tstype},
  input_tokens integer,
  output_tokens integer,
  estimated_cost_usd {numeric}
)`,
  `CREATE TABLE IF NOT EXISTS store_generation_sessions (
  id {uuidpk},
  store_id {uuid} NOT NULL,
  shopper_email text,
  status text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'processing', 'completed', 'failed')),
  model_image_url text NOT NULL,
  outfit_image_url text,
  prompt_system text NOT NULL,
  prompt_user text,
  generated_image_url text,
  credits_used integer NOT NULL DEFAULT 1,
  error_message text,
  processing_time_ms integer,
  request_id text,
  created_at {tstype} NOT NULL DEFAULT {now},
  completed_at {tstype},
  input_tokens integer,
  output_tokens integer,
  estimated_cost_usd {numeric}
)`,
];

/** Columns the projections write that older platform schemas may lack: added when missing, nothing else is altered. */
export const PLATFORM_COLUMNS: Record<string, [string, string][]> = {
  generation_sessions: [
    ['completed_at', '{tstype}'],
    ['input_tokens', 'integer'],
    ['output_tokens', 'integer'],
    ['estimated_cost_usd', '{numeric}'],
    ['processing_time_ms', 'integer'],
  ],
  store_generation_sessions: [
    ['completed_at', '{tstype}'],
    ['input_tokens', 'integer'],
    ['output_tokens', 'integer'],
    ['estimated_cost_usd', '{numeric}'],
    ['processing_time_ms', 'integer'],
    ['request_id', 'text'],
  ],
  // Shopper pools are keyed by (store, email hash) in the ledger; plain emails never enter it.
  store_shopper_credits: [['shopper_hash', 'text']],
  // History rows the credit-history projection wrote: the ledger event each one shows (exactly once, rebuildable).
  credit_transactions: [['ledger_event_id', 'text']],
  store_credit_transactions: [['ledger_event_id', 'text']],
};

export const PLATFORM_INDEXES = [
  'CREATE UNIQUE INDEX IF NOT EXISTS store_shopper_credits_store_hash_key ON store_shopper_credits (store_id, shopper_hash)',
];

/**
 * The `type` values of the platform's history tables: its own CHECK lists (original-system.md §2.1) and the ones
 * the credit-history projection adds (creditHistory.ts). `migrate` extends an existing CHECK that lacks one of them.
 */
export const HISTORY_TYPES = {
  credit_transactions: { platform: ['signup_bonus', 'generation', 'refund'], added: ['purchase', 'subscription', 'adjustment', 'transfer'] },
  store_credit_transactions: { platform: ['deduction', 'refund', 'purchase', 'subscription', 'overage'], added: ['adjustment', 'transfer'] },
} as const;
export type HistoryTable = keyof typeof HISTORY_TYPES;
export const HISTORY_TABLES = Object.keys(HISTORY_TYPES) as HistoryTable[];

/** One history row per ledger event: the conflict target of credit-history's inserts (after PLATFORM_COLUMNS). */
export const HISTORY_INDEXES = HISTORY_TABLES.map((t) => `CREATE UNIQUE INDEX IF NOT EXISTS ${t}_ledger_event_id_key ON ${t} (ledger_event_id)`);
const typeList = (t: HistoryTable) => [...HISTORY_TYPES[t].platform, ...HISTORY_TYPES[t].added].map((v) => `'${v}'`).join(', ');
const platformTypeList = (t: HistoryTable) => HISTORY_TYPES[t].platform.map((v) => `'${v}'`).join(', ');

/** Extends a history table's type CHECK to HISTORY_TYPES (migrate runs it only when the existing CHECK lacks one). */
export const historyTypeCheckSql = (t: HistoryTable, table: string = t) =>
  `ALTER TABLE ${table} DROP CONSTRAINT IF EXISTS ${t}_type_check, ADD CONSTRAINT ${t}_type_check CHECK (type IN (${typeList(t)}))`;

/**
 * The platform changes credit-history needs, as statements a Supabase migration can hold (`up`, and `down` to undo
 * them). `migrate` applies the same changes when missing (PLATFORM_COLUMNS, HISTORY_INDEXES, historyTypeCheckSql).
 * The down restores the platform's CHECK as NOT VALID: rows of the added types already written stay, new ones are
 * refused.
 */
export function historyPlatformMigration(): { up: string[]; down: string[] } {
  const up: string[] = [];
  const down: string[] = [];
  for (const t of HISTORY_TABLES) {
    up.push(
      `ALTER TABLE public.${t} ADD COLUMN IF NOT EXISTS ledger_event_id text`,
      `CREATE UNIQUE INDEX IF NOT EXISTS ${t}_ledger_event_id_key ON public.${t} (ledger_event_id)`,
      historyTypeCheckSql(t, `public.${t}`),
    );
    down.push(
      `DROP INDEX IF EXISTS public.${t}_ledger_event_id_key`,
      `ALTER TABLE public.${t} DROP COLUMN IF EXISTS ledger_event_id`,
      `ALTER TABLE public.${t} DROP CONSTRAINT IF EXISTS ${t}_type_check, ADD CONSTRAINT ${t}_type_check CHECK (type IN (${platformTypeList(t)})) NOT VALID`,
    );
  }
  return { up, down };
}

/**
 * `DO UPDATE` of an upsert into a platform table: `cols` from the new row, skipped when that would change none of them.
 * A rebuild republishes every row, nearly all as they already are: an update of those would leave a dead row, fire the
 * platform's triggers and send each to the web app through Realtime, for nothing.
 */
const updateChanged = (table: string, cols: readonly string[]) =>
  `DO UPDATE SET ${cols.map((c) => `${c} = excluded.${c}`).join(', ')}
     WHERE (${cols.map((c) => `${table}.${c}`).join(', ')}) IS DISTINCT FROM (${cols.map((c) => `excluded.${c}`).join(', ')})`;

/** The session columns the ledger decides (the rest are the web app's or fixed at insert). */
const SESSION_OUTCOME = ['status', 'generated_image_url', 'error_message', 'processing_time_ms', 'completed_at', 'input_tokens', 'output_tokens', 'estimated_cost_usd'];

/** Publishes session state into the web app's tables; only the columns the ledger decides are updated on conflict. */
export const PUBLISH_SESSIONS = [
  `INSERT INTO generation_sessions (id, user_id, status, model_image_url, outfit_image_url, prompt_system, credits_used,
     generated_image_url, error_message, processing_time_ms, created_at, completed_at, input_tokens, output_tokens, estimated_cost_usd)
   SELECT {uuid:s.session_id}, {uuid:s.owner_id}, s.status, s.model_image_url, s.outfit_image_url, s.prompt, s.cost,
     s.generated_image_url, s.error_message, s.processing_time_ms, s.requested_at, s.completed_at, s.input_tokens, s.output_tokens, s.estimated_cost_usd
   FROM {t:projected_sessions} s WHERE s.channel = 'b2c' AND {keys:s.session_id}
   ON CONFLICT (id) ${updateChanged('generation_sessions', SESSION_OUTCOME)}`,
  `INSERT INTO store_generation_sessions (id, store_id, shopper_email, status, model_image_url, outfit_image_url, prompt_system,
     credits_used, generated_image_url, error_message, processing_time_ms, request_id, created_at, completed_at, input_tokens,
     output_tokens, estimated_cost_usd)
   SELECT {uuid:s.session_id}, {uuid:s.owner_id}, NULL, s.status, s.model_image_url, s.outfit_image_url, s.prompt,
     s.cost, s.generated_image_url, s.error_message, s.processing_time_ms, s.request_id, s.requested_at, s.completed_at, s.input_tokens,
     s.output_tokens, s.estimated_cost_usd
   FROM {t:projected_sessions} s WHERE s.channel = 'b2b' AND {keys:s.session_id}
   ON CONFLICT (id) ${updateChanged('store_generation_sessions', [...SESSION_OUTCOME, 'request_id'])}`,
];

/** Publishes account state: balance, earned/purchased (grants - revocations), spent (captures), each total continuing
 * from the platform's at import (opening_totals). */
export const PUBLISH_ACCOUNTS = [
  `INSERT INTO user_credits (user_id, balance, total_earned, total_spent, updated_at)
   SELECT {uuid:a.owner_id}, a.balance, a.granted + COALESCE(o.earned, 0), a.spent + COALESCE(o.spent, 0), a.updated_at
   FROM {t:credit_accounts} a LEFT JOIN opening_totals o ON o.account = a.account
   WHERE a.kind = 'user' AND {keys:a.account}
   ON CONFLICT (user_id) ${updateChanged('user_credits', ['balance', 'total_earned', 'total_spent', 'updated_at'])}`,
  `INSERT INTO store_credits (store_id, balance, total_purchased, total_spent, updated_at)
   SELECT {uuid:a.owner_id}, a.balance, a.granted + COALESCE(o.earned, 0), a.spent + COALESCE(o.spent, 0), a.updated_at
   FROM {t:credit_accounts} a LEFT JOIN opening_totals o ON o.account = a.account
   WHERE a.kind = 'store' AND {keys:a.account}
   ON CONFLICT (store_id) ${updateChanged('store_credits', ['balance', 'total_purchased', 'total_spent', 'updated_at'])}`,
  // A shopper row the platform created has the plain email and, after import-balances, its hash; a pool first seen in
  // the ledger gets the hash in shopper_email too (NOT NULL, and the plain email is unknown by design).
  `INSERT INTO store_shopper_credits (store_id, shopper_email, shopper_hash, balance, total_purchased, total_spent, updated_at)
   SELECT {uuid:a.owner_id}, a.shopper_hash, a.shopper_hash, a.balance, a.granted + COALESCE(o.earned, 0), a.spent + COALESCE(o.spent, 0),
     a.updated_at
   FROM {t:credit_accounts} a LEFT JOIN opening_totals o ON o.account = a.account
   WHERE a.kind = 'shopper' AND {keys:a.account}
   ON CONFLICT (store_id, shopper_hash) ${updateChanged('store_shopper_credits', ['balance', 'total_purchased', 'total_spent', 'updated_at'])}`,
];

export interface SqlRender {
  keys: (col: string) => string;
  all: string;
  uuid: (expr: string) => string;
  ts: (expr: string) => string;
  now: string;
}

/** Expands the dialect tokens: `{keys:col}`, `{uuid:expr}`, `{ts:expr}`, `{now}`, `{t:table}` (shadow mapping). */
export function renderSql(sql: string, r: SqlRender, keys: boolean, tables: Record<string, string> = {}): string {
  return sql
    .replace(/\{keys:([^}]+)\}/g, (_, c: string) => (keys ? r.keys(c) : r.all))
    .replace(/\{uuid:([^}]+)\}/g, (_, e: string) => r.uuid(e))
    .replace(/\{ts:([^}]+)\}/g, (_, e: string) => r.ts(e))
    .replace(/\{t:([^}]+)\}/g, (_, t: string) => tables[t] ?? t)
    .replace(/\{now\}/g, r.now);
}

export function renderDdl(sql: string, d: Dialect): string {
  const pg = d === 'postgres';
  return sql
    .replace(/\{uuidpk\}/g, pg ? 'uuid PRIMARY KEY DEFAULT gen_random_uuid()' : "TEXT PRIMARY KEY DEFAULT (lower(hex(randomblob(16))))")
    .replace(/\{uuid\}/g, pg ? 'uuid' : 'TEXT')
    .replace(/\{tstype\}/g, pg ? 'timestamptz' : 'TEXT')
    .replace(/\{json\}/g, pg ? 'jsonb' : 'TEXT')
    .replace(/\{numeric\}/g, pg ? 'numeric(10,6)' : 'REAL')
    .replace(/\{now\}/g, pg ? 'now()' : "(strftime('%Y-%m-%dT%H:%M:%fZ','now'))")
    .replace(/\{types:([a-z_]+)\}/g, (_, t: HistoryTable) => typeList(t));
}

// The bridge as SQL: what `wearon migrate --install-bridge` runs in the platform's database and `--print-sql` prints
// as a Supabase CLI migration file (docs/platform-adoption.md). It is a list of pieces: the inbox (always first), then
// one piece per bridged platform path. A piece names the platform functions it replaces: the up migration saves their
// definitions as deployed (pg_get_functiondef) before replacing them, and the down migration re-executes what it
// saved, so no platform SQL is copied into this repository and a rollback restores exactly what was there.
import { PLATFORM_COLUMNS, PLATFORM_INDEXES, historyPlatformMigration, renderDdl } from '../projections/schema.ts';
import { CHARGE_WINDOW_MS } from '../domain/account.ts';
import { CREDIT_PATHS, SESSION_OWNERSHIP } from './creditPaths.ts';
import { STORE_BILLING } from './storeBilling.ts';

import type { BridgePiece } from './piece.ts';

/** The channel the worker LISTENs on; the payload is the inbox id. */
export const INBOX_CHANNEL = 'wearon_credit_inbox';

/** The generation's charge window (CHARGE_WINDOW_MS): a queued session older than this is never charged any more. */
const CHARGE_WINDOW = `interval '${CHARGE_WINDOW_MS / 1000} seconds'`;

const INBOX: BridgePiece = {
  name: 'inbox',
  replaces: [],
  up: `CREATE SCHEMA IF NOT EXISTS wearon;
GRANT USAGE ON SCHEMA wearon TO PUBLIC;

-- Every credit movement the platform's code asks for, recorded in the same transaction as the platform's own change.
-- The worker applies each command to the ledger exactly once and records what became of it.
CREATE TABLE IF NOT EXISTS wearon.credit_inbox (
  id bigserial PRIMARY KEY,
  type text NOT NULL,
  payload jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  processed_at timestamptz,
  outcome text CHECK (outcome IN ('applied', 'rejected', 'ignored')),
  reason text,
  attempts integer NOT NULL DEFAULT 0,
  last_error text,
  CONSTRAINT credit_inbox_outcome_when_processed CHECK ((processed_at IS NULL) = (outcome IS NULL)),
  CONSTRAINT credit_inbox_reason_unless_applied CHECK (outcome IS NULL OR outcome = 'applied' OR reason IS NOT NULL)
);
CREATE INDEX IF NOT EXISTS credit_inbox_pending_idx ON wearon.credit_inbox (id) WHERE processed_at IS NULL;
CREATE INDEX IF NOT EXISTS credit_inbox_type_created_idx ON wearon.credit_inbox (type, created_at);
ALTER TABLE wearon.credit_inbox ENABLE ROW LEVEL SECURITY;

-- The platform's function definitions as they were before the bridge replaced them (the down migration's source).
CREATE TABLE IF NOT EXISTS wearon.replaced_functions (
  signature text PRIMARY KEY,
  definition text NOT NULL,
  saved_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE wearon.replaced_functions ENABLE ROW LEVEL SECURITY;

-- Records one command; p_ignored_reason records a call that moves nothing (audit) as already processed.
CREATE OR REPLACE FUNCTION wearon.record_credit_command(p_type text, p_payload jsonb, p_ignored_reason text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id bigint;
BEGIN
  -- A user's or an anonymous API call (PostgREST sets the JWT's role) may only leave an audit row: credit-moving
  -- commands come from the platform's server side (service role, triggers) alone.
  IF coalesce(nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role', '') IN ('anon', 'authenticated')
     AND p_ignored_reason IS NULL THEN
    RAISE EXCEPTION 'wearon bridge: a % command cannot be recorded by an end user''s request', p_type USING ERRCODE = '42501';
  END IF;
  IF p_ignored_reason IS NULL THEN
    INSERT INTO wearon.credit_inbox (type, payload) VALUES (p_type, p_payload) RETURNING id INTO v_id;
    -- Delivered at commit, so the worker never sees a command of a transaction that rolled back.
    PERFORM pg_notify('${INBOX_CHANNEL}', v_id::text);
  ELSE
    INSERT INTO wearon.credit_inbox (type, payload, processed_at, outcome, reason)
    VALUES (p_type, p_payload, now(), 'ignored', p_ignored_reason) RETURNING id INTO v_id;
  END IF;
  RETURN v_id;
END
$$;

-- Whether a command for this account and reference is already in the inbox (a redelivered grant is recorded once).
CREATE OR REPLACE FUNCTION wearon.command_recorded(p_type text, p_account text, p_reference text)
RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
  SELECT EXISTS (SELECT 1 FROM wearon.credit_inbox i
                 WHERE i.type = p_type AND i.payload ->> 'account' = p_account AND i.payload ->> 'reference' = p_reference);
$$;

-- Credits an owner has been promised but the ledger has not taken yet: its queued sessions still within the charge
-- window that hold nothing in the ledger, and (a store) transfers still waiting in the inbox. A check subtracts them
-- from the published balance (which already excludes what the ledger holds).
CREATE OR REPLACE FUNCTION wearon.promised_credits(p_kind text, p_owner uuid, p_shopper_email text DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_sessions integer := 0;
  v_transfers integer := 0;
BEGIN
  IF to_regclass('public.ledger_entries') IS NULL THEN
    RETURN 0;
  END IF;
  IF p_kind = 'user' THEN
    SELECT coalesce(sum(coalesce(s.credits_used, 1)), 0) INTO v_sessions FROM public.generation_sessions s
    WHERE s.user_id = p_owner AND s.status IN ('queued', 'pending') AND s.created_at > now() - ${CHARGE_WINDOW}
      AND NOT EXISTS (SELECT 1 FROM public.ledger_entries e WHERE e.generation_id = s.id::text AND e.event_type = 'CreditDeducted');
  ELSE
    SELECT coalesce(sum(s.credits_used), 0) INTO v_sessions FROM public.store_generation_sessions s
    WHERE s.store_id = p_owner AND s.status = 'queued' AND s.created_at > now() - ${CHARGE_WINDOW}
      AND (CASE WHEN p_kind = 'shopper' THEN lower(trim(s.shopper_email)) = lower(trim(p_shopper_email)) ELSE s.shopper_email IS NULL END)
      AND NOT EXISTS (SELECT 1 FROM public.ledger_entries e WHERE e.generation_id = s.id::text AND e.event_type = 'CreditDeducted');
    IF p_kind = 'store' THEN
      SELECT coalesce(sum((i.payload ->> 'amount')::integer), 0) INTO v_transfers FROM wearon.credit_inbox i
      WHERE i.processed_at IS NULL AND i.type = 'transfer' AND i.payload ->> 'from' = 'store:' || p_owner::text;
    END IF;
  END IF;
  RETURN v_sessions + v_transfers;
END
$$;`,
  down: `DROP FUNCTION IF EXISTS wearon.promised_credits(text, uuid, text);
DROP FUNCTION IF EXISTS wearon.command_recorded(text, text, text);
DROP FUNCTION IF EXISTS wearon.record_credit_command(text, jsonb, text);`,
};

/** Every piece, in install order (the inbox first). A new bridged path is one more module's pieces here. */
export const BRIDGE_PIECES: readonly BridgePiece[] = [INBOX, ...CREDIT_PATHS, SESSION_OWNERSHIP, STORE_BILLING];

const quote = (s: string) => `'${s.replace(/'/g, "''")}'`;

/**
 * What the bridged functions read besides the platform's tables: the shopper hash column `wearon migrate` adds too;
 * and what credit-history writes: `ledger_event_id` on the history tables and their extended type CHECKs.
 */
function readModelColumns(): string {
  const shopper = (PLATFORM_COLUMNS.store_shopper_credits ?? []).map(([c, t]) => `ALTER TABLE public.store_shopper_credits ADD COLUMN IF NOT EXISTS ${c} ${renderDdl(t, 'postgres')};`);
  const history = historyPlatformMigration().up.map((s) => `${s};`);
  return [...shopper, ...PLATFORM_INDEXES.map((i) => `${renderDdl(i, 'postgres')};`), ...history].join('\n');
}

/** The up migration: inbox, saved definitions, replacement bodies. Idempotent: a second run changes nothing. */
export function bridgeUpSql(pieces: readonly BridgePiece[] = BRIDGE_PIECES): string {
  const saved = pieces.flatMap((p) => p.replaces);
  const save = saved.length
    ? `-- Save the platform's definitions before replacing them (kept from the first install: a re-install never saves a bridge body).
DO $$
DECLARE
  v_signature text;
BEGIN
  FOREACH v_signature IN ARRAY ARRAY[${saved.map(quote).join(', ')}] LOOP
    IF to_regprocedure(v_signature) IS NULL THEN
      RAISE EXCEPTION 'wearon bridge: platform function % not found; this bridge is written for the platform schema after migration 023', v_signature;
    END IF;
    INSERT INTO wearon.replaced_functions (signature, definition)
    VALUES (v_signature, pg_get_functiondef(to_regprocedure(v_signature)))
    ON CONFLICT (signature) DO NOTHING;
  END LOOP;
END
$$;`
    : '';
  const [inbox, ...rest] = pieces;
  return [
    `-- ---- ${inbox!.name}\n${inbox!.up}`,
    `-- ---- columns the bridge reads\n${readModelColumns()}`,
    save,
    ...rest.map((p) => `-- ---- ${p.name}\n${p.up}`),
  ].filter(Boolean).join('\n\n') + '\n';
}

/** The down migration: refuses while commands are pending, restores every saved definition, drops the bridge's helpers. */
export function bridgeDownSql(pieces: readonly BridgePiece[] = BRIDGE_PIECES): string {
  return [
    `-- Commands not yet applied would be lost: let the worker drain the inbox first.
DO $$
BEGIN
  IF to_regclass('wearon.credit_inbox') IS NOT NULL AND EXISTS (SELECT 1 FROM wearon.credit_inbox WHERE processed_at IS NULL) THEN
    RAISE EXCEPTION 'wearon bridge: % inbox command(s) not yet applied; keep the worker running until none is pending',
      (SELECT count(*) FROM wearon.credit_inbox WHERE processed_at IS NULL);
  END IF;
END
$$;`,
    ...[...pieces].reverse().map((p) => `-- ---- ${p.name}\n${p.down}`),
    `-- Restore the platform's own definitions.
DO $$
DECLARE
  v_saved record;
BEGIN
  IF to_regclass('wearon.replaced_functions') IS NOT NULL THEN
    FOR v_saved IN SELECT definition FROM wearon.replaced_functions LOOP
      EXECUTE v_saved.definition;
    END LOOP;
  END IF;
END
$$;
DROP TABLE IF EXISTS wearon.replaced_functions;
-- wearon.credit_inbox stays: it is the audit trail of every command the platform recorded (drop it when finance is done).
-- The history columns stay too: the rows written since the cut-over are real history, the extended CHECKs accept them,
-- and the worker's credit-history projector needs ledger_event_id while it runs. Once it is stopped for good:
${historyPlatformMigration().down.map((s) => `--   ${s};`).join('\n')}`,
  ].join('\n\n') + '\n';
}

/** A Supabase CLI migration file (`supabase/migrations/<version>_wearon_bridge.sql`, or `_down` for the down one). */
export function migrationFile(direction: 'up' | 'down', now = new Date()): { name: string; sql: string } {
  const version = now.toISOString().replace(/[-:T]/g, '').slice(0, 14);
  const name = `${version}_wearon_bridge${direction === 'down' ? '_down' : ''}.sql`;
  const header = [
    `-- supabase/migrations/${name}`,
    `-- The wearon ledger bridge (${direction}), generated by \`wearon migrate --print-sql${direction === 'down' ? ' --down' : ''}\`.`,
    direction === 'up'
      ? '-- Every credit function of the platform keeps its name, signature and return value; its body records a command in\n-- wearon.credit_inbox, which the wearon worker applies to the ledger. See docs/platform-adoption.md.'
      : '-- Restores the platform credit functions saved by the up migration and removes the bridge (the inbox stays).',
  ].join('\n');
  return { name, sql: `${header}\n\n${direction === 'up' ? bridgeUpSql() : bridgeDownSql()}` };
}

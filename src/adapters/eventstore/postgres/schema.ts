// The Postgres event store's own schema: one events table and the append function, in a schema of their own
// (default `wearon_events`). Versioned by a one-row table; `migratePgEventStore` brings a database up to STORE_VERSION
// idempotently (serialised by an advisory lock) and is what opening a store, or `wearon migrate`, runs.
//
// Global order: an event's position is (transaction_id, seq): the xid8 of the appending transaction, then the identity
// value. Readers of the global log only see rows whose transaction_id is below the xmin of their snapshot, i.e. rows of
// transactions that had finished before any still-running one began, so what a reader sees is always a prefix of the
// (transaction_id, seq) order: a transaction that commits late cannot land behind a position a reader already passed.
// docs/postgres-event-store.md explains the choice and its cost.
import type pg from 'pg';

export const STORE_VERSION = 1;
export const DEFAULT_SCHEMA = 'wearon_events';

/** Advisory-lock class of the per-stream append locks (two-int form: its own key space). 0x77656172 = 'wear'. */
const STREAM_LOCK_CLASS = 0x77656172;
/** Advisory-lock key of migrations (single-bigint form). */
const MIGRATE_LOCK = 0x7765_6172_6d69_67n; // 'wearmig'

/** Expected revisions as the append function takes them; numbers >= 0 are exact revisions. */
export const EXPECTED_CODE = { no_stream: -1, any: -2, stream_exists: -3 } as const;

/** SQLSTATE the append function raises when an event id is already used elsewhere. */
export const DUPLICATE_ID_STATE = 'WE422';

export function assertSchemaName(schema: string): string {
  if (!/^[a-z_][a-z0-9_]{0,47}$/.test(schema)) {
    throw new Error(`invalid event store schema name ${JSON.stringify(schema)}: lower-case letters, digits and _ (at most 48)`);
  }
  return schema;
}

/** The NOTIFY channel appends signal on (an identifier: schema names are checked above). */
export const channelOf = (schema: string) => `${schema}_appended`;

/** Statements of version 1, in order; each is idempotent. */
export function schemaDdl(schema: string): string[] {
  const s = assertSchemaName(schema);
  return [
    `CREATE SCHEMA IF NOT EXISTS ${s}`,
    `CREATE TABLE IF NOT EXISTS ${s}.store_version (
       id boolean PRIMARY KEY DEFAULT true CHECK (id),
       version integer NOT NULL,
       migrated_at timestamptz NOT NULL DEFAULT now()
     )`,
    // stream_id in "C" collation: byte order, so a LIKE 'prefix%' filter is an index range.
    `CREATE TABLE IF NOT EXISTS ${s}.events (
       transaction_id xid8 NOT NULL,
       seq bigint GENERATED ALWAYS AS IDENTITY,
       event_id uuid NOT NULL,
       stream_id text COLLATE "C" NOT NULL,
       revision bigint NOT NULL CHECK (revision >= 0),
       type text NOT NULL,
       data jsonb NOT NULL,
       metadata jsonb NOT NULL,
       recorded_at timestamptz NOT NULL DEFAULT now(),
       CONSTRAINT events_pkey PRIMARY KEY (transaction_id, seq),
       CONSTRAINT events_stream_revision_key UNIQUE (stream_id, revision),
       CONSTRAINT events_event_id_key UNIQUE (event_id)
     )`,
    // One round trip per append. The stream's advisory lock serialises its appenders, so the revision read stays true
    // until commit. (No NOTIFY in here: it would serialise every appending commit, see PgEventStore.announce.) A retry (same ids at the same place) answers 'replay' with the original
    // result and writes nothing. Expected: -1 no_stream, -2 any, -3 stream_exists, n >= 0 exact revision. Data and
    // metadata come as two JSON arrays, element i for event i.
    `CREATE OR REPLACE FUNCTION ${s}.append_events(
       p_stream text, p_expected bigint, p_ids uuid[], p_types text[], p_data jsonb, p_meta jsonb
     ) RETURNS TABLE (outcome text, stream_revision bigint, commit_position text, prepare_position bigint)
     LANGUAGE plpgsql
     -- a stream lock held by a transaction that never ends fails the append (55P03, retried) instead of hanging it
     SET lock_timeout = '10s'
     AS $fn$
     DECLARE
       v_n integer := coalesce(cardinality(p_ids), 0);
       v_current bigint;
       v_ok boolean;
       v_first ${s}.events%ROWTYPE;
       v_last ${s}.events%ROWTYPE;
       v_matched integer;
       v_missing uuid;
       v_tx xid8;
       v_count integer;
       v_seq bigint;
     BEGIN
       IF v_n = 0 THEN
         RAISE EXCEPTION 'append needs at least one event' USING ERRCODE = '22023';
       END IF;
       PERFORM pg_advisory_xact_lock(${STREAM_LOCK_CLASS}, hashtext(p_stream));
       SELECT max(e.revision) INTO v_current FROM ${s}.events e WHERE e.stream_id = p_stream;
       v_ok := CASE p_expected
         WHEN -2 THEN true
         WHEN -3 THEN v_current IS NOT NULL
         WHEN -1 THEN v_current IS NULL
         ELSE coalesce(p_expected = v_current, false)
       END;
       -- A failed check, or any/stream_exists (which a retry passes too), may be a retry: look for the first id.
       IF NOT v_ok OR p_expected < -1 THEN
         SELECT * INTO v_first FROM ${s}.events e WHERE e.event_id = p_ids[1];
         IF FOUND THEN
           IF v_first.stream_id = p_stream AND (p_expected < -1 OR v_first.revision = p_expected + 1) THEN
             SELECT count(*) INTO v_matched
               FROM unnest(p_ids) WITH ORDINALITY AS u(id, ord)
               JOIN ${s}.events e ON e.stream_id = p_stream AND e.revision = v_first.revision + u.ord - 1 AND e.event_id = u.id;
             IF v_matched = v_n THEN
               SELECT * INTO v_last FROM ${s}.events e WHERE e.stream_id = p_stream AND e.revision = v_first.revision + v_n - 1;
               RETURN QUERY SELECT 'replay'::text, v_last.revision, v_last.transaction_id::text, v_last.seq;
               RETURN;
             END IF;
             SELECT u.id INTO v_missing
               FROM unnest(p_ids) WITH ORDINALITY AS u(id, ord)
               LEFT JOIN ${s}.events e ON e.stream_id = p_stream AND e.revision = v_first.revision + u.ord - 1 AND e.event_id = u.id
              WHERE e.event_id IS NULL ORDER BY u.ord LIMIT 1;
             RAISE EXCEPTION 'event id % already used outside this append to %', v_missing, p_stream
               USING ERRCODE = '${DUPLICATE_ID_STATE}', DETAIL = v_missing::text;
           ELSIF v_first.stream_id = p_stream AND v_current IS NOT NULL THEN
             RETURN QUERY SELECT 'wrong'::text, v_current, NULL::text, NULL::bigint;
             RETURN;
           END IF;
           RAISE EXCEPTION 'event id % already used outside this append to %', p_ids[1], p_stream
             USING ERRCODE = '${DUPLICATE_ID_STATE}', DETAIL = p_ids[1]::text;
         END IF;
         IF NOT v_ok THEN
           RETURN QUERY SELECT 'wrong'::text, v_current, NULL::text, NULL::bigint;
           RETURN;
         END IF;
       END IF;
       v_tx := pg_current_xact_id();
       WITH ins AS (
         INSERT INTO ${s}.events (transaction_id, event_id, stream_id, revision, type, data, metadata)
         SELECT v_tx, u.id, p_stream, coalesce(v_current, -1) + u.ord, u.type, p_data -> (u.ord::int - 1), p_meta -> (u.ord::int - 1)
           FROM unnest(p_ids, p_types) WITH ORDINALITY AS u(id, type, ord)
          ORDER BY u.ord
         ON CONFLICT DO NOTHING
         RETURNING seq
       )
       SELECT count(*), max(ins.seq) INTO v_count, v_seq FROM ins;
       IF v_count < v_n THEN
         -- Our revisions are free while we hold the stream's lock, unless this transaction's snapshot is older than
         -- the lock (a caller in REPEATABLE READ): then a fresh attempt must decide (40001 is retried).
         IF EXISTS (SELECT 1 FROM ${s}.events e WHERE e.stream_id = p_stream AND e.revision = coalesce(v_current, -1) + 1 AND e.transaction_id <> v_tx) THEN
           RAISE EXCEPTION 'stream % moved under a stale snapshot; retry', p_stream USING ERRCODE = '40001';
         END IF;
         SELECT u.id INTO v_missing
           FROM unnest(p_ids) WITH ORDINALITY AS u(id, ord)
           JOIN ${s}.events e ON e.event_id = u.id AND e.transaction_id <> v_tx
          ORDER BY u.ord LIMIT 1;
         RAISE EXCEPTION 'event id % already used outside this append to %', v_missing, p_stream
           USING ERRCODE = '${DUPLICATE_ID_STATE}', DETAIL = coalesce(v_missing::text, '');
       END IF;
       RETURN QUERY SELECT 'ok'::text, coalesce(v_current, -1) + v_n, v_tx::text, v_seq;
     END
     $fn$`,
  ];
}

/** The version a database is at (0: no store there yet). Errs on nothing, so it can run inside a transaction. */
export async function storeVersion(c: pg.ClientBase, schema: string): Promise<number> {
  const table = `${assertSchemaName(schema)}.store_version`;
  const present = await c.query('SELECT to_regclass($1) IS NOT NULL AS present', [table]);
  if (!present.rows[0]?.present) return 0;
  const r = await c.query(`SELECT version FROM ${table}`);
  return r.rows[0] ? Number(r.rows[0].version) : 0;
}

/**
 * Brings the store's schema to STORE_VERSION; a no-op (one SELECT) when it is there already, so a runtime role that
 * may not run DDL can open a store an operator migrated ahead of time. Concurrent openers wait on one lock.
 */
export async function migratePgEventStore(c: pg.ClientBase, schema: string): Promise<{ from: number; to: number }> {
  const current = await storeVersion(c, schema);
  if (current === STORE_VERSION) return { from: current, to: current };
  if (current > STORE_VERSION) throw new Error(`event store schema ${schema} is at version ${current}, newer than this code (${STORE_VERSION})`);
  await c.query('BEGIN');
  try {
    await c.query('SELECT pg_advisory_xact_lock($1)', [MIGRATE_LOCK.toString()]);
    const locked = await storeVersion(c, schema); // another process may have migrated while we waited
    if (locked < STORE_VERSION) {
      for (const statement of schemaDdl(schema)) await c.query(statement);
      await c.query(
        `INSERT INTO ${schema}.store_version (version) VALUES ($1) ON CONFLICT (id) DO UPDATE SET version = excluded.version, migrated_at = now()`,
        [STORE_VERSION],
      );
    }
    await c.query('COMMIT');
    return { from: locked, to: STORE_VERSION };
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

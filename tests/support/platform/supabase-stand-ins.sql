-- The smallest stand-ins for what Supabase provides around the platform's schema, written for this test fixture from
-- the facts in /work/shared/reference/original-system.md (not copied from Supabase or the platform).
--
-- The roles anon, authenticated and service_role are cluster-wide: database.ts creates them once (race-safe) before
-- this script runs. Everything here is per database and dies with it.
--
-- What PostgREST does per request, and the driver emulates (rest.ts): `SET LOCAL ROLE <role>` and
-- `set_config('request.jwt.claims', <claims json>, true)`. auth.jwt() / auth.uid() read those claims, so the
-- platform's RLS policies (`auth.uid() = user_id`, `auth.jwt() ->> 'role' = 'service_role'`) work unchanged.

CREATE SCHEMA auth;

-- Only the columns the platform reads: handle_new_user takes id, email and raw_user_meta_data; 017 references id.
CREATE TABLE auth.users (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  email text,
  raw_user_meta_data jsonb NOT NULL DEFAULT '{}'::jsonb,
  raw_app_meta_data jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- NULL outside a request (like Supabase), so `auth.jwt() ->> 'role' = 'service_role'` is not true for a bare session.
CREATE FUNCTION auth.jwt() RETURNS jsonb
LANGUAGE sql STABLE
AS $$ SELECT nullif(current_setting('request.jwt.claims', true), '')::jsonb $$;

CREATE FUNCTION auth.uid() RETURNS uuid
LANGUAGE sql STABLE
AS $$ SELECT nullif(auth.jwt() ->> 'sub', '')::uuid $$;

CREATE FUNCTION auth.role() RETURNS text
LANGUAGE sql STABLE
AS $$ SELECT auth.jwt() ->> 'role' $$;

GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA auth TO anon, authenticated, service_role;

-- Supabase grants every object in `public` to the three API roles by default privileges; RLS (where a table has it)
-- is the only guard. Set before the platform's objects exist so they, and any table created later in this database
-- by the same owner (a worker's `migrate`), get the same grants as on Supabase.
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT EXECUTE ON FUNCTIONS TO anon, authenticated, service_role;

-- Realtime: migrations 001 and 006 add the session tables to this publication. The server's wal_level need not be
-- logical: the publication's membership is what the platform (and a test) can observe.
CREATE PUBLICATION supabase_realtime;

// What the platform's supabase-js calls amount to on the database, for the driver (driver.ts): each call is one
// PostgREST request, i.e. one transaction under the caller's role with the caller's JWT claims, answering
// `{ data, error }` (supabase-js does not throw on database errors; the platform's code checks `error` or not).
//
// Roles, as PostgREST sets them: the service-role key -> `service_role` (BYPASSRLS); a user's JWT -> `authenticated`
// with claims `{ sub, role, email }`, so RLS policies see auth.uid() = the user; no JWT -> `anon`.
import pg from 'pg';

export type Caller = { role: 'service_role' } | { role: 'authenticated'; userId: string; email?: string } | { role: 'anon' };

export const SERVICE_ROLE: Caller = { role: 'service_role' };
export const asUser = (userId: string, email?: string): Caller => ({ role: 'authenticated', userId, ...(email ? { email } : {}) });

/** PostgREST's error body: SQLSTATE for database errors, PGRSTnnn for its own. */
export interface RestError {
  code: string;
  message: string;
  details?: string;
  hint?: string;
}
export type RestResult<T> = { data: T; error: null } | { data: null; error: RestError };

type Row = Record<string, unknown>;

function claimsOf(caller: Caller): Record<string, unknown> {
  if (caller.role === 'authenticated') {
    return { sub: caller.userId, role: 'authenticated', aud: 'authenticated', ...(caller.email ? { email: caller.email } : {}) };
  }
  return { role: caller.role };
}

/** PostgREST's answer when `.single()` finds 0 or several rows. */
export const NOT_SINGLE = 'PGRST116';
class NotSingleError extends Error {}

function toRestError(e: unknown): RestError {
  if (e instanceof NotSingleError) return { code: NOT_SINGLE, message: e.message };
  if (e instanceof pg.DatabaseError) {
    return { code: e.code ?? 'XX000', message: e.message, ...(e.detail ? { details: e.detail } : {}), ...(e.hint ? { hint: e.hint } : {}) };
  }
  throw e; // not a database answer (connection lost, bug in the driver): let the test see it
}

export class PostgrestStandIn {
  constructor(
    private readonly pool: pg.Pool,
    readonly caller: Caller,
  ) {}

  /** One request: BEGIN, switch role and claims, run, COMMIT (ROLLBACK and `{ error }` on a database error). */
  async request<T>(run: (c: pg.PoolClient) => Promise<T>): Promise<RestResult<T>> {
    const c = await this.pool.connect();
    let broken: Error | undefined;
    try {
      const claims = c.escapeLiteral(JSON.stringify(claimsOf(this.caller)));
      await c.query(`BEGIN; SET LOCAL ROLE ${this.caller.role}; SELECT set_config('request.jwt.claims', ${claims}, true)`);
      try {
        const data = await run(c);
        await c.query('COMMIT');
        return { data, error: null };
      } catch (e) {
        await c.query('ROLLBACK');
        return { data: null, error: toRestError(e) };
      }
    } catch (e) {
      broken = e as Error; // the connection itself failed: do not return it to the pool
      throw e;
    } finally {
      c.release(broken);
    }
  }

  rows<R extends Row = Row>(sql: string, params: unknown[] = []): Promise<RestResult<R[]>> {
    return this.request(async (c) => (await c.query<R>(sql, params)).rows);
  }

  /** `.single()`: exactly one row, else PGRST116 (the statement's effects are rolled back, as PostgREST does). */
  async single<R extends Row = Row>(sql: string, params: unknown[] = []): Promise<RestResult<R>> {
    return this.request(async (c) => {
      const { rows } = await c.query<R>(sql, params);
      if (rows.length !== 1) throw new NotSingleError(`JSON object requested, multiple (or no) rows returned (${rows.length})`);
      return rows[0]!;
    });
  }

  /** `.maybeSingle()`: zero or one row. */
  async maybeSingle<R extends Row = Row>(sql: string, params: unknown[] = []): Promise<RestResult<R | null>> {
    return this.request(async (c) => {
      const { rows } = await c.query<R>(sql, params);
      if (rows.length > 1) throw new NotSingleError(`JSON object requested, multiple rows returned (${rows.length})`);
      return rows[0] ?? null;
    });
  }

  /**
   * `supabase.rpc(fn, args)` for a scalar function: named arguments, keys whose value is undefined are dropped (they
   * do not survive JSON), so a call with missing arguments fails to resolve, as it does through PostgREST.
   */
  async rpc<T = unknown>(fn: string, args: Record<string, unknown>): Promise<RestResult<T>> {
    const { sql, params } = rpcCall(fn, args, false);
    return this.request(async (c) => (await c.query<{ result: T }>(sql, params)).rows[0]!.result);
  }

  /** `supabase.rpc(fn, args)` for a set-returning function: the rows. */
  async rpcRows<R extends Row = Row>(fn: string, args: Record<string, unknown>): Promise<RestResult<R[]>> {
    const { sql, params } = rpcCall(fn, args, true);
    return this.request(async (c) => (await c.query<R>(sql, params)).rows);
  }
}

function rpcCall(fn: string, args: Record<string, unknown>, rows: boolean): { sql: string; params: unknown[] } {
  if (!/^[a-z_][a-z0-9_]*$/.test(fn)) throw new Error(`not a function name: ${fn}`);
  const entries = Object.entries(args).filter(([, v]) => v !== undefined);
  const params = entries.map(([, v]) => (v !== null && typeof v === 'object' ? JSON.stringify(v) : v));
  const named = entries.map(([k], i) => {
    if (!/^[a-z_][a-z0-9_]*$/.test(k)) throw new Error(`not an argument name: ${k}`);
    return `${k} => $${i + 1}`;
  });
  const call = `public.${fn}(${named.join(', ')})`;
  return { sql: rows ? `SELECT * FROM ${call}` : `SELECT ${call} AS result`, params };
}

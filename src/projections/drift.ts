// Differences between read-model rows and a fresh fold (`wearon verify`), and the comparison every projection's
// verify hook uses.
import type { ProjectionName } from './projection.ts';
import type { TableSpec, Value } from './readModel.ts';

export interface Drift {
  /** `bridge`: a platform command not applied (src/bridge/verify.ts) */
  projection: ProjectionName | 'bridge';
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

export function compare(
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

export type Loose = Record<string, Value | undefined>;
export const byKey = (rows: Loose[], key: string | ((r: Loose) => string)) =>
  new Map(rows.map((r) => [typeof key === 'string' ? String(r[key]).toLowerCase() : key(r), r]));
export const columnNames = (t: TableSpec) => t.columns.map((c) => c.name);


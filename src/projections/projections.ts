// The projections the service runs. A new read model is one more entry here (its module: reducer, tables, publish
// statements, seed, verify, and report when it exports gauges).
import type { RecordedEvent } from '../app/ports/eventStore.ts';
import { decodeRecorded } from '../app/recorded.ts';
import { creditBalances } from './creditBalances.ts';
import { creditHistory } from './creditHistory.ts';
import type { FoldResult, Projection, ProjectionName } from './projection.ts';
import { sessionStatus } from './sessionStatus.ts';

export type { FoldResult, Projection, ProjectionName } from './projection.ts';

export const PROJECTIONS: Record<ProjectionName, Projection> = {
  'session-status': sessionStatus,
  'credit-balances': creditBalances,
  'credit-history': creditHistory,
};

export const PROJECTION_NAMES = Object.keys(PROJECTIONS) as ProjectionName[];

export function projectionByName(name: string): Projection {
  const p = Object.hasOwn(PROJECTIONS, name) ? PROJECTIONS[name as ProjectionName] : undefined;
  if (!p) throw new Error(`unknown projection ${JSON.stringify(name)}; known: ${PROJECTION_NAMES.join(', ')}`);
  return p;
}

/** The pure fold: events (in log order) -> the rows a projection must hold. */
export function fold(p: Projection, events: Iterable<RecordedEvent>, into: FoldResult = { rows: new Map(), entries: [] }): FoldResult {
  for (const e of events) {
    const r = decodeRecorded(e);
    const key = r && p.keyOf(r);
    if (!r || key === null) continue;
    const prev = into.rows.get(key);
    const next = p.reduce(prev, r, into.entries);
    if (next && next !== prev) into.rows.set(key, next);
  }
  return into;
}

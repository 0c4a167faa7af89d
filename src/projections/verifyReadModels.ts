// Compares every read-model row with a fresh pure fold of the events (up to each projection's checkpoint, so lag is
// not drift): each projection's verify hook checks its own tables completely and the platform tables for every
// session/account the ledger knows.
import { START, comparePositions, type EventStore, type Position } from '../app/ports/eventStore.ts';
import type { Logger } from '../logger.ts';
import { readLog } from '../app/log.ts';
import { inboxDrifts } from '../bridge/verify.ts';
import type { Drift } from './drift.ts';
import { PROJECTIONS, PROJECTION_NAMES, fold, type FoldResult, type ProjectionName } from './projections.ts';
import type { ReadModel } from './readModel.ts';

export type { Drift } from './drift.ts';

export async function verifyReadModels(store: EventStore, readModel: ReadModel, logger: Logger): Promise<Drift[]> {
  const cps = new Map((await readModel.checkpoints()).map((c) => [c.projection, c.position]));
  const upTo = (n: string): Position => cps.get(n) ?? START;
  const folds = new Map<ProjectionName, FoldResult>(PROJECTION_NAMES.map((n) => [n, { rows: new Map(), entries: [] }]));
  const max = PROJECTION_NAMES.map(upTo).reduce((a, b) => (comparePositions(a, b) >= 0 ? a : b));
  for await (const page of readLog(store, { until: max, pageSize: 5000 })) {
    for (const n of PROJECTION_NAMES) {
      const limit = upTo(n);
      fold(PROJECTIONS[n], page.filter((e) => comparePositions(e.position, limit) <= 0), folds.get(n));
    }
  }
  const drifts: Drift[] = [];
  for (const n of PROJECTION_NAMES) drifts.push(...(await PROJECTIONS[n].verify(folds.get(n)!, readModel)));
  drifts.push(...(await inboxDrifts(readModel)));
  if (drifts.length) logger.warn({ drifts: drifts.length, first: drifts.slice(0, 5) }, 'read_model_drift');
  return drifts;
}

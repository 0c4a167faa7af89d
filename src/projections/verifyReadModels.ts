// Compares every read-model row with a fresh pure fold of the events (up to each projection's checkpoint, so lag is
// not drift): each projection's verify hook checks its own tables completely and the platform tables for every
// session/account the ledger knows. A projection that does not reach the head the log had when verify began (within
// `catchUpMs`), or that is stuck at an event, is a failure too, with how far behind it is and the event it stopped at.
import { START, comparePositions, formatPosition, type EventStore, type Position } from '../app/ports/eventStore.ts';
import type { Logger } from '../logger.ts';
import { readLog } from '../app/log.ts';
import { inboxDrifts } from '../bridge/verify.ts';
import type { Drift } from './drift.ts';
import { PROJECTIONS, PROJECTION_NAMES, fold, type FoldResult, type ProjectionName } from './projections.ts';
import type { Checkpoint, ReadModel } from './readModel.ts';

export type { Drift } from './drift.ts';

export interface VerifyReadModelsOptions {
  /** How long live projectors get to reach the head the log had when verify began (default 10 s). */
  catchUpMs?: number;
}

export async function verifyReadModels(store: EventStore, readModel: ReadModel, logger: Logger, options: VerifyReadModelsOptions = {}): Promise<Drift[]> {
  const drifts: Drift[] = await behind(store, readModel, options.catchUpMs ?? 10_000);
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
  for (const n of PROJECTION_NAMES) drifts.push(...(await PROJECTIONS[n].verify(folds.get(n)!, readModel)));
  drifts.push(...(await inboxDrifts(readModel)));
  if (drifts.length) logger.warn({ drifts: drifts.length, first: drifts.slice(0, 5) }, 'read_model_drift');
  return drifts;
}

/**
 * Projections whose checkpoint is still short of `head` (the log when verify began) after waiting up to `catchUpMs`
 * for the live projectors, or that are stuck (no waiting for those): one drift each, with the events behind counted
 * in the log (exact on every store) and the event it is stuck at.
 */
async function behind(store: EventStore, readModel: ReadModel, catchUpMs: number): Promise<Drift[]> {
  const head = await store.headPosition();
  if (!head) return [];
  const deadline = Date.now() + catchUpMs;
  let late: Array<{ name: ProjectionName; cp: Checkpoint | undefined }>;
  for (let delay = 10; ; delay = Math.min(delay * 2, 250)) {
    const cps = new Map((await readModel.checkpoints()).map((c) => [c.projection, c]));
    late = PROJECTION_NAMES.map((name) => ({ name, cp: cps.get(name) })).filter(
      ({ cp }) => cp?.failure || comparePositions(cp?.position ?? START, head) < 0,
    );
    if (late.length === 0 || late.every(({ cp }) => cp?.failure) || Date.now() >= deadline) break;
    await new Promise((r) => setTimeout(r, delay));
  }
  const out: Drift[] = [];
  for (const { name, cp } of late) {
    const at = cp?.position ?? START;
    let events = 0;
    for await (const page of readLog(store, { after: at, until: head, pageSize: 5000 })) events += page.length;
    out.push({
      projection: name,
      table: 'projection_checkpoints',
      key: name,
      kind: 'behind',
      behind: events,
      expected: formatPosition(head),
      actual: comparePositions(at, START) === 0 ? null : formatPosition(at),
      ...(cp?.failure ? { failure: cp.failure } : {}),
    });
  }
  return out;
}

// Rebuild a projection while the worker keeps projecting: replay into shadow tables (rebuild_*) under the projection's
// rebuild lock, then swap in ONE transaction that holds the live checkpoint row lock (the live projector waits on it):
// catch the shadow up to the live checkpoint, replace the state/entries tables' contents, republish every row into the
// platform tables (after retracting what the projection published there, when it only inserts), and set the live
// checkpoint. Readers see the old rows until that commit and the new ones after it;
// the live projector then finds its checkpoint moved (compare-and-set fails) and continues from the new one.
import { START, comparePositions, formatPosition, type EventStore, type Position } from '../app/ports/eventStore.ts';
import type { Logger } from '../logger.ts';
import { consume } from '../app/consumer.ts';
import { readLog } from '../app/log.ts';
import { applyEvents, liveTarget, publish, shadowTarget, targetProcessor } from './projector.ts';
import type { Projection } from './projections.ts';
import type { ReadModel } from './readModel.ts';

export interface RebuildOptions {
  store: EventStore;
  readModel: ReadModel;
  projection: Projection;
  logger: Logger;
  batchSize?: number;
  /** start after this position, seeding the shadow with the state as of it (see docs/projections.md) */
  from?: Position;
  /** called after each batch with events applied so far and the total to apply */
  onProgress?: (done: number, total: number) => void;
  /** `replaying` into the shadow tables, then `swapping` them in (one transaction) */
  onPhase?: (phase: 'replaying' | 'swapping') => void;
  signal?: AbortSignal;
}

export interface RebuildResult {
  events: number;
  checkpoint: string;
  ms: number;
}

export async function rebuildProjection(options: RebuildOptions): Promise<RebuildResult> {
  const started = Date.now();
  const { store, readModel, projection: p, logger } = options;
  const t = shadowTarget(p);
  const batchSize = options.batchSize ?? 5000;
  const from = options.from ?? START;
  const lease = await readModel.acquire(t.checkpoint, { signal: options.signal, pollMs: 500 }); // one rebuild at a time
  try {
    for (const s of [t.state, t.entries]) {
      if (!s) continue;
      await readModel.dropTable(s.name);
      await readModel.createTable(s);
    }
    await lease.transaction(async (tx) => {
      // The seed comes from the live tables: they must already include everything up to `from`.
      const live = await tx.lockCheckpoint(p.name);
      if (comparePositions(from, live.position) > 0) {
        throw new Error(`--from ${formatPosition(from)} is after the ${p.name} checkpoint ${formatPosition(live.position)}`);
      }
      await tx.lockCheckpoint(t.checkpoint);
      await tx.setCheckpoint(t.checkpoint, from, 0);
      if (comparePositions(from, START) !== 0) await p.seed(tx, { state: t.state, entries: t.entries }, from);
    });
    const head = await store.headPosition();
    const total = head ? Math.max(0, Number(head.commit - from.commit)) : 0;
    let done = 0;
    logger.info({ projection: p.name, from: formatPosition(from), head: head && formatPosition(head) }, 'rebuild_started');
    options.onPhase?.('replaying');
    options.onProgress?.(0, total);
    await consume({
      store,
      processor: targetProcessor((fn) => lease.transaction(fn), t),
      batchSize,
      until: head,
      signal: options.signal,
      onBatch: (n) => {
        done += n;
        options.onProgress?.(done, total);
      },
    });
    options.signal?.throwIfAborted();
    options.onPhase?.('swapping');
    const final = await readModel.transaction(async (tx) => {
      const live = await tx.lockCheckpoint(p.name); // blocks the live projector until commit
      const shadow = await tx.lockCheckpoint(t.checkpoint);
      let cp = shadow.position;
      let events = shadow.events;
      // Events the live projection applied after our snapshot of the head: apply them to the shadow here.
      for await (const batch of readLog(store, { after: cp, until: live.position, pageSize: batchSize })) {
        await applyEvents(tx, t, batch);
        cp = batch[batch.length - 1]!.position;
        events += batch.length;
      }
      for (const [live_, shadow_] of [[p.state, t.state], [p.entries, t.entries]] as const) {
        if (!live_ || !shadow_) continue;
        await tx.exec(`DELETE FROM ${live_.name}`, null);
        await tx.exec(`INSERT INTO ${live_.name} SELECT * FROM ${shadow_.name}`, null);
      }
      const liveT = { ...liveTarget(p), onRefused: (key: string, reason: string) => logger.error({ projection: p.name, key, reason }, 'projection_row_refused') };
      for (const sql of p.retract ?? []) await tx.exec(sql, null);
      for (const sql of p.publish) await publish(tx, liveT, sql, null);
      await tx.setCheckpoint(p.name, cp, events);
      await tx.exec(`DELETE FROM projection_checkpoints WHERE projection = '${t.checkpoint}'`, null);
      return { cp, events };
    });
    for (const s of [t.state, t.entries]) if (s) await readModel.dropTable(s.name);
    const result = { events: done, checkpoint: formatPosition(final.cp), ms: Date.now() - started };
    logger.info({ projection: p.name, ...result }, 'rebuild_swapped_in');
    return result;
  } finally {
    await lease.release();
  }
}

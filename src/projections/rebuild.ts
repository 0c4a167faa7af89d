// Rebuild a projection while the worker keeps projecting: replay into shadow tables (rebuild_*) under the projection's
// rebuild lock, then swap in ONE transaction that holds the live checkpoint row lock (the live projector waits on it):
// catch the shadow up to the live checkpoint, replace the state/entries tables' contents, republish every row into the
// platform tables, and set the live checkpoint. Readers see the old rows until that commit and the new ones after it;
// the live projector then finds its checkpoint moved (compare-and-set fails) and continues from the new one.
import { START, comparePositions, formatPosition, type EventStore, type Position } from '../app/ports/eventStore.ts';
import type { Logger } from '../logger.ts';
import { applyEvents, catchUp, liveTarget, publish, shadowTarget, type Target } from './projector.ts';
import { readAfter } from '../app/log.ts';
import type { Projection } from './projections.ts';
import type { ReadModel, ReadModelTx } from './readModel.ts';

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

const posWhere = (p: Position, c: string, pr: string) =>
  `(${c} < ${p.commit} OR (${c} = ${p.commit} AND ${pr} <= ${p.prepare}))`;

/** Seeds the shadow with the state as of `from`: entries up to it, account totals summed from them; session rows copied. */
async function seed(tx: ReadModelTx, t: Target, from: Position): Promise<void> {
  const p = t.projection;
  if (p.name === 'credit-balances') {
    const e = t.entries!.name;
    await tx.exec(`INSERT INTO ${e} SELECT * FROM ${p.entries!.name} WHERE ${posWhere(from, 'global_commit', 'global_prepare')}`, null);
    await tx.exec(
      `INSERT INTO ${t.state.name} (account, kind, owner_id, shopper_hash, balance, granted, spent, held, updated_at, last_commit, last_prepare)
       SELECT a.account, a.kind, a.owner_id, a.shopper_hash, SUM(x.amount),
         SUM(CASE x.event_type WHEN 'CreditsGranted' THEN x.credits WHEN 'CreditsRevoked' THEN -x.credits ELSE 0 END),
         SUM(CASE x.event_type WHEN 'CreditCaptured' THEN x.credits ELSE 0 END),
         SUM(CASE x.event_type WHEN 'CreditDeducted' THEN x.credits WHEN 'CreditCaptured' THEN -x.credits
                               WHEN 'CreditRefunded' THEN -x.credits ELSE 0 END),
         MAX(x.occurred_at), MAX(x.global_commit), MAX(x.global_prepare)
       FROM ${e} x JOIN ${p.state.name} a ON a.account = x.account
       GROUP BY a.account, a.kind, a.owner_id, a.shopper_hash`,
      null,
    );
  } else {
    // Session rows are a function of their last event: copy them and re-apply what follows `from`. Terminal rows accept
    // no later event, so they stay as they are.
    await tx.exec(`INSERT INTO ${t.state.name} SELECT * FROM ${p.state.name}`, null);
    await tx.exec(
      `UPDATE ${t.state.name} SET last_commit = ${from.commit}, last_prepare = ${from.prepare}
       WHERE status NOT IN ('completed', 'failed') AND NOT ${posWhere(from, 'last_commit', 'last_prepare')}`,
      null,
    );
  }
}

export async function rebuildProjection(o: RebuildOptions): Promise<RebuildResult> {
  const started = Date.now();
  const { store, readModel, projection: p, logger } = o;
  const t = shadowTarget(p);
  const batchSize = o.batchSize ?? 5000;
  const from = o.from ?? START;
  const lease = await readModel.acquire(t.checkpoint, { signal: o.signal, pollMs: 500 }); // one rebuild at a time
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
      if (comparePositions(from, START) !== 0) await seed(tx, t, from);
    });
    const head = await store.headPosition();
    const total = head ? Math.max(0, Number(head.commit - from.commit)) : 0;
    let done = 0;
    logger.info({ projection: p.name, from: formatPosition(from), head: head && formatPosition(head) }, 'rebuild_started');
    o.onPhase?.('replaying');
    o.onProgress?.(0, total);
    await catchUp(store, (fn) => lease.transaction(fn), t, {
      batchSize,
      until: head,
      signal: o.signal,
      onBatch: (n) => {
        done += n;
        o.onProgress?.(done, total);
      },
    });
    o.signal?.throwIfAborted();
    o.onPhase?.('swapping');
    const final = await readModel.transaction(async (tx) => {
      const live = await tx.lockCheckpoint(p.name); // blocks the live projector until commit
      const shadow = await tx.lockCheckpoint(t.checkpoint);
      let cp = shadow.position;
      let events = shadow.events;
      // Events the live projection applied after our snapshot of the head: apply them to the shadow here.
      while (comparePositions(cp, live.position) < 0) {
        const batch = (await readAfter(store, cp, batchSize)).filter((e) => comparePositions(e.position, live.position) <= 0);
        if (batch.length === 0) break;
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

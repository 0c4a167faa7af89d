// Rebuild a projection while the worker keeps projecting: replay into shadow tables (rebuild_*) under the projection's
// rebuild lock, then swap in ONE transaction that holds the live checkpoint row lock (the live projector waits on it):
// catch the shadow up to the live checkpoint, replace the state/entries tables' contents, republish every row into the
// platform tables (after retracting what the projection published there, when it only inserts), and set the live
// checkpoint. Readers see the old rows until that commit and the new ones after it (the shadow is renamed over the live
// table, ReadModelTx.replaceTable; Postgres readers of it wait for the commit); the live projector then finds its
// checkpoint moved (compare-and-set fails) and continues from the new one.
import { setTimeout as sleep } from 'node:timers/promises';
import { START, comparePositions, formatPosition, type EventStore, type Position, type RecordedEvent } from '../app/ports/eventStore.ts';
import type { Logger } from '../logger.ts';
import { consume, type CheckpointedProcessor } from '../app/consumer.ts';
import { readLog } from '../app/log.ts';
import {
  applyEvents,
  foldKeyed,
  isolatingProcessor,
  keyedRecords,
  liveTarget,
  publish,
  shadowTarget,
  targetProcessor,
  type Target,
} from './projector.ts';
import type { Projection } from './projections.ts';
import { CheckpointConflictError, type ReadModel, type ReadModelTx, type Row } from './readModel.ts';

/**
 * Events per page read. A page is folded while the next one is read, and both are young garbage: at 5000 events the
 * scavenger copied them again and again (a session-status rebuild of 1M events spent a fifth of its time in
 * scavenges); pages of 1000-2000 measured 0.4-0.8 s faster there, the raw read no slower.
 */
export const REBUILD_BATCH_SIZE = 2000;

/** Swap attempts before a rebuild gives up (each Postgres attempt waits a bounded time for a live table's readers). */
const SWAP_ATTEMPTS = 10;
const SWAP_RETRY_MS = 500;

export interface RebuildOptions {
  store: EventStore;
  readModel: ReadModel;
  projection: Projection;
  logger: Logger;
  batchSize?: number;
  /** start after this position, seeding the shadow with the state as of it (see docs/projections.md) */
  from?: Position;
  /** events folded in memory between two writes of the shadow tables (default 50,000) */
  flushEvents?: number;
  /** state rows kept in memory between flushes; past this many, the cache starts over after a flush (default 200,000) */
  cachedRows?: number;
  /** called after each batch: how far through the log it is (positions past `from`) and how far it goes */
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
  const batchSize = options.batchSize ?? REBUILD_BATCH_SIZE;
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
    // Progress in log positions: a rebuild reads only its projection's streams, so a count of events would stop short.
    const total = head ? Math.max(0, Number(head.commit - from.commit)) : 0;
    let done = 0;
    logger.info({ projection: p.name, from: formatPosition(from), head: head && formatPosition(head) }, 'rebuild_started');
    options.onPhase?.('replaying');
    options.onProgress?.(0, total);
    // an event the projection cannot apply fails the rebuild with that event named (EventNotAppliedError)
    const processor = foldingProcessor(
      (fn) => lease.transaction(fn),
      t,
      comparePositions(from, START) === 0, // not seeded: the shadow tables start empty
      options.flushEvents ?? 50_000,
      options.cachedRows ?? 200_000,
      isolatingProcessor(targetProcessor((fn) => lease.transaction(fn), t), (err) => readModel.isTransient(err)),
      (after, until) => readLog(store, { after, until, pageSize: batchSize, filter: p.reads }),
    );
    await consume({
      store,
      processor,
      batchSize,
      filter: p.reads,
      until: head,
      signal: options.signal,
      onBatch: (n, cp) => {
        done += n;
        options.onProgress?.(Number(cp.commit - from.commit), total);
      },
    });
    await processor.flush();
    options.signal?.throwIfAborted();
    options.onProgress?.(total, total);
    options.onPhase?.('swapping');
    const swap = () => readModel.transaction(async (tx) => {
      const live = await tx.lockCheckpoint(p.name); // blocks the live projector until commit
      const shadow = await tx.lockCheckpoint(t.checkpoint);
      // The replay read the log up to `head` through the projection's filter: the shadow holds everything up to it,
      // though its checkpoint stands at the last event of its streams.
      let cp = head && comparePositions(head, shadow.position) > 0 ? head : shadow.position;
      let events = shadow.events;
      // Events the live projection applied after our snapshot of the head: apply them to the shadow here. The shadow
      // then holds everything up to the later of the two checkpoints (the filtered reads skipped only other streams).
      for await (const batch of readLog(store, { after: cp, until: live.position, pageSize: batchSize, filter: p.reads })) {
        await applyEvents(tx, t, batch);
        events += batch.length;
      }
      if (comparePositions(live.position, cp) > 0) cp = live.position;
      for (const [live_, shadow_] of [[p.state, t.state], [p.entries, t.entries]] as const) {
        if (live_ && shadow_) await tx.replaceTable(live_, shadow_);
      }
      const liveT = { ...liveTarget(p), onRefused: (key: string, reason: string) => logger.error({ projection: p.name, key, reason }, 'projection_row_refused') };
      for (const sql of p.retract ?? []) await tx.exec(sql, null);
      if (p.publish.length) await publish(tx, liveT, p.publish, null);
      await tx.setCheckpoint(p.name, cp, events);
      await tx.exec(`DELETE FROM projection_checkpoints WHERE projection = '${t.checkpoint}'`, null);
      return { cp, events };
    });
    // A transient failure (a reader holding a live table past the swap's lock timeout, a lost connection) rolls the
    // whole swap back and leaves the shadow tables as the replay left them: try again.
    let final: Awaited<ReturnType<typeof swap>>;
    for (let attempt = 1; ; attempt++) {
      try {
        final = await swap();
        break;
      } catch (err) {
        if (attempt >= SWAP_ATTEMPTS || !readModel.isTransient(err)) throw err;
        logger.warn({ projection: p.name, attempt, err }, 'rebuild_swap_retry');
        await sleep(SWAP_RETRY_MS * attempt, undefined, { signal: options.signal });
      }
    }
    for (const s of [t.state, t.entries]) if (s) await readModel.dropTable(s.name);
    const result = { events: done, checkpoint: formatPosition(final.cp), ms: Date.now() - started };
    logger.info({ projection: p.name, ...result }, 'rebuild_swapped_in');
    return result;
  } finally {
    await lease.release();
  }
}

/**
 * The rebuild's processor. The rebuild is the only writer of its shadow tables (it holds their lock, and a rebuild that
 * stops starts over from empty shadows), so it folds many pages in memory and writes them at once: each state row is
 * loaded once and written once per flush, not once per page. A flush writes the changed rows, the entries and the
 * checkpoint in one transaction every `flushEvents` events and at the end (`flush`); it runs while the next pages are
 * read and folded (one flush in flight), so a database in another process works while this one reads. When a fold or
 * a flush fails, the events after the stored checkpoint are read again (`reread`) and applied page by page by
 * `fallback`, which names the event at fault; no page is kept for that. Starting from empty shadow tables, the cache
 * holds every row they have until it is first cleared: a key it lacks has no row, and nothing is loaded (a load would
 * also wait for the flush in flight).
 */
export function foldingProcessor(
  run: <T>(fn: (tx: ReadModelTx) => Promise<T>) => Promise<T>,
  t: Target,
  startsEmpty: boolean,
  flushEvents: number,
  cachedRows: number,
  fallback: CheckpointedProcessor,
  reread: (after: Position, until: Position) => AsyncIterable<RecordedEvent[]>,
): CheckpointedProcessor & { flush(): Promise<void> } {
  const p = t.projection;
  const rows = new Map<string, Row | undefined>();
  let changed = new Set<string>();
  let entries: Row[] = [];
  let folded = 0; // events folded since the last flush started
  let stored: { position: Position; events: number } | null = null; // the checkpoint as last committed
  let at: Position | null = null; // the position folded up to
  let inflight: Promise<void> | null = null;
  let cacheHasEveryRow = startsEmpty;
  // Keys some flush has written. While the cache holds every row, a key not among them has no row in the shadow yet:
  // its row goes as a new row (Postgres COPYs it, no upsert; a 1M-event session-status rebuild took 7.4-7.6 s against
  // 8.5-9.1). Forgotten with the cache (which bounds memory) and after a failed flush: from then on every row is upserted.
  let written: Set<string> | null = startsEmpty ? new Set() : null;
  const clearCache = () => {
    rows.clear();
    cacheHasEveryRow = false;
    written = null;
  };

  /** Applies everything after the stored checkpoint up to `until` again, page by page, through the fallback. */
  const replay = async (until: Position) => {
    clearCache();
    changed = new Set();
    entries = [];
    folded = 0;
    let expected = stored!.position;
    for await (const page of reread(expected, until)) {
      const r = await fallback.apply(page, expected);
      if (!r.ok) throw new CheckpointConflictError(`${t.checkpoint}: the checkpoint moved during the rebuild`);
      expected = page[page.length - 1]!.position;
      stored = { position: expected, events: stored!.events + r.applied };
    }
    at = until;
  };
  /** Waits for the flush in flight; true when it failed and everything up to `until` was applied again instead. */
  const settle = async (until: Position) => {
    const f = inflight;
    inflight = null;
    const failed = f && (await f.then(() => false, (err: unknown) => err));
    if (failed === false || failed === null) return false;
    if (failed instanceof CheckpointConflictError) throw failed;
    await replay(until);
    return true;
  };
  /** Hands what is folded to a flush of its own (after the one in flight settled). */
  const startFlush = async () => {
    if ((await settle(at!)) || folded === 0) return;
    const position = at!;
    const n = folded;
    const stateRows: Row[] = [];
    const newRows: Row[] = [];
    for (const k of changed) {
      const r = rows.get(k)!; // reduce returns new objects: later folds leave these alone
      if (written && !written.has(k)) {
        newRows.push(r);
        written.add(k);
      } else stateRows.push(r);
    }
    const entryRows = entries;
    changed = new Set();
    entries = [];
    folded = 0;
    const expected = stored!.position;
    inflight = run(async (tx) => {
      const cp = await tx.lockCheckpoint(t.checkpoint);
      if (comparePositions(cp.position, expected) !== 0) {
        throw new CheckpointConflictError(`${t.checkpoint}: checkpoint is ${formatPosition(cp.position)}, expected ${formatPosition(expected)}`);
      }
      // Entries are fresh: each event's is made once, by this fold, and a flush that failed rolled back with its entries.
      await tx.write(t.state, stateRows, t.entries && { table: t.entries, rows: entryRows, fresh: true }, newRows);
      await tx.setCheckpoint(t.checkpoint, position, cp.events + n);
    }).then(() => {
      stored = { position, events: stored!.events + n };
    });
    inflight.catch(() => undefined); // observed by settle
    if (rows.size > cachedRows) clearCache(); // reloaded as needed, after this flush (the loads wait for it)
  };

  return {
    async checkpoint() {
      if (!at) {
        const cp = await run((tx) => tx.lockCheckpoint(t.checkpoint));
        stored = { position: cp.position, events: cp.events };
        at = cp.position;
      }
      return at;
    },
    async apply(events, expected) {
      if (!at || comparePositions(expected, at) !== 0) return { ok: false, reason: 'mismatch' };
      const fresh = events.filter((e) => comparePositions(e.position, at!) > 0);
      if (fresh.length === 0) return { ok: true, applied: 0 };
      const last = fresh[fresh.length - 1]!.position;
      try {
        const keyed = keyedRecords(p, fresh);
        const missing = cacheHasEveryRow ? [] : [...new Set(keyed.map(([k]) => k))].filter((k) => !rows.has(k));
        if (missing.length) {
          // A transaction of the same lease: it starts after the flush in flight committed, so it sees its rows.
          const loaded = await run((tx) => tx.load(t.state, missing));
          for (const k of missing) rows.set(k, undefined);
          for (const r of loaded) rows.set(r[t.state.key] as string, r);
        }
        foldKeyed(p, keyed, rows, entries, changed);
      } catch {
        // names the event at fault (or applies them all, if the trouble was not theirs)
        if (!(await settle(last))) await replay(last);
        return { ok: true, applied: fresh.length };
      }
      folded += fresh.length;
      at = last;
      if (folded >= flushEvents) await startFlush();
      // A store that reads synchronously (SQLite) never yields between pages: let the flush in flight take its turns.
      else if (inflight) await new Promise(setImmediate);
      return { ok: true, applied: fresh.length };
    },
    async flush() {
      await startFlush();
      await settle(at!);
    },
  };
}

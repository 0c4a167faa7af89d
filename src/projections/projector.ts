// The projector runtime: follows the global log from a stored checkpoint in batches. Each batch's rows and the
// checkpoint commit in ONE transaction, after a compare-and-set on the previous checkpoint, so every event takes effect
// exactly once even across crashes, restarts, a rebuild swap or a second instance. One active instance per projection
// holds the read model's lock (Postgres advisory lock on the connection that also writes); others wait and take over.
import { setTimeout as sleep } from 'node:timers/promises';
import {
  START,
  comparePositions,
  formatPosition,
  matchesFilter,
  type EventStore,
  type Position,
  type RecordedEvent,
} from '../app/ports/eventStore.ts';
import { appendWait, consume, type CheckpointedProcessor } from '../app/consumer.ts';
import { decodeRecorded, type LedgerRecord } from '../app/recorded.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { PROJECTIONS, PROJECTION_NAMES, type Projection, type ProjectionName } from './projections.ts';
import {
  CheckpointConflictError,
  type ProjectionFailure,
  type ProjectionLease as ProjectionLeaseLike,
  type ReadModel,
  type ReadModelTx,
  type Row,
  type TableSpec,
} from './readModel.ts';
import { shadowOf } from './schema.ts';

/** Where a projection writes: the live tables, or the shadow tables of a rebuild (which publish nothing). */
export interface Target {
  projection: Projection;
  checkpoint: string;
  state: TableSpec;
  entries?: TableSpec;
  publish: boolean;
  /** a platform table refused a row (constraint violation); it was skipped */
  onRefused?: (key: string, reason: string) => void;
}

export function liveTarget(p: Projection): Target {
  return { projection: p, checkpoint: p.name, state: p.state, entries: p.entries, publish: true };
}

export function shadowTarget(p: Projection): Target {
  return {
    projection: p,
    checkpoint: `${p.name}#rebuild`,
    state: shadowOf(p.state),
    entries: p.entries && shadowOf(p.entries),
    publish: false,
  };
}

/** The events a projection reads, decoded, with their state row's key (events it ignores are left out). */
export function keyedRecords(p: Projection, events: readonly RecordedEvent[]): Array<[string, LedgerRecord]> {
  const keyed: Array<[string, LedgerRecord]> = [];
  for (const e of events) {
    const r = decodeRecorded(e);
    const k = r && p.keyOf(r);
    if (r && k !== null) keyed.push([k, r]);
  }
  return keyed;
}

/** Pure fold: applies `keyed` to `rows` (which hold every key's current row, if it has one), pushing entries; adds the keys whose row changed to `changed`. */
export function foldKeyed(p: Projection, keyed: ReadonlyArray<[string, LedgerRecord]>, rows: Map<string, Row | undefined>, entries: Row[], changed: Set<string>): void {
  for (const [k, r] of keyed) {
    const prev = rows.get(k);
    const next = p.reduce(prev, r, entries);
    if (next && next !== prev) {
      rows.set(k, next);
      changed.add(k);
    }
  }
}

const keysOf = (keyed: ReadonlyArray<[string, LedgerRecord]>) => [...new Set(keyed.map(([k]) => k))];

/** Folds `keyed` over `loaded` (the current rows of their keys) and writes what changed: rows and entries, then publishes. */
async function writeFold(tx: ReadModelTx, t: Target, keyed: ReadonlyArray<[string, LedgerRecord]>, loaded: readonly Row[]): Promise<void> {
  const p = t.projection;
  const rows = new Map<string, Row | undefined>();
  for (const r of loaded) rows.set(r[t.state.key] as string, r);
  const changed = new Set<string>();
  const entries: Row[] = [];
  foldKeyed(p, keyed, rows, entries, changed);
  if (changed.size === 0) return;
  await tx.write(t.state, [...changed].map((k) => rows.get(k)!), t.entries && entries.length ? { table: t.entries, rows: entries } : undefined);
  if (t.publish && p.publish.length) await publish(tx, t, p.publish, [...changed]);
}

/** Applies events (already known to follow the checkpoint) to the target's rows inside `tx`. Pure fold + bulk writes. */
export async function applyEvents(tx: ReadModelTx, t: Target, events: readonly RecordedEvent[]): Promise<void> {
  const keyed = keyedRecords(t.projection, events);
  if (keyed.length) await writeFold(tx, t, keyed, await tx.load(t.state, keysOf(keyed)));
}

/**
 * Copies state rows into the platform tables, every statement as one step. A row the platform refuses (Supabase FKs
 * to users/stores: the owner was deleted) must not stall the projection: on a constraint violation the batch's rows
 * are published one by one and the refused ones skipped (logged through the error; `wearon verify` reports them as drift).
 */
export async function publish(tx: ReadModelTx, t: Target, sql: readonly string[], keys: string[] | null): Promise<void> {
  if ((await tx.execGuarded(sql, keys)) === null) return;
  for (const k of keys ?? (await tx.keys(t.projection.state))) {
    const refused = await tx.execGuarded(sql, [k]);
    if (refused) t.onRefused?.(k, refused);
  }
}

/**
 * One batch, one transaction: lock the checkpoint row, check it still equals `expected` (else CheckpointConflictError,
 * nothing written), apply, advance. Events at or before the stored checkpoint are skipped, so a re-applied batch is a no-op.
 */
export async function commitBatch(
  tx: ReadModelTx,
  t: Target,
  expected: Position,
  events: readonly RecordedEvent[],
): Promise<number> {
  // The state rows load with the lock, in one round trip: those of every event given, a superset of the fresh ones'.
  let keyed: Array<[string, LedgerRecord]> | null;
  try {
    keyed = keyedRecords(t.projection, events);
  } catch {
    keyed = null; // an undecodable event: it fails the batch only if the checkpoint says it is still to be applied
  }
  const { checkpoint: cp, rows } = await tx.lockAndLoad(t.checkpoint, t.state, keyed ? keysOf(keyed) : []);
  if (comparePositions(cp.position, expected) !== 0) {
    throw new CheckpointConflictError(`${t.checkpoint}: checkpoint is ${formatPosition(cp.position)}, expected ${formatPosition(expected)}`);
  }
  const fresh = events.filter((e) => comparePositions(e.position, cp.position) > 0);
  if (fresh.length === 0) return 0;
  if (!keyed) await applyEvents(tx, t, fresh);
  else {
    const freshKeyed = fresh.length === events.length ? keyed : keyedRecords(t.projection, fresh);
    if (freshKeyed.length) await writeFold(tx, t, freshKeyed, rows);
  }
  // counts the events of its streams, as a rebuild does (it reads nothing else)
  const ofItsStreams = fresh.reduce((n, e) => n + (matchesFilter(e.streamId, e.type, t.projection.reads) ? 1 : 0), 0);
  await tx.setCheckpoint(t.checkpoint, fresh[fresh.length - 1]!.position, cp.events + ofItsStreams);
  return fresh.length;
}

/** A target as a checkpointed processor: each batch in one transaction of `run`, compare-and-set on the checkpoint. */
export function targetProcessor(run: <T>(fn: (tx: ReadModelTx) => Promise<T>) => Promise<T>, t: Target): CheckpointedProcessor {
  return {
    checkpoint: async () => (await run((tx) => tx.lockCheckpoint(t.checkpoint))).position,
    async apply(events, expected) {
      try {
        return { ok: true, applied: await run((tx) => commitBatch(tx, t, expected, events)) };
      } catch (err) {
        if (err instanceof CheckpointConflictError) return { ok: false, reason: 'mismatch' };
        throw err;
      }
    },
  };
}

/** An event a projection cannot apply: its batch failed, and so did the event alone, for a reason other than the read model being unavailable. */
export class EventNotAppliedError extends Error {
  override readonly name = 'EventNotAppliedError';
  constructor(
    readonly event: RecordedEvent,
    cause: unknown,
  ) {
    super(`cannot apply ${e2s(event)}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

const e2s = (e: RecordedEvent) => `event ${e.id} (${e.type}, ${e.streamId}@${e.revision}, position ${formatPosition(e.position)})`;

/**
 * A failed batch is applied again one event at a time: the events before the one at fault commit, and that one is
 * named (EventNotAppliedError). A read model that is unavailable (connection, lock) is no event's fault: rethrown as is.
 */
export function isolatingProcessor(inner: CheckpointedProcessor, isTransient: (err: unknown) => boolean): CheckpointedProcessor {
  const named = (e: RecordedEvent, err: unknown) => (isTransient(err) ? err : new EventNotAppliedError(e, err));
  return {
    checkpoint: () => inner.checkpoint(),
    async apply(events, expected) {
      try {
        return await inner.apply(events, expected);
      } catch (err) {
        if (events.length === 1) throw named(events[0]!, err);
        if (isTransient(err)) throw err;
      }
      let at = expected;
      let applied = 0;
      for (const e of events) {
        let r;
        try {
          r = await inner.apply([e], at);
        } catch (err) {
          throw named(e, err);
        }
        if (!r.ok) return r;
        applied += r.applied;
        at = e.position;
      }
      return { ok: true, applied };
    },
  };
}

export interface ProjectorOptions {
  store: EventStore;
  readModel: ReadModel;
  projection: Projection;
  logger: Logger;
  metrics?: Metrics;
  batchSize?: number;
  /** Caught up, the projector waits for the store's append signal (EventStore.onAppended); this poll is the fallback. */
  pollMs?: number;
  /** Longest wait between attempts at an event the projection cannot apply (default 60 s; the first retry is after 1 s). */
  stuckRetryMaxMs?: number;
  /** After every committed batch: its events and when the commit returned (the bench's freshness figure). */
  onCommitted?: (events: readonly RecordedEvent[], committedAtMs: number) => void;
  /** lock poll interval while standing by */
  lockPollMs?: number;
}

/** How often, at most, a projection's gauges are recomputed while it is catching up. */
const REPORT_EVERY_MS = 10_000;
/**
 * How often, at most, the lag (a head query) and, once caught up, the gauges (a read-model query) are recomputed: a
 * projector woken by every append reads far more often than a scrape could see (Prometheus scrapes every 15 s).
 */
const REFRESH_MS = 1_000;

/** A long-running projector: waits for the lock, then follows the log until stopped. */
export class Projector {
  readonly name: ProjectionName;
  private readonly ac = new AbortController();
  private done: Promise<void> | null = null;
  private _active = false;
  private lease: { held: boolean } | null = null;
  private lastReport = 0;
  private lastLag = 0;
  private changedSinceReport = true;
  private _failure: ProjectionFailure | null = null;

  constructor(private readonly options: ProjectorOptions) {
    this.name = options.projection.name;
  }

  /** true while this instance believes it holds the lock (its writes are fenced by the lock either way) */
  get active(): boolean {
    return this._active && (this.lease?.held ?? false);
  }

  /** The event this projector is stopped at, while it cannot apply it (it retries, at most every `stuckRetryMaxMs`). */
  get failure(): ProjectionFailure | null {
    return this._failure;
  }

  start(): void {
    this.done ??= this.loop().catch((err) => {
      if (!this.ac.signal.aborted) this.options.logger.error({ err, projection: this.name }, 'projector_stopped');
    });
  }

  async stop(): Promise<void> {
    this.ac.abort();
    await this.done;
  }

  private async loop(): Promise<void> {
    const { store, readModel, logger, metrics } = this.options;
    const signal = this.ac.signal;
    const target: Target = {
      ...liveTarget(this.options.projection),
      onRefused: (key, reason) => logger.error({ projection: this.name, key, reason }, 'projection_row_refused'),
    };
    const appended = appendWait(store, this.options.pollMs ?? 200);
    metrics?.projectionStuck.set({ projection: this.name }, 0);
    let backoff = 100;
    let stuckBackoff = 500;
    try {
      while (!signal.aborted) {
        let lease;
        try {
          lease = await readModel.acquire(this.name, { signal, pollMs: this.options.lockPollMs ?? 1000 });
        } catch (err) {
          if (signal.aborted) return;
          logger.warn({ err, projection: this.name }, 'projection_lock_failed');
          await sleep(Math.min((backoff *= 2), 10_000), undefined, { signal }).catch(() => undefined);
          continue;
        }
        this._active = true;
        this.lease = lease;
        logger.info({ projection: this.name }, 'projection_lock_acquired');
        const held = lease;
        const processor = isolatingProcessor(targetProcessor((fn) => held.transaction(fn), target), (err) => readModel.isTransient(err));
        try {
          await consume({
            store,
            processor: {
              checkpoint: () => processor.checkpoint(),
              apply: async (events, expected) => {
                const r = await processor.apply(events, expected);
                if (r.ok && r.applied > 0) this.committed(events, Date.now());
                return r;
              },
            },
            batchSize: this.options.batchSize ?? 500,
            wait: appended.wait,
            signal,
            active: () => held.held,
            onRead: (cp, caughtUp) => this.report(cp, caughtUp),
            onBatch: (applied) => {
              this.changedSinceReport ||= applied > 0;
              metrics?.projectionEvents.inc({ projection: this.name }, applied);
              backoff = 100;
              if (applied > 0) stuckBackoff = 500;
              if (applied > 0 && this._failure) this.unstuck();
            },
            onMoved: (cp) => logger.info({ projection: this.name, checkpoint: formatPosition(cp) }, 'projection_checkpoint_moved'), // e.g. a rebuild swapped in
          });
        } catch (err) {
          if (signal.aborted) break;
          if (err instanceof EventNotAppliedError) {
            await this.stuck(err, held);
            stuckBackoff = Math.min(stuckBackoff * 2, this.options.stuckRetryMaxMs ?? 60_000);
            await sleep(stuckBackoff, undefined, { signal }).catch(() => undefined);
          } else {
            logger.error({ err, projection: this.name }, 'projection_batch_failed');
            await sleep(Math.min((backoff *= 2), 10_000), undefined, { signal }).catch(() => undefined);
          }
        } finally {
          this._active = false;
          this.lease = null;
          await lease.release().catch(() => undefined);
        }
      }
    } finally {
      appended.close();
    }
  }

  private committed(events: readonly RecordedEvent[], at: number): void {
    const { metrics, onCommitted } = this.options;
    if (metrics) {
      const h = metrics.projectionDelay.labels({ projection: this.name });
      for (const e of events) h.observe(Math.max(0, at - e.recordedAt.getTime()) / 1000);
    }
    onCommitted?.(events, at);
  }

  /**
   * Stops at an event the projection cannot apply, loudly: an error log naming it, the stuck gauge (alert), /health
   * (through `failure`) and the failure on the checkpoint row (`wearon projections`, `wearon verify`). The events before
   * it are committed; the projector tries it again, backing off to `stuckRetryMaxMs`, and carries on once it applies.
   */
  private async stuck(err: EventNotAppliedError, lease: { transaction: ProjectionLeaseLike['transaction'] }): Promise<void> {
    const e = err.event;
    const same = this._failure?.eventId === e.id;
    const failure: ProjectionFailure = {
      eventId: e.id,
      eventType: e.type,
      streamId: e.streamId,
      revision: e.revision,
      position: formatPosition(e.position),
      error: err.cause instanceof Error ? err.cause.message : String(err.cause),
      since: same ? this._failure!.since : new Date().toISOString(),
      attempts: same ? this._failure!.attempts + 1 : 1,
    };
    this.options.logger.error({ err: err.cause, projection: this.name, event: failure }, 'projection_stuck');
    await lease.transaction((tx) => tx.setFailure(this.name, failure)).catch((e2: unknown) =>
      this.options.logger.warn({ err: e2, projection: this.name }, 'projection_failure_not_recorded'),
    );
    this._failure = failure;
    this.options.metrics?.projectionStuck.set({ projection: this.name }, 1);
  }

  private unstuck(): void {
    this.options.logger.info({ projection: this.name, event: this._failure }, 'projection_unstuck');
    this._failure = null;
    this.options.metrics?.projectionStuck.set({ projection: this.name }, 0);
  }

  /** Lag after reads (0 once caught up); the projection's own gauges after changes: at most every second once caught up, every 10 s while catching up. */
  private async report(cp: Position, caughtUp: boolean): Promise<void> {
    const { metrics, projection, store, readModel } = this.options;
    if (!metrics) return;
    const now = Date.now();
    // Caught up: the read after the checkpoint found nothing, so nothing readable is behind it.
    if (caughtUp) metrics.projectionLag.set({ projection: this.name }, 0);
    else if (now - this.lastLag >= REFRESH_MS) {
      this.lastLag = now;
      metrics.projectionLag.set({ projection: this.name }, lagOf(await store.headPosition(), cp));
    }
    if (!projection.report || !this.changedSinceReport || now - this.lastReport < (caughtUp ? REFRESH_MS : REPORT_EVERY_MS)) return;
    this.lastReport = now;
    this.changedSinceReport = false;
    await projection.report(readModel, metrics);
  }
}

/** Events behind the head. Exact for stores with gap-free positions (SQLite); an upper bound in position units otherwise. */
export function lagOf(head: Position | null, cp: Position): number {
  if (!head) return 0;
  const d = head.commit - cp.commit;
  return d > 0n ? Number(d) : 0;
}

export interface ProjectionStatus {
  projection: string;
  checkpoint: string | null;
  head: string | null;
  lag: number;
  events: number;
  updatedAt: string | null;
  /** the event the projection is stopped at (it cannot apply it), null while it is not */
  failure: ProjectionFailure | null;
}

/** Checkpoint, head and lag for every projection (GET /v1/projections, `wearon projections`). */
export async function projectionStatus(store: EventStore, readModel: ReadModel): Promise<ProjectionStatus[]> {
  const [head, cps] = await Promise.all([store.headPosition(), readModel.checkpoints()]);
  return PROJECTION_NAMES.map((name) => {
    const cp = cps.find((c) => c.projection === name);
    const pos = cp?.position ?? START;
    return {
      projection: name,
      checkpoint: cp && comparePositions(pos, START) !== 0 ? formatPosition(pos) : null,
      head: head ? formatPosition(head) : null,
      lag: lagOf(head, pos),
      events: cp?.events ?? 0,
      updatedAt: cp?.updatedAt ?? null,
      failure: cp?.failure ?? null,
    };
  });
}

/** Starts one projector per projection (both share the store and read model). */
export function startProjectors(o: Omit<ProjectorOptions, 'projection'>): Projector[] {
  return PROJECTION_NAMES.map((n) => {
    const p = new Projector({ ...o, projection: PROJECTIONS[n] });
    p.start();
    return p;
  });
}

/** One line for logs, health and the CLI: where a projection is stopped and why. */
export function describeFailure(projection: string, f: ProjectionFailure): string {
  return `${projection} is stuck at event ${f.eventId} (${f.eventType}, ${f.streamId}@${f.revision}, position ${f.position}) since ${f.since}, ${f.attempts} attempt(s): ${f.error}`;
}

/** The readiness probe of the projectors: fails while one of them is stuck at an event. */
export function projectorsProbe(projectors: readonly Projector[]): () => Promise<Record<string, unknown>> {
  return async () => {
    const stuck = projectors.filter((p) => p.failure);
    if (stuck.length) throw new Error(stuck.map((p) => describeFailure(p.name, p.failure!)).join('; '));
    return { active: projectors.filter((p) => p.active).map((p) => p.name) };
  };
}

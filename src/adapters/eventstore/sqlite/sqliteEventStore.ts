// The embedded event store: one SQLite file, WAL with synchronous=FULL so an append is acknowledged only after fsync.
// Appends queued in the same tick are group-committed (one transaction, one fsync). Where the commit runs:
// - inline, on this thread: the lowest latency for a lone append, but the commit's fsync blocks the event loop;
// - a writer thread that owns the write connection: fsync never blocks the event loop, at the cost of a thread hop;
// - auto (the default for files): inline while commits are fast, moving for good to the writer thread as soon as the
//   disk's fsync makes them slow, so a slow disk can never stall /health and the HTTP API.
// Reads always use this thread's connection, which WAL lets run beside the writer. ':memory:' writes inline (a memory
// database cannot be shared between threads). SQLite's single writer makes the global position gap-free and
// commit-ordered, so a catch-up reader using `position > last` never skips.
import type Database from 'better-sqlite3';
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Worker } from 'node:worker_threads';
import {
  type AppendResult,
  type EventFilter,
  type EventStore,
  type ExpectedRevision,
  type NewEvent,
  type Position,
  type ReadAllOptions,
  type ReadStreamOptions,
  type RecordedEvent,
  type SubscribeOptions,
  type Subscription,
  type SubscriptionItem,
} from '../../../app/ports/eventStore.ts';
import { spawnModuleWorker } from '../../workerThread.ts';
import { AppendWriter, fromWire, openDatabase, positionOf, STREAM_REVISION_SQL, type AppendRequest, type EventRow } from './writeBatch.ts';
import type { FromWriter, ToWriter } from './writerThread.ts';

type Row = EventRow;

interface PendingAppend {
  request: AppendRequest;
  resolve: (r: AppendResult) => void;
  reject: (e: unknown) => void;
}

const pos = positionOf;

function toRecorded(r: Row): RecordedEvent {
  return {
    id: r.event_id,
    type: r.type,
    data: JSON.parse(r.data),
    metadata: JSON.parse(r.metadata),
    streamId: r.stream_id,
    revision: r.revision,
    position: pos(r.global_position),
    recordedAt: new Date(r.recorded_at),
  };
}

/**
 * SQL for a filter; prefixes use a range on the primary text order (`>= p AND < p || U+FFFF`), not LIKE. The unary `+`
 * keeps SQLite walking the log in global_position order: on the (stream_id, revision) index it would sort every
 * matching event after the position for each page (a temp B-tree per page, quadratic over a whole-log read).
 */
function filterSql(filter: EventFilter | undefined): { sql: string; params: unknown[] } {
  const parts: string[] = [];
  const params: unknown[] = [];
  if (filter?.streamPrefixes?.length) {
    parts.push(`(${filter.streamPrefixes.map(() => '(+stream_id >= ? AND +stream_id < ?)').join(' OR ')})`);
    for (const p of filter.streamPrefixes) params.push(p, `${p}\uffff`);
  }
  if (filter?.eventTypes?.length) {
    parts.push(`+type IN (${filter.eventTypes.map(() => '?').join(',')})`);
    params.push(...filter.eventTypes);
  }
  return { sql: parts.length ? ` AND ${parts.join(' AND ')}` : '', params };
}

/** How long the log's watch keeps looking for a commit it saw being written (see scheduleHeadCheck). */
const HEAD_RECHECK_MS = 1000;

export interface SqliteEventStoreOptions {
  /** file path, or ':memory:' */
  path: string;
  /** how often a live subscription looks for appends made by other processes on the same file */
  pollIntervalMs?: number;
  /** 'auto' (default for files), 'thread' or 'inline' (always for ':memory:') */
  writer?: 'auto' | 'thread' | 'inline';
  /** auto: a commit slower than this (moving average) moves writing to the thread; default 2 ms */
  slowCommitMs?: number;
  /** auto: commits that do not count (a new file's first commits are slow anywhere); default 32 */
  warmupCommits?: number;
}

export class SqliteEventStore implements EventStore {
  readonly kind = 'sqlite';
  /** this thread's connection: every read, and the writes when the writer is inline */
  readonly db: Database.Database;
  private closed = false;
  private readonly waiters = new Set<() => void>();
  private readonly pollIntervalMs: number;
  private readonly readAllStatements = new Map<string, Database.Statement>();
  private readonly stmt;
  // inline writer
  private inline: AppendWriter | null = null;
  private queued: PendingAppend[] = [];
  private queuedSnapshots: Array<{ streamId: string; revision: number; state: string }> = [];
  private flushScheduled = false;
  /** auto mode: moving average of inline commit time; null when not adapting */
  private commitMsAverage: number | null = null;
  private commitsSeen = 0;
  private readonly slowCommitMs: number;
  private readonly warmupCommits: number;
  private readonly path: string;
  // writer thread
  private worker: Worker | null = null;
  private readonly inFlight = new Map<number, PendingAppend>();
  private nextId = 1;
  private workerClosed: Promise<void> | null = null;

  constructor(options: SqliteEventStoreOptions) {
    this.db = openDatabase(options.path);
    this.pollIntervalMs = options.pollIntervalMs ?? 200;
    this.path = options.path;
    this.slowCommitMs = options.slowCommitMs ?? 2;
    this.warmupCommits = options.warmupCommits ?? 32;
    const writer = options.path === ':memory:' ? 'inline' : (options.writer ?? 'auto');
    if (writer === 'thread') this.startWriter(options.path);
    else this.inline = new AppendWriter(this.db);
    if (writer === 'auto') this.commitMsAverage = 0;
    this.stmt = {
      streamRevision: this.db.prepare<[string], { revision: number | null }>(STREAM_REVISION_SQL),
      maxPosition: this.db.prepare<[], { p: number | null }>('SELECT MAX(global_position) AS p FROM events'),
      forwards: this.db.prepare<[string, number, number], Row>(
        'SELECT * FROM events WHERE stream_id = ? AND revision >= ? ORDER BY revision ASC LIMIT ?',
      ),
      backwards: this.db.prepare<[string, number, number], Row>(
        'SELECT * FROM events WHERE stream_id = ? AND revision <= ? ORDER BY revision DESC LIMIT ?',
      ),
      getSnapshot: this.db.prepare<[string], { revision: number; state: string }>('SELECT revision, state FROM snapshots WHERE stream_id = ?'),
    };
  }

  private startWriter(path: string) {
    const worker = spawnModuleWorker(import.meta.url, 'writerThread', { workerData: { path } });
    this.worker = worker;
    worker.unref();
    this.workerClosed = new Promise((resolve) => worker.once('exit', () => resolve()));
    worker.on('message', (msg: FromWriter) => {
      if (msg.kind === 'results') {
        for (const r of msg.results) {
          const p = this.inFlight.get(r.id);
          this.inFlight.delete(r.id);
          if (!p) continue;
          if (r.ok) p.resolve({ nextRevision: r.nextRevision, position: pos(r.position) });
          else p.reject(fromWire(r.error));
        }
        this.notify();
      } else if (msg.kind === 'fatal') {
        for (const id of msg.ids) {
          this.inFlight.get(id)?.reject(new Error(`event store write failed: ${msg.message}`));
          this.inFlight.delete(id);
        }
      }
      if (this.inFlight.size === 0 && !this.closed) worker.unref();
    });
    worker.on('error', (err) => this.failInFlight(err));
    worker.on('exit', (code) => this.failInFlight(new Error(`event store writer exited (${code})`)));
  }

  private failInFlight(err: Error) {
    for (const p of this.inFlight.values()) p.reject(err);
    this.inFlight.clear();
  }

  append(streamId: string, events: readonly NewEvent[], expected: ExpectedRevision): Promise<AppendResult> {
    if (this.closed) return Promise.reject(new Error('event store is closed'));
    if (events.length === 0) return Promise.reject(new Error('append needs at least one event'));
    return new Promise((resolve, reject) => {
      const request: AppendRequest = { streamId, events, expected };
      if (this.worker) {
        const id = this.nextId++;
        this.inFlight.set(id, { request, resolve, reject });
        if (this.inFlight.size === 1) this.worker.ref();
        this.worker.postMessage({ kind: 'append', id, request } satisfies ToWriter);
        return;
      }
      this.queued.push({ request, resolve, reject });
      this.scheduleInlineFlush();
    });
  }

  /** Where commits run now ('auto' starts inline and may move to the thread). */
  get writer(): 'inline' | 'thread' {
    return this.worker ? 'thread' : 'inline';
  }

  private scheduleInlineFlush() {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flushInline());
  }

  private flushInline(): void {
    this.flushScheduled = false;
    const batch = this.queued;
    const snaps = this.queuedSnapshots;
    this.queued = [];
    this.queuedSnapshots = [];
    if (batch.length === 0 && snaps.length === 0) return;
    let outcomes;
    const started = performance.now();
    try {
      outcomes = this.inline!.appendBatch(batch.map((b) => b.request), snaps);
    } catch (error) {
      for (const a of batch) a.reject(error);
      return;
    }
    batch.forEach((a, i) => {
      const o = outcomes[i]!;
      if (o.ok) a.resolve(o.result);
      else a.reject(o.error);
    });
    this.notify();
    if (this.commitMsAverage !== null) this.adapt(performance.now() - started);
  }

  /**
   * Auto mode: once commits are slow on average, hand writing to the thread for good (nothing is pending inline
   * here). The first commits of a file (creation, WAL set-up) are slow anywhere and do not count.
   */
  private adapt(commitMs: number): void {
    this.commitsSeen += 1;
    if (this.commitsSeen <= this.warmupCommits) return;
    this.commitMsAverage = this.commitMsAverage! * 0.9 + commitMs * 0.1;
    if (this.commitMsAverage <= this.slowCommitMs || this.closed) return;
    this.commitMsAverage = null;
    this.inline = null;
    this.startWriter(this.path);
  }

  async readStream(streamId: string, options: ReadStreamOptions = {}): Promise<RecordedEvent[]> {
    const direction = options.direction ?? 'forwards';
    const max = options.maxCount ?? 1000;
    const from = options.fromRevision ?? (direction === 'forwards' ? 'start' : 'end');
    if (direction === 'forwards') {
      const start = from === 'start' ? 0 : from === 'end' ? Number.MAX_SAFE_INTEGER : from;
      return this.stmt.forwards.all(streamId, start, max).map(toRecorded);
    }
    const start = from === 'end' ? Number.MAX_SAFE_INTEGER : from === 'start' ? 0 : from;
    return this.stmt.backwards.all(streamId, start, max).map(toRecorded);
  }

  async streamRevision(streamId: string): Promise<number | null> {
    return this.stmt.streamRevision.get(streamId)?.revision ?? null;
  }

  async readAll(options: ReadAllOptions = {}): Promise<RecordedEvent[]> {
    return this.readAllSync(options);
  }

  private readAllSync(options: ReadAllOptions & { exclusive?: boolean }): RecordedEvent[] {
    const direction = options.direction ?? 'forwards';
    const max = options.maxCount ?? 1000;
    const from = options.fromPosition ?? (direction === 'forwards' ? 'start' : 'end');
    const f = filterSql(options.filter);
    let bound: number;
    if (from === 'start') bound = direction === 'forwards' ? 0 : -1;
    else if (from === 'end') bound = direction === 'forwards' ? Number.MAX_SAFE_INTEGER : Number.MAX_SAFE_INTEGER;
    else bound = Number(from.commit) + (options.exclusive ? (direction === 'forwards' ? 1 : -1) : 0);
    const op = direction === 'forwards' ? '>=' : '<=';
    const order = direction === 'forwards' ? 'ASC' : 'DESC';
    const sql = `SELECT * FROM events WHERE global_position ${op} ?${f.sql} ORDER BY global_position ${order} LIMIT ?`;
    let statement = this.readAllStatements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.readAllStatements.set(sql, statement);
    }
    const rows = statement.all(bound, ...f.params, max) as Row[];
    return rows.map(toRecorded);
  }

  subscribeToAll(options: SubscribeOptions): Subscription {
    const store = this;
    let closed = false;
    let wake: (() => void) | null = null;
    const iterator = async function* (): AsyncGenerator<SubscriptionItem> {
      let last: Position | 'start' = options.fromPosition;
      let caughtUp = false;
      while (!closed && !store.closed) {
        const page: RecordedEvent[] =
          last === 'start'
            ? store.readAllSync({ fromPosition: 'start', maxCount: 500, filter: options.filter })
            : store.readAllSync({ fromPosition: last, exclusive: true, maxCount: 500, filter: options.filter });
        if (page.length > 0) {
          for (const event of page) {
            if (closed) return;
            yield { kind: 'event', event };
            last = event.position;
          }
          continue;
        }
        if (!caughtUp) {
          caughtUp = true;
          yield { kind: 'caughtUp' };
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, store.pollIntervalMs);
          function done() {
            clearTimeout(timer);
            store.waiters.delete(done);
            wake = null;
            resolve();
          }
          wake = done;
          store.waiters.add(done);
        });
      }
    };
    const gen = iterator();
    return {
      [Symbol.asyncIterator]: () => gen,
      close: async () => {
        closed = true;
        (wake as (() => void) | null)?.();
        await gen.return(undefined);
      },
    };
  }

  async headPosition(): Promise<Position | null> {
    const p = this.stmt.maxPosition.get()?.p;
    return p === null || p === undefined ? null : pos(p);
  }

  async ping(): Promise<void> {
    this.db.prepare('SELECT 1').get();
  }

  /** Snapshots are a cache of folded state (never the truth): see app/aggregates.ts. */
  readSnapshot(streamId: string): { revision: number; state: unknown } | null {
    const row = this.stmt.getSnapshot.get(streamId);
    return row ? { revision: row.revision, state: JSON.parse(row.state) } : null;
  }

  /** Written with the next commit (no fsync of its own). */
  writeSnapshot(streamId: string, revision: number, state: unknown): void {
    if (this.closed) return;
    const snap = { streamId, revision, state: JSON.stringify(state) };
    if (this.worker) this.worker.postMessage({ kind: 'snapshot', ...snap } satisfies ToWriter);
    else {
      this.queuedSnapshots.push(snap);
      this.scheduleInlineFlush();
    }
  }

  private readonly appendListeners = new Set<() => void>();
  private fileWatcher: FSWatcher | null = null;
  /** the newest position listeners were told about: a watch event for a commit already signalled wakes nobody */
  private signalledUpTo = -1;
  private headCheckScheduled = false;
  /** the log was written while a head check was under way */
  private logWritten = false;

  /**
   * Appends committed by this process (either writer), and by other processes on the same file: every commit writes
   * the write-ahead log, which the folder's watch (inotify) reports within a millisecond or so, so a projector in
   * another process (`wearon project`) wakes as soon as the worker commits. Where the watch is unavailable, those are
   * found by the caller's poll. The watch reports every write to the log, this process's own commits too: it wakes the
   * listeners only when the log's head moved past what they were already told.
   */
  onAppended(listener: () => void): () => void {
    this.appendListeners.add(listener);
    this.watchFile();
    return () => {
      this.appendListeners.delete(listener);
      if (this.appendListeners.size === 0) this.unwatchFile();
    };
  }

  private watchFile(): void {
    if (this.fileWatcher || this.path === ':memory:' || this.closed) return;
    const wal = `${basename(this.path)}-wal`;
    try {
      this.fileWatcher = watch(dirname(this.path), { persistent: false }, (_event, file) => {
        if (file === wal) this.scheduleHeadCheck();
      });
      this.fileWatcher.on('error', () => this.unwatchFile()); // e.g. the folder went away: the poll remains
    } catch {
      this.fileWatcher = null; // no inotify watch left (ENOSPC) or none on this file system: the poll remains
    }
  }

  private unwatchFile(): void {
    this.fileWatcher?.close();
    this.fileWatcher = null;
  }

  /**
   * One head query per burst of watch events (a commit writes the log several times), then more while the head has not
   * moved: a writer makes its commit visible only after writing and syncing its log (measured: with synchronous=FULL
   * the first look found the new head for 1 commit in 9, the others waited for the next commit or the poll). Looks
   * again after 1, 2, 4 ... 25 ms until the head moved and nothing was written since, or HEAD_RECHECK_MS passed.
   */
  private scheduleHeadCheck(): void {
    if (this.headCheckScheduled) {
      this.logWritten = true;
      return;
    }
    this.headCheckScheduled = true;
    this.logWritten = false;
    const check = (waitedMs: number) => {
      if (this.closed) return void (this.headCheckScheduled = false);
      const written = this.logWritten;
      this.logWritten = false;
      const moved = (this.stmt.maxPosition.get()?.p ?? -1) > this.signalledUpTo;
      if (moved) this.notify();
      if (!written && (moved || waitedMs >= HEAD_RECHECK_MS)) return void (this.headCheckScheduled = false);
      const delay = Math.min(25, Math.max(1, waitedMs));
      setTimeout(() => check(moved ? 0 : waitedMs + delay), delay).unref();
    };
    setImmediate(() => check(0));
  }

  private notify(): void {
    if (!this.closed) this.signalledUpTo = Math.max(this.signalledUpTo, this.stmt.maxPosition.get()?.p ?? -1);
    for (const w of [...this.waiters]) w();
    for (const l of [...this.appendListeners]) l();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Queued appends finish before the file closes: the writer flushes on 'close' and answers first.
    if (this.worker) {
      this.worker.ref();
      this.worker.postMessage({ kind: 'close' } satisfies ToWriter);
      await this.workerClosed;
    } else this.flushInline();
    this.notify();
    this.unwatchFile();
    this.db.close();
  }
}

export function openSqliteEventStore(options: SqliteEventStoreOptions): SqliteEventStore {
  return new SqliteEventStore(options);
}


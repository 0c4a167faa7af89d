// The embedded event store: one SQLite file, WAL with synchronous=FULL so an append is acknowledged only after fsync.
// Appends arriving in the same tick are group-committed: one transaction (one fsync), one savepoint per append so a
// revision conflict fails only its own append. SQLite's single writer makes the global position gap-free and
// commit-ordered, so a catch-up reader using `position > last` never skips an event.
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import {
  DuplicateEventIdError,
  WrongExpectedRevisionError,
  matchesFilter,
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

const SCHEMA = `
CREATE TABLE IF NOT EXISTS events (
  global_position INTEGER PRIMARY KEY,
  event_id TEXT NOT NULL UNIQUE,
  stream_id TEXT NOT NULL,
  revision INTEGER NOT NULL,
  type TEXT NOT NULL,
  data TEXT NOT NULL,
  metadata TEXT NOT NULL,
  recorded_at INTEGER NOT NULL,
  UNIQUE (stream_id, revision)
);
CREATE TABLE IF NOT EXISTS streams (
  stream_id TEXT PRIMARY KEY,
  revision INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS snapshots (
  stream_id TEXT PRIMARY KEY,
  revision INTEGER NOT NULL,
  state TEXT NOT NULL
) WITHOUT ROWID;
`;

interface Row {
  global_position: number;
  event_id: string;
  stream_id: string;
  revision: number;
  type: string;
  data: string;
  metadata: string;
  recorded_at: number;
}

interface PendingAppend {
  streamId: string;
  events: readonly NewEvent[];
  expected: ExpectedRevision;
  resolve: (r: AppendResult) => void;
  reject: (e: unknown) => void;
}

const pos = (n: number): Position => ({ commit: BigInt(n), prepare: BigInt(n) });

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

/** SQL for a filter; prefixes use a range on the primary text order (`>= p AND < p || U+FFFF`), not LIKE. */
function filterSql(filter: EventFilter | undefined): { sql: string; params: unknown[] } {
  const parts: string[] = [];
  const params: unknown[] = [];
  if (filter?.streamPrefixes?.length) {
    parts.push(`(${filter.streamPrefixes.map(() => '(stream_id >= ? AND stream_id < ?)').join(' OR ')})`);
    for (const p of filter.streamPrefixes) params.push(p, `${p}\uffff`);
  }
  if (filter?.eventTypes?.length) {
    parts.push(`type IN (${filter.eventTypes.map(() => '?').join(',')})`);
    params.push(...filter.eventTypes);
  }
  return { sql: parts.length ? ` AND ${parts.join(' AND ')}` : '', params };
}

export interface SqliteEventStoreOptions {
  /** file path, or ':memory:' */
  path: string;
  /** how often a live subscription looks for appends made by other processes on the same file */
  pollIntervalMs?: number;
}

export class SqliteEventStore implements EventStore {
  readonly kind = 'sqlite';
  readonly db: Database.Database;
  private pending: PendingAppend[] = [];
  private flushScheduled = false;
  private closed = false;
  private readonly waiters = new Set<() => void>();
  private readonly pollIntervalMs: number;
  private readonly readAllStatements = new Map<string, Database.Statement>();
  private readonly stmt;

  constructor(options: SqliteEventStoreOptions) {
    if (options.path !== ':memory:') mkdirSync(path.dirname(path.resolve(options.path)), { recursive: true });
    this.db = new Database(options.path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
    this.pollIntervalMs = options.pollIntervalMs ?? 200;
    this.stmt = {
      streamRevision: this.db.prepare<[string], { revision: number }>('SELECT revision FROM streams WHERE stream_id = ?'),
      upsertStream: this.db.prepare('INSERT INTO streams (stream_id, revision) VALUES (?, ?) ON CONFLICT(stream_id) DO UPDATE SET revision = excluded.revision'),
      maxPosition: this.db.prepare<[], { p: number | null }>('SELECT MAX(global_position) AS p FROM events'),
      insert: this.db.prepare(
        'INSERT INTO events (global_position, event_id, stream_id, revision, type, data, metadata, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      byEventId: this.db.prepare<[string], Row>('SELECT * FROM events WHERE event_id = ?'),
      byStreamRevision: this.db.prepare<[string, number], Row>('SELECT * FROM events WHERE stream_id = ? AND revision = ?'),
      forwards: this.db.prepare<[string, number, number], Row>(
        'SELECT * FROM events WHERE stream_id = ? AND revision >= ? ORDER BY revision ASC LIMIT ?',
      ),
      backwards: this.db.prepare<[string, number, number], Row>(
        'SELECT * FROM events WHERE stream_id = ? AND revision <= ? ORDER BY revision DESC LIMIT ?',
      ),
      getSnapshot: this.db.prepare<[string], { revision: number; state: string }>('SELECT revision, state FROM snapshots WHERE stream_id = ?'),
      putSnapshot: this.db.prepare(
        'INSERT INTO snapshots (stream_id, revision, state) VALUES (?, ?, ?) ON CONFLICT(stream_id) DO UPDATE SET revision = excluded.revision, state = excluded.state WHERE excluded.revision > snapshots.revision',
      ),
    };
  }

  append(streamId: string, events: readonly NewEvent[], expected: ExpectedRevision): Promise<AppendResult> {
    if (this.closed) return Promise.reject(new Error('event store is closed'));
    if (events.length === 0) return Promise.reject(new Error('append needs at least one event'));
    return new Promise((resolve, reject) => {
      this.pending.push({ streamId, events, expected, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** One transaction for every append queued this tick; each append in its own savepoint. */
  private flush(): void {
    this.flushScheduled = false;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    const outcomes: Array<{ ok: true; result: AppendResult } | { ok: false; error: unknown }> = [];
    try {
      this.db.transaction(() => {
        let next = (this.stmt.maxPosition.get()?.p ?? -1) + 1;
        for (const a of batch) {
          this.db.exec('SAVEPOINT append_one');
          try {
            const result = this.appendOne(a, next);
            next = Math.max(next, Number(result.position.commit) + 1);
            this.db.exec('RELEASE append_one');
            outcomes.push({ ok: true, result });
          } catch (error) {
            this.db.exec('ROLLBACK TO append_one');
            this.db.exec('RELEASE append_one');
            outcomes.push({ ok: false, error });
          }
        }
      }).immediate();
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
  }

  private appendOne(a: PendingAppend, nextPosition: number): AppendResult {
    const current = this.stmt.streamRevision.get(a.streamId)?.revision ?? null;
    const replay = this.idempotentReplay(a, current);
    if (replay) return replay;
    const e = a.expected;
    const ok =
      e === 'any' ||
      (e === 'no_stream' && current === null) ||
      (e === 'stream_exists' && current !== null) ||
      (typeof e === 'number' && current === e);
    if (!ok) throw new WrongExpectedRevisionError(a.streamId, e, current ?? 'no_stream');
    let revision = current ?? -1;
    let position = nextPosition - 1;
    const now = Date.now();
    for (const ev of a.events) {
      revision += 1;
      position += 1;
      try {
        this.stmt.insert.run(position, ev.id, a.streamId, revision, ev.type, JSON.stringify(ev.data), JSON.stringify(ev.metadata), now);
      } catch (err) {
        if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') throw new DuplicateEventIdError(ev.id, a.streamId);
        throw err;
      }
    }
    this.stmt.upsertStream.run(a.streamId, revision);
    return { nextRevision: revision, position: pos(position) };
  }

  /**
   * A retried append whose event ids already stand, in order, in this stream at the revision the caller expected
   * (or anywhere for `any`/`stream_exists`) succeeds with the original result instead of writing twice.
   */
  private idempotentReplay(a: PendingAppend, current: number | null): AppendResult | null {
    const first = this.stmt.byEventId.get(a.events[0]!.id);
    if (!first) return null;
    const e = a.expected;
    const placeOk =
      first.stream_id === a.streamId &&
      (e === 'any' || e === 'stream_exists' || (e === 'no_stream' && first.revision === 0) || (typeof e === 'number' && first.revision === e + 1));
    if (!placeOk) {
      if (first.stream_id === a.streamId && current !== null) throw new WrongExpectedRevisionError(a.streamId, e, current);
      throw new DuplicateEventIdError(first.event_id, a.streamId);
    }
    let last = first;
    for (let i = 1; i < a.events.length; i++) {
      const row = this.stmt.byStreamRevision.get(a.streamId, first.revision + i);
      if (!row || row.event_id !== a.events[i]!.id) throw new DuplicateEventIdError(a.events[i]!.id, a.streamId);
      last = row;
    }
    return { nextRevision: last.revision, position: pos(last.global_position) };
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

  /** Snapshots are a cache of folded state (never the truth): see app/aggregateLoader.ts. */
  readSnapshot(streamId: string): { revision: number; state: unknown } | null {
    const row = this.stmt.getSnapshot.get(streamId);
    return row ? { revision: row.revision, state: JSON.parse(row.state) } : null;
  }

  writeSnapshot(streamId: string, revision: number, state: unknown): void {
    this.stmt.putSnapshot.run(streamId, revision, JSON.stringify(state));
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    // Let queued appends finish before closing the file.
    if (this.pending.length) this.flush();
    this.closed = true;
    this.notify();
    this.db.close();
  }
}

export function openSqliteEventStore(options: SqliteEventStoreOptions): SqliteEventStore {
  return new SqliteEventStore(options);
}

export { matchesFilter };

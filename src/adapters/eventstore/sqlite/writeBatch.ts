// The write side of the SQLite event store, over one connection: schema, and group commit of appends (one
// transaction, one fsync, one savepoint per append so a revision conflict fails only its own append). Used inline
// (':memory:', tests) and from the writer thread (files), so the rule lives in one place.
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import {
  DuplicateEventIdError,
  WrongExpectedRevisionError,
  type AppendResult,
  type ExpectedRevision,
  type NewEvent,
  type Position,
} from '../../../app/ports/eventStore.ts';

export const SCHEMA = `
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
CREATE TABLE IF NOT EXISTS snapshots (
  stream_id TEXT PRIMARY KEY,
  revision INTEGER NOT NULL,
  state TEXT NOT NULL
) WITHOUT ROWID;
`;

/** A stream's last revision, from the (stream_id, revision) index: no separate table to keep in step. */
export const STREAM_REVISION_SQL = 'SELECT MAX(revision) AS revision FROM events WHERE stream_id = ?';

export interface EventRow {
  global_position: number;
  event_id: string;
  stream_id: string;
  revision: number;
  type: string;
  data: string;
  metadata: string;
  recorded_at: number;
}

export const positionOf = (n: number): Position => ({ commit: BigInt(n), prepare: BigInt(n) });

/** Opens a connection: WAL, synchronous=FULL (an acknowledged append is on disk), schema applied. */
export function openDatabase(file: string): Database.Database {
  if (file !== ':memory:') mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 5000');
  db.exec(SCHEMA);
  return db;
}

export interface AppendRequest {
  streamId: string;
  events: readonly NewEvent[];
  expected: ExpectedRevision;
}

export type AppendOutcome = { ok: true; result: AppendResult } | { ok: false; error: unknown };

export class AppendWriter {
  private readonly stmt;

  constructor(private readonly db: Database.Database) {
    this.stmt = {
      streamRevision: db.prepare<[string], { revision: number | null }>(STREAM_REVISION_SQL),
      maxPosition: db.prepare<[], { p: number | null }>('SELECT MAX(global_position) AS p FROM events'),
      insert: db.prepare(
        'INSERT INTO events (global_position, event_id, stream_id, revision, type, data, metadata, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      byEventId: db.prepare<[string], EventRow>('SELECT * FROM events WHERE event_id = ?'),
      byStreamRevision: db.prepare<[string, number], EventRow>('SELECT * FROM events WHERE stream_id = ? AND revision = ?'),
      savepoint: db.prepare('SAVEPOINT append_one'),
      release: db.prepare('RELEASE append_one'),
      rollbackTo: db.prepare('ROLLBACK TO append_one'),
      putSnapshot: db.prepare(
        'INSERT INTO snapshots (stream_id, revision, state) VALUES (?, ?, ?) ON CONFLICT(stream_id) DO UPDATE SET revision = excluded.revision, state = excluded.state WHERE excluded.revision > snapshots.revision',
      ),
    };
  }

  /**
   * One transaction for the whole batch; with several appends, each in its own savepoint so a conflict fails only its
   * own append. Throws only if the transaction itself fails.
   */
  appendBatch(batch: readonly AppendRequest[], snapshots: ReadonlyArray<{ streamId: string; revision: number; state: string }> = []): AppendOutcome[] {
    const outcomes: AppendOutcome[] = [];
    // Snapshots are a cache: they ride along with the commit instead of costing an fsync of their own.
    const putSnapshots = () => {
      for (const s of snapshots) this.stmt.putSnapshot.run(s.streamId, s.revision, s.state);
    };
    if (batch.length === 1) {
      // The common case of a lone append needs no savepoint: its failure rolls back the whole (one-append) commit.
      try {
        this.db.transaction(() => {
          outcomes.push({ ok: true, result: this.appendOne(batch[0]!, (this.stmt.maxPosition.get()?.p ?? -1) + 1) });
          putSnapshots();
        }).immediate();
      } catch (error) {
        if (!isAppendRejection(error)) throw error;
        outcomes.push({ ok: false, error });
      }
      return outcomes;
    }
    this.db
      .transaction(() => {
        let next = (this.stmt.maxPosition.get()?.p ?? -1) + 1;
        for (const a of batch) {
          this.stmt.savepoint.run();
          try {
            const result = this.appendOne(a, next);
            next = Math.max(next, Number(result.position.commit) + 1);
            this.stmt.release.run();
            outcomes.push({ ok: true, result });
          } catch (error) {
            this.stmt.rollbackTo.run();
            this.stmt.release.run();
            outcomes.push({ ok: false, error });
          }
        }
        putSnapshots();
      })
      .immediate();
    return outcomes;
  }

  private appendOne(a: AppendRequest, nextPosition: number): AppendResult {
    const current = this.stmt.streamRevision.get(a.streamId)?.revision ?? null;
    const e = a.expected;
    const ok =
      e === 'any' ||
      (e === 'no_stream' && current === null) ||
      (e === 'stream_exists' && current !== null) ||
      (typeof e === 'number' && current === e);
    // A failed check or a taken event id may be a retry of an append that already happened: look only then.
    if (!ok) return this.replayOr(a, current, () => new WrongExpectedRevisionError(a.streamId, e, current ?? 'no_stream'));
    let revision = current ?? -1;
    let position = nextPosition - 1;
    const now = Date.now();
    for (const [i, ev] of a.events.entries()) {
      revision += 1;
      position += 1;
      try {
        this.stmt.insert.run(position, ev.id, a.streamId, revision, ev.type, JSON.stringify(ev.data), JSON.stringify(ev.metadata), now);
      } catch (err) {
        if ((err as { code?: string }).code !== 'SQLITE_CONSTRAINT_UNIQUE') throw err;
        if (i === 0) return this.replayOr(a, current, () => new DuplicateEventIdError(ev.id, a.streamId));
        throw new DuplicateEventIdError(ev.id, a.streamId);
      }
    }
    return { nextRevision: revision, position: positionOf(position) };
  }

  private replayOr(a: AppendRequest, current: number | null, otherwise: () => Error): AppendResult {
    const replay = this.idempotentReplay(a, current);
    if (replay) return replay;
    throw otherwise();
  }

  /**
   * A retried append whose event ids already stand, in order, in this stream at the revision the caller expected
   * (or anywhere for `any`/`stream_exists`) succeeds with the original result instead of writing twice.
   */
  private idempotentReplay(a: AppendRequest, current: number | null): AppendResult | null {
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
    return { nextRevision: last.revision, position: positionOf(last.global_position) };
  }
}

/** The port's own refusals of one append (as opposed to a failing database). */
const isAppendRejection = (e: unknown) => e instanceof WrongExpectedRevisionError || e instanceof DuplicateEventIdError;

// Errors cross the thread boundary as plain data and are rebuilt as the port's types.
export type WireError =
  | { kind: 'wrong_revision'; streamId: string; expected: ExpectedRevision; actual: number | 'no_stream' }
  | { kind: 'duplicate_id'; eventId: string; streamId: string }
  | { kind: 'other'; message: string };

export function toWire(err: unknown): WireError {
  if (err instanceof WrongExpectedRevisionError) return { kind: 'wrong_revision', streamId: err.streamId, expected: err.expected, actual: err.actual };
  if (err instanceof DuplicateEventIdError) return { kind: 'duplicate_id', eventId: err.eventId, streamId: err.streamId };
  return { kind: 'other', message: (err as Error)?.message ?? String(err) };
}

export function fromWire(w: WireError): Error {
  if (w.kind === 'wrong_revision') return new WrongExpectedRevisionError(w.streamId, w.expected, w.actual);
  if (w.kind === 'duplicate_id') return new DuplicateEventIdError(w.eventId, w.streamId);
  return new Error(w.message);
}

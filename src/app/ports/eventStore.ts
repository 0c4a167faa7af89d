// The event store port: the whole contract every adapter (SQLite, EventStoreDB) implements and
// tests/support/eventStoreContract.ts checks. Semantics follow EventStoreDB's where they differ from a plain log.

/** Position in the global log. SQLite: commit = prepare = the gap-free global sequence; ESDB: the transaction file positions. */
export interface Position {
  commit: bigint;
  prepare: bigint;
}

export const START: Position = Object.freeze({ commit: -1n, prepare: -1n });

export function comparePositions(a: Position, b: Position): number {
  if (a.commit !== b.commit) return a.commit < b.commit ? -1 : 1;
  if (a.prepare !== b.prepare) return a.prepare < b.prepare ? -1 : 1;
  return 0;
}

/** `commit/prepare`, the form stored in checkpoints and printed by the CLI. */
export function formatPosition(p: Position): string {
  return `${p.commit}/${p.prepare}`;
}

export function parsePosition(text: string): Position {
  const m = /^(-?\d+)(?:\/(-?\d+))?$/.exec(text.trim());
  if (!m) throw new Error(`invalid position ${JSON.stringify(text)}: expected <commit>/<prepare> or <n>`);
  const commit = BigInt(m[1]!);
  return { commit, prepare: m[2] === undefined ? commit : BigInt(m[2]) };
}

/** `no_stream`: must not exist; `stream_exists`: must exist; `any`: no check; a number: the exact last revision. */
export type ExpectedRevision = 'no_stream' | 'stream_exists' | 'any' | number;

export interface EventMeta {
  requestId: string;
  causationId: string;
  correlationId: string;
  workerId: string;
  occurredAt: string;
  [key: string]: unknown;
}

export interface NewEvent<T = unknown> {
  /** UUID; deterministic per step so a retried append is recognised */
  id: string;
  type: string;
  data: T;
  metadata: EventMeta;
}

export interface RecordedEvent<T = unknown> extends NewEvent<T> {
  streamId: string;
  /** 0-based index within the stream */
  revision: number;
  position: Position;
  recordedAt: Date;
}

export interface AppendResult {
  /** revision of the last event in the stream after the append */
  nextRevision: number;
  position: Position;
}

export class WrongExpectedRevisionError extends Error {
  override readonly name = 'WrongExpectedRevisionError';
  constructor(
    readonly streamId: string,
    readonly expected: ExpectedRevision,
    /** last revision, or 'no_stream' */
    readonly actual: number | 'no_stream',
  ) {
    super(`stream ${streamId}: expected revision ${String(expected)}, actual ${String(actual)}`);
  }
}

/** The same event id was already written with other content or elsewhere: a bug, never retried. */
export class DuplicateEventIdError extends Error {
  override readonly name = 'DuplicateEventIdError';
  constructor(readonly eventId: string, readonly streamId: string) {
    super(`event id ${eventId} already used outside this append to ${streamId}`);
  }
}

/** The store could not be reached or answered with a transport error; the caller may retry. */
export class EventStoreUnavailableError extends Error {
  override readonly name = 'EventStoreUnavailableError';
}

export interface ReadStreamOptions {
  direction?: 'forwards' | 'backwards';
  /** inclusive; default: start (forwards) or end (backwards) */
  fromRevision?: number | 'start' | 'end';
  /** page size; default 1000 */
  maxCount?: number;
}

export interface ReadAllOptions {
  direction?: 'forwards' | 'backwards';
  /** inclusive for reads; default start (forwards) or end (backwards) */
  fromPosition?: Position | 'start' | 'end';
  maxCount?: number;
  filter?: EventFilter;
}

/** Server-side filter: stream id prefixes OR'd, event types OR'd; both given = both must match. */
export interface EventFilter {
  streamPrefixes?: readonly string[];
  eventTypes?: readonly string[];
}

export type SubscriptionItem =
  | { kind: 'event'; event: RecordedEvent }
  /** history is delivered; what follows is live */
  | { kind: 'caughtUp' };

export interface SubscribeOptions {
  /** exclusive: delivery starts after this position; 'start' delivers everything */
  fromPosition: Position | 'start';
  filter?: EventFilter;
}

/** Pull-based, so a slow consumer applies backpressure. Ends when closed; throws if the store fails for good. */
export interface Subscription extends AsyncIterable<SubscriptionItem> {
  close(): Promise<void>;
}

export interface EventStore {
  readonly kind: string;
  append(streamId: string, events: readonly NewEvent[], expected: ExpectedRevision): Promise<AppendResult>;
  /** Returns [] for a missing stream. */
  readStream(streamId: string, options?: ReadStreamOptions): Promise<RecordedEvent[]>;
  /** Last revision of the stream, or null when it does not exist. */
  streamRevision(streamId: string): Promise<number | null>;
  readAll(options?: ReadAllOptions): Promise<RecordedEvent[]>;
  subscribeToAll(options: SubscribeOptions): Subscription;
  /** Position of the last event in the log (null when empty). */
  headPosition(): Promise<Position | null>;
  /**
   * Calls `listener` soon after events were appended: this process's appends, and with Postgres other processes' too
   * (NOTIFY). A hint to read the log now, never a delivery: consumers still read the log, and poll as a fallback for
   * appends the signal does not see. Returns the function that removes the listener. Optional: stores without it are polled.
   */
  onAppended?(listener: () => void): () => void;
  /** Answers promptly whether the store is usable; used by /health. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export function matchesFilter(streamId: string, type: string, filter: EventFilter | undefined): boolean {
  if (!filter) return true;
  if (filter.streamPrefixes?.length && !filter.streamPrefixes.some((p) => streamId.startsWith(p))) return false;
  if (filter.eventTypes?.length && !filter.eventTypes.includes(type)) return false;
  return true;
}

// The event store port on EventStoreDB / KurrentDB through @eventstore/db-client (gRPC). Selected by EVENTSTORE_URL.
// Mapping table and supervisor behaviour: docs/eventstoredb.md.
import {
  ANY,
  BACKWARDS,
  END,
  EventStoreDBClient,
  FORWARDS,
  NO_STREAM,
  START,
  STREAM_EXISTS,
  StreamNotFoundError,
  UnavailableError,
  WrongExpectedVersionError,
  eventTypeFilter,
  jsonEvent,
  streamNameFilter,
  type AllStreamResolvedEvent,
  type AllStreamSubscription,
  type AppendExpectedRevision,
  type Filter,
  type JSONType,
  type ResolvedEvent,
} from '@eventstore/db-client';
import { StreamsClient } from '@eventstore/db-client/generated/streams_grpc_pb.js';
import {
  EventStoreUnavailableError,
  WrongExpectedRevisionError,
  comparePositions,
  formatPosition,
  matchesFilter,
  type AppendResult,
  type EventFilter,
  type EventMeta,
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
import type { Logger } from '../../../logger.ts';
import type { Metrics } from '../../../metrics.ts';

export interface EsdbEventStoreOptions {
  /**
   * `esdb://host:2113?tls=false`, or `esdb+discover://host:2113` for gossip discovery of a cluster (TLS options as the
   * client documents). @eventstore/db-client 6 accepts only these two schemes (it refuses `kurrentdb://`).
   */
  connectionString: string;
  logger: Logger;
  metrics?: Metrics;
  /** Deadline of one append and of one read (the client applies none to reads itself). Default 10 s. */
  timeoutMs?: number;
  /** Attempts for an append or read that failed with a transport error (same event ids each time). Default 3. */
  attempts?: number;
  /** Backoff between retries and resubscriptions: initial and cap. Defaults 100 ms and 5 s. */
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** Consecutive failed resubscriptions before the subscription throws. Default: unlimited. */
  maxResubscribeAttempts?: number;
  /** Page size of `$all` reads (filters are applied client-side there, see docs). Default 1000. */
  readPageSize?: number;
}

const DEFAULT_PAGE = 1000;
/** ESDB's own correlation keys, understood by its system projections ($by_correlation_id). */
const ESDB_CORRELATION = '$correlationId';
const ESDB_CAUSATION = '$causationId';

type ClientRecorded = NonNullable<AllStreamResolvedEvent['event']>;

/**
 * The server cannot take the request now: starting, too busy, or a cluster without a known leader (an election).
 * KurrentDB 26 answers those over BatchAppend as a per-append error the client turns into an UnknownError without a
 * code ("Could not recognize Server Is Not Ready"), over the classic Append as UNAVAILABLE or UNKNOWN, and refuses every
 * call of a node that is not ready yet with UNAVAILABLE (Streams.BatchAppend.cs, RpcExceptions.cs, NotReadyInterceptor.cs).
 */
const NODE_STATE = /Server Is Not Ready|Server Is (?:Too )?Busy|No leader info available|node is not ready yet/i;

export function isNodeStateRefusal(err: unknown): boolean {
  return (err as { type?: string } | null)?.type === 'unknown' && NODE_STATE.test(err instanceof Error ? err.message : '');
}

/** Errors worth another attempt: the server was unreachable, restarting, busy, electing, or cut the call. */
export function isTransientEsdbError(err: unknown): boolean {
  if (err instanceof EventStoreUnavailableError) return true;
  const type = (err as { type?: string } | null)?.type;
  if (type && ['unavailable', 'cancelled', 'deadline-exceeded', 'timeout', 'not-leader'].includes(type)) return true;
  const code = (err as { code?: unknown } | null)?.code;
  // UnknownError also wraps gRPC INTERNAL, such as "Received RST_STREAM" when a connection is cut mid-call. UNKNOWN (2)
  // alone says nothing (a server-side exception answers with it too): only the node-state messages make it transient.
  if (type === 'unknown') return code === 13 || code === 14 || isNodeStateRefusal(err);
  // Some client paths (the ServerFeatures probe before an append) rethrow the raw gRPC error.
  return type === undefined && typeof code === 'number' && [1, 4, 10, 13, 14].includes(code);
}

/** A subscription ended by the connection or the server rather than by a permanent refusal or our own bug. */
function isDrop(err: unknown): boolean {
  return isTransientEsdbError(err) || (err as { code?: unknown } | null)?.code === 'ERR_STREAM_PREMATURE_CLOSE';
}

function unavailable(what: string, err: unknown): EventStoreUnavailableError {
  const msg = err instanceof Error ? err.message : String(err);
  return new EventStoreUnavailableError(`EventStoreDB ${what} failed: ${msg}`, { cause: err });
}

function sleep(ms: number, signal?: { wake?: () => void }): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    if (signal)
      signal.wake = () => {
        clearTimeout(t);
        resolve();
      };
  });
}

function toClientExpected(expected: ExpectedRevision): AppendExpectedRevision {
  switch (expected) {
    case 'no_stream':
      return NO_STREAM;
    case 'stream_exists':
      return STREAM_EXISTS;
    case 'any':
      return ANY;
    default:
      if (!Number.isSafeInteger(expected) || expected < 0) throw new TypeError(`invalid expected revision ${String(expected)}`);
      return BigInt(expected);
  }
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** ESDB filters on one dimension server-side; the other (and `$` system events) is checked client-side. */
function serverFilter(filter: EventFilter | undefined): Filter {
  if (filter?.streamPrefixes?.length) return streamNameFilter({ prefixes: [...filter.streamPrefixes] });
  if (filter?.eventTypes?.length) return eventTypeFilter({ regex: `^(?:${filter.eventTypes.map(escapeRegex).join('|')})$` });
  return eventTypeFilter({ regex: '^[^$]' }); // the client's excludeSystemEvents()
}

function isSystem(e: ClientRecorded): boolean {
  return e.streamId.startsWith('$') || e.type.startsWith('$');
}

function keep(e: ClientRecorded, filter: EventFilter | undefined): boolean {
  return !isSystem(e) && matchesFilter(e.streamId, e.type, filter);
}

/** The port's START ({-1,-1}, the checkpoint of a fresh projection) is the beginning of `$all`: ESDB positions are unsigned. */
function fromStart<T extends Position | 'start' | 'end'>(p: T): T | 'start' {
  return typeof p === 'object' && (p.commit < 0n || p.prepare < 0n) ? 'start' : p;
}

function positionOf(e: ClientRecorded): Position {
  if (!e.position) throw new Error(`event ${e.id} in ${e.streamId} came without a $all position`);
  return { commit: e.position.commit, prepare: e.position.prepare };
}

function toRecorded(e: ClientRecorded): RecordedEvent {
  const raw = (e.metadata && typeof e.metadata === 'object' && !(e.metadata instanceof Uint8Array) ? e.metadata : {}) as Record<string, unknown>;
  const { [ESDB_CORRELATION]: _c, [ESDB_CAUSATION]: _k, ...metadata } = raw;
  return {
    id: e.id,
    type: e.type,
    data: e.data,
    metadata: metadata as EventMeta,
    streamId: e.streamId,
    revision: Number(e.revision),
    position: positionOf(e),
    recordedAt: e.created,
  };
}

const CAUGHT_UP = Object.freeze({ caughtUp: true as const });

/**
 * The client reports caughtUp as a 'caughtUp' event on the stream object, outside the data it buffers; passing it on
 * from there could overtake events still in the buffer. This puts a marker into the data, in order, instead. It relies
 * on the client's Subscription being a Transform over the gRPC responses (db-client 6.x); the contract test that expects
 * caughtUp right after the history fails if an upgrade changes that.
 */
function caughtUpInBand(sub: AllStreamSubscription): void {
  const t = sub as unknown as { _transform: (resp: { hasCaughtUp?: () => boolean }, enc: BufferEncoding, next: (e?: Error | null, v?: unknown) => void) => void };
  const original = t._transform.bind(sub);
  t._transform = (resp, enc, next) => (resp?.hasCaughtUp?.() ? next(null, CAUGHT_UP) : original(resp, enc, next));
}

export class EsdbEventStore implements EventStore {
  readonly kind = 'esdb';
  readonly client: EventStoreDBClient;
  private readonly log: Logger;
  private readonly timeoutMs: number;
  private readonly attempts: number;
  private readonly subscriptions = new Set<EsdbSubscription>();
  private closed = false;

  constructor(readonly options: EsdbEventStoreOptions) {
    this.client = EventStoreDBClient.connectionString(options.connectionString);
    this.log = options.logger.child({ component: 'esdb-event-store' });
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.attempts = Math.max(1, options.attempts ?? 3);
  }

  backoff(attempt: number): number {
    const initial = this.options.backoffInitialMs ?? 100;
    const cap = this.options.backoffMaxMs ?? 5_000;
    const base = Math.min(cap, initial * 2 ** Math.max(0, attempt - 1));
    return Math.round(base * (0.8 + Math.random() * 0.4)); // jitter: reconnecting workers do not move in lockstep
  }

  /** Runs `op` again after transport errors, with backoff; a last failure becomes EventStoreUnavailableError. */
  private async retrying<T>(what: string, op: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      if (this.closed) throw new EventStoreUnavailableError(`EventStoreDB ${what}: store closed`);
      try {
        return await op();
      } catch (err) {
        if (!isTransientEsdbError(err)) throw err;
        if (isNodeStateRefusal(err)) await this.reconnect(err);
        if (attempt >= this.attempts) throw unavailable(what, err);
        const delayMs = this.backoff(attempt);
        this.log.warn({ err, what, attempt, delayMs }, 'EventStoreDB call failed; retrying');
        await sleep(delayMs);
      }
    }
  }

  /**
   * A node-state refusal over BatchAppend arrives inside a healthy call, so the client keeps its channel (it reconnects
   * only when a call fails with UNAVAILABLE or NotLeader, which is what the classic Append gets for the same refusals).
   * Have it reconnect the same way, so that the next attempt runs discovery again (esdb+discover://) and re-reads the
   * server's features rather than asking a node that said it cannot serve.
   */
  private async reconnect(err: unknown): Promise<void> {
    const client = this.client as unknown as {
      getGRPCClient(c: typeof StreamsClient, name: string): Promise<{ getChannel(): unknown }>;
      handleError(c: unknown, e: Error): Promise<void>;
    };
    try {
      await client.handleError(await client.getGRPCClient(StreamsClient, 'reconnect'), new UnavailableError(undefined, (err as Error).message));
    } catch (e) {
      this.log.warn({ err: e }, 'EventStoreDB reconnect after a node-state refusal failed'); // the retry goes to the same node then
    }
  }

  private bounded<T>(what: string, promise: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new EventStoreUnavailableError(`EventStoreDB ${what} got no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
    });
    promise.catch(() => undefined); // a late failure after the timeout is not unhandled
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  }

  /** Collects a read with a deadline (the client gives streaming reads an infinite one). */
  private async collect<E>(what: string, read: () => AsyncIterable<E> & { cancel(): Promise<void>; destroy(err?: Error): unknown }): Promise<E[]> {
    return this.retrying(what, async () => {
      const stream = read();
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        void stream.cancel().catch(() => undefined);
        stream.destroy(new EventStoreUnavailableError(`EventStoreDB ${what} timed out after ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      try {
        const out: E[] = [];
        for await (const e of stream) out.push(e);
        return out;
      } catch (err) {
        if (timedOut) throw new EventStoreUnavailableError(`EventStoreDB ${what} timed out after ${this.timeoutMs} ms`, { cause: err });
        throw err;
      } finally {
        clearTimeout(timer);
      }
    });
  }

  async append(streamId: string, events: readonly NewEvent[], expected: ExpectedRevision): Promise<AppendResult> {
    const expectedRevision = toClientExpected(expected);
    const payload = events.map((e) =>
      jsonEvent({
        id: e.id,
        type: e.type,
        data: e.data as JSONType,
        metadata: { ...e.metadata, [ESDB_CORRELATION]: e.metadata.correlationId, [ESDB_CAUSATION]: e.metadata.causationId },
      }),
    );
    try {
      // Same event ids on every attempt: if an earlier attempt committed before the connection broke, the server
      // recognises the retry and answers with the original result instead of writing twice.
      // The deadline travels to the server, but over BatchAppend the client itself never gives up on an answer:
      // bound the wait here too (a late commit is then recognised by the retry).
      const r = await this.retrying('append', () =>
        this.bounded('append', this.client.appendToStream(streamId, payload, { expectedRevision, deadline: this.timeoutMs })),
      );
      const nextRevision = Number(r.nextExpectedRevision);
      // The port promises the position of the last event, which is what the server answers with: since 20.x it writes
      // each event as its own committed record and reports the write's last one (StorageWriterService, WriteEvents).
      // Only an answer without a position (the protocol allows it) is completed by reading the event from the leader.
      const position: Position = r.position ? { commit: r.position.commit, prepare: r.position.prepare } : await this.positionFromLeader(streamId, nextRevision);
      for (const l of [...this.appendListeners]) l();
      return { nextRevision, position };
    } catch (err) {
      if (err instanceof WrongExpectedVersionError) {
        const actual = err.actualVersion === 'no_stream' || typeof err.actualVersion !== 'bigint' ? 'no_stream' : Number(err.actualVersion);
        throw new WrongExpectedRevisionError(streamId, expected, actual);
      }
      throw err;
    }
  }

  /**
   * The committed event at `revision`, read from the leader (a follower may not have it yet): retried like a transport
   * failure while it is not there, and EventStoreUnavailableError in the end, never a plain error after a commit (the
   * caller's retry of the append with the same ids is answered idempotently).
   */
  private positionFromLeader(streamId: string, revision: number): Promise<Position> {
    return this.retrying('append position', async () => {
      const read = await this.collect<ResolvedEvent>('readStream', () =>
        this.client.readStream(streamId, { direction: FORWARDS, fromRevision: BigInt(revision), maxCount: 1, requiresLeader: true }),
      ).catch((err: unknown) => (err instanceof StreamNotFoundError ? [] : Promise.reject(err)));
      const event = read[0]?.event;
      if (!event || Number(event.revision) !== revision) {
        throw new EventStoreUnavailableError(`EventStoreDB append to ${streamId}: revision ${revision} not readable on the leader yet`);
      }
      return positionOf(event as ClientRecorded);
    });
  }

  async readStream(streamId: string, options: ReadStreamOptions = {}): Promise<RecordedEvent[]> {
    const maxCount = options.maxCount ?? DEFAULT_PAGE;
    if (maxCount <= 0) return [];
    const backwards = options.direction === 'backwards';
    const from = options.fromRevision ?? (backwards ? 'end' : 'start');
    const fromRevision = from === 'start' ? START : from === 'end' ? END : BigInt(from);
    try {
      const read = await this.collect<ResolvedEvent>('readStream', () =>
        this.client.readStream(streamId, { direction: backwards ? BACKWARDS : FORWARDS, fromRevision, maxCount }),
      );
      return read.flatMap((r) => (r.event ? [toRecorded(r.event as ClientRecorded)] : []));
    } catch (err) {
      if (err instanceof StreamNotFoundError) return [];
      throw err;
    }
  }

  async streamRevision(streamId: string): Promise<number | null> {
    const [last] = await this.readStream(streamId, { direction: 'backwards', fromRevision: 'end', maxCount: 1 });
    return last ? last.revision : null;
  }

  private readAllPage(from: Position | 'start' | 'end', backwards: boolean, maxCount: number) {
    return this.collect<AllStreamResolvedEvent>('readAll', () =>
      this.client.readAll({
        direction: backwards ? BACKWARDS : FORWARDS,
        fromPosition: from === 'start' ? START : from === 'end' ? END : from,
        maxCount,
      }),
    );
  }

  /**
   * @eventstore/db-client 6 sends no filter with readAll, so `$all` is paged here and filtered client-side (system
   * events always dropped). Forwards reads from a position include it; backwards, ESDB reads the records before it, so
   * the event at the position is fetched first. Pages overlap by at most one event, dropped by position.
   */
  async readAll(options: ReadAllOptions = {}): Promise<RecordedEvent[]> {
    const want = options.maxCount ?? DEFAULT_PAGE;
    if (want <= 0) return [];
    const backwards = options.direction === 'backwards';
    const pageSize = Math.max(1, Math.min(this.options.readPageSize ?? DEFAULT_PAGE, Math.max(want, 100)));
    const out: RecordedEvent[] = [];
    let from: Position | 'start' | 'end' = fromStart(options.fromPosition ?? (backwards ? 'end' : 'start'));
    if (backwards && from === 'start') return [];
    let bound: Position | undefined;

    if (backwards && typeof from === 'object') {
      const [at] = await this.readAllPage(from, false, 1);
      if (at?.event && comparePositions(positionOf(at.event), from) === 0 && keep(at.event, options.filter)) out.push(toRecorded(at.event));
      bound = from;
    }
    while (out.length < want) {
      const page = await this.readAllPage(from, backwards, pageSize);
      for (const r of page) {
        if (!r.event) continue;
        const pos = positionOf(r.event);
        if (bound && (backwards ? comparePositions(pos, bound) >= 0 : comparePositions(pos, bound) <= 0)) continue;
        if (keep(r.event, options.filter)) out.push(toRecorded(r.event));
        if (out.length >= want) return out;
      }
      const last = page.at(-1)?.event;
      if (page.length < pageSize || !last) break;
      from = bound = positionOf(last);
    }
    return out;
  }

  private readonly appendListeners = new Set<() => void>();

  /** This process's appends only; other processes' are found by the consumers' poll (or their subscriptions). */
  onAppended(listener: () => void): () => void {
    this.appendListeners.add(listener);
    return () => void this.appendListeners.delete(listener);
  }

  subscribeToAll(options: SubscribeOptions): Subscription {
    if (this.closed) throw new EventStoreUnavailableError('EventStoreDB store closed');
    const sub = new EsdbSubscription(this, options, this.log, () => this.subscriptions.delete(sub));
    this.subscriptions.add(sub);
    return sub;
  }

  async headPosition(): Promise<Position | null> {
    const [last] = await this.readAll({ direction: 'backwards', maxCount: 1 });
    return last?.position ?? null;
  }

  async ping(): Promise<void> {
    const timeout = Math.min(this.timeoutMs, 3_000);
    let timer: NodeJS.Timeout | undefined;
    const read = this.client.readAll({ direction: BACKWARDS, fromPosition: END, maxCount: 1 });
    try {
      await Promise.race([
        (async () => {
          for await (const _ of read) void _;
        })(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new EventStoreUnavailableError(`EventStoreDB ping timed out after ${timeout} ms`)), timeout);
        }),
      ]);
    } catch (err) {
      throw err instanceof EventStoreUnavailableError ? err : unavailable('ping', err);
    } finally {
      clearTimeout(timer);
      void read.cancel().catch(() => undefined); // a stalled call must not linger on the channel
      read.destroy();
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.subscriptions].map((s) => s.close()));
    await this.client.dispose();
  }
}

/**
 * A `$all` catch-up subscription under a supervisor: when the server drops it (UNAVAILABLE, restart, a cut connection,
 * or a clean end of the call) it subscribes again from the last position it handed out, exclusive, after a capped
 * exponential backoff. Each attempt's client stream is cancelled and destroyed before the next one starts, so nothing
 * accumulates across reconnects. Events at or before the last delivered position are never delivered again.
 */
class EsdbSubscription implements Subscription {
  private closed = false;
  private started = false;
  private current: AllStreamSubscription | undefined;
  private readonly sleeper: { wake?: () => void } = {};
  /** last position handed to the consumer (or given as the exclusive start) */
  private last: Position | 'start';
  reconnects = 0;

  constructor(
    private readonly store: EsdbEventStore,
    private readonly options: SubscribeOptions,
    private readonly log: Logger,
    private readonly onClose: () => void,
  ) {
    this.last = fromStart(options.fromPosition);
  }

  [Symbol.asyncIterator](): AsyncIterator<SubscriptionItem> {
    if (this.started) throw new Error('a subscription can be iterated once');
    this.started = true;
    return this.run();
  }

  private async *run(): AsyncGenerator<SubscriptionItem> {
    const maxAttempts = this.store.options.maxResubscribeAttempts ?? Number.POSITIVE_INFINITY;
    let failures = 0;
    try {
      while (!this.closed) {
        const sub = this.store.client.subscribeToAll({
          fromPosition: this.last === 'start' ? START : this.last,
          filter: serverFilter(this.options.filter),
        });
        caughtUpInBand(sub);
        this.current = sub;
        const confirmed = () => (failures = 0);
        sub.on('confirmation', confirmed);
        let error: unknown;
        try {
          for await (const item of sub as AsyncIterable<AllStreamResolvedEvent | typeof CAUGHT_UP>) {
            if (item === CAUGHT_UP) {
              yield { kind: 'caughtUp' };
              continue;
            }
            const e = (item as AllStreamResolvedEvent).event;
            if (!e) continue;
            const pos = positionOf(e);
            if (this.last !== 'start' && comparePositions(pos, this.last) <= 0) continue;
            this.last = pos;
            if (keep(e, this.options.filter)) yield { kind: 'event', event: toRecorded(e) };
          }
        } catch (err) {
          error = err;
        } finally {
          sub.off('confirmation', confirmed);
          this.current = undefined;
          await sub.unsubscribe().catch(() => undefined);
          sub.destroy();
        }
        if (this.closed) return;
        if (error && !isDrop(error)) throw error; // access denied, a bug in a mapper...: resubscribing cannot help
        failures++;
        if (failures > maxAttempts) throw unavailable('subscription', error ?? new Error('ended'));
        const delayMs = this.store.backoff(failures);
        this.reconnects++;
        this.store.options.metrics?.eventStoreResubscribes.inc();
        this.log.warn(
          { err: error, attempt: failures, delayMs, from: this.last === 'start' ? 'start' : formatPosition(this.last) },
          'EventStoreDB subscription dropped; resubscribing',
        );
        await sleep(delayMs, this.sleeper);
      }
    } finally {
      this.closed = true;
      this.onClose();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.sleeper.wake?.();
    const sub = this.current;
    this.current = undefined;
    if (sub) {
      await sub.unsubscribe().catch(() => undefined);
      sub.destroy();
    }
    this.onClose();
  }
}

export function openEsdbEventStore(options: EsdbEventStoreOptions): EsdbEventStore {
  return new EsdbEventStore(options);
}

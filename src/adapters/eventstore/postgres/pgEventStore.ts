// The event store port on Postgres (Supabase included): selected by EVENTSTORE_URL=postgres://… Tables and the append
// function live in their own schema (./schema.ts), migrated at open. One round trip per append; optimistic concurrency
// per stream; a retried append (same ids, same place) is answered with the original result. Positions are
// (transaction id, sequence), and the global log is read only below the oldest running transaction, so a reader never
// skips an event whose transaction commits after a later-numbered one. Subscriptions wake on a NOTIFY sent right after
// appends commit, and poll as a fallback. docs/postgres-event-store.md: approach, cost, Supabase, migration.
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import {
  DuplicateEventIdError,
  EventStoreUnavailableError,
  WrongExpectedRevisionError,
  comparePositions,
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
import { DEFAULT_SCHEMA, DUPLICATE_ID_STATE, EXPECTED_CODE, STORE_VERSION, assertSchemaName, channelOf, migratePgEventStore, storeVersion } from './schema.ts';

export interface PgEventStoreOptions {
  /** `postgres://user:pass@host:5432/db` (on Supabase: the direct or session-pooler connection; see docs) */
  connectionString: string;
  /** Schema of the store's tables; default `wearon_events`. */
  schema?: string;
  logger: Logger;
  metrics?: Metrics;
  /** Connections for appends and reads. Default 8. Subscriptions share one more connection for LISTEN. */
  poolSize?: number;
  /** A live subscription also looks for new events this often (NOTIFY wakes it sooner). Default 1000 ms. */
  pollIntervalMs?: number;
  /** Attempts of a call that failed with a connection error (an append keeps its ids, so a retry is idempotent). Default 3. */
  attempts?: number;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  connectTimeoutMs?: number;
  /** Shown in pg_stat_activity. Default `wearon-event-store`. */
  applicationName?: string;
  /** Migrate the schema at open (default true); false: fail unless an operator migrated it ahead of time. */
  migrate?: boolean;
  /** How long a global read waits for committed events held back by an older running transaction. Default 10 s. */
  settleTimeoutMs?: number;
}

const DEFAULT_PAGE = 1000;
const COLUMNS = 'transaction_id::text AS tx, seq, event_id, stream_id, revision, type, data, metadata, recorded_at';

/** One page of the global log: its settled events, whether committed ones wait unsettled, the newest of those. */
interface GlobalPage {
  events: RecordedEvent[];
  hidden: boolean;
  horizon: Position | undefined;
}
const SUBSCRIPTION_PAGE = 500;

interface EventRow {
  tx: string;
  seq: string;
  event_id: string;
  stream_id: string;
  revision: string;
  type: string;
  data: unknown;
  metadata: EventMeta;
  recorded_at: Date;
}

function toRecorded(r: EventRow): RecordedEvent {
  return {
    id: r.event_id,
    type: r.type,
    data: r.data,
    metadata: r.metadata,
    streamId: r.stream_id,
    revision: Number(r.revision),
    position: { commit: BigInt(r.tx), prepare: BigInt(r.seq) },
    recordedAt: r.recorded_at,
  };
}

const NODE_NET_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND']);
/** SQLSTATEs a new attempt can get past: admin/crash shutdown, cannot connect now, too many connections, serialization, deadlock, statement or lock timeout. */
const TRANSIENT_STATES = new Set(['57P01', '57P02', '57P03', '53300', '40001', '40P01', '57014', '55P03']);

/** A connection problem or a state a new attempt can get past (as opposed to a bug or a refusal). */
export function isTransientPgError(err: unknown): boolean {
  if (err instanceof EventStoreUnavailableError) return true;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && (NODE_NET_ERRORS.has(code) || TRANSIENT_STATES.has(code) || code.startsWith('08'))) return true;
  const message = err instanceof Error ? err.message : '';
  return /Connection terminated|connection error|timeout exceeded when trying to connect|Query read timeout|Client was closed/i.test(message);
}

function toCode(expected: ExpectedRevision): number {
  if (typeof expected === 'string') return EXPECTED_CODE[expected];
  if (!Number.isSafeInteger(expected) || expected < 0) throw new TypeError(`invalid expected revision ${String(expected)}`);
  return expected;
}

/** WHERE fragments for a filter, appending its parameters. A prefix is `^@` (starts with): an index range under "C". */
function filterSql(filter: EventFilter | undefined, params: unknown[]): string {
  let sql = '';
  if (filter?.streamPrefixes?.length) {
    const one = filter.streamPrefixes.map((p) => (params.push(p), `stream_id ^@ $${params.length}`));
    sql += ` AND (${one.join(' OR ')})`;
  }
  if (filter?.eventTypes?.length) {
    params.push(filter.eventTypes);
    sql += ` AND type = ANY($${params.length}::text[])`;
  }
  return sql;
}

export class PgEventStore implements EventStore {
  readonly kind = 'postgres';
  readonly schema: string;
  readonly pool: pg.Pool;
  private readonly log: Logger;
  private readonly attempts: number;
  private readonly notifier: AppendNotifier;
  /** the NOTIFY channel appends are announced on */
  private readonly channel: string;
  private readonly subscriptions = new Set<PgSubscription>();
  private closed = false;

  constructor(readonly options: PgEventStoreOptions) {
    this.schema = assertSchemaName(options.schema ?? DEFAULT_SCHEMA);
    this.log = options.logger.child({ component: 'pg-event-store' });
    this.attempts = Math.max(1, options.attempts ?? 3);
    this.pool = new pg.Pool(this.clientConfig(options.poolSize ?? 8));
    // An idle client that dies is replaced by the pool; log instead of crashing the process.
    this.pool.on('error', (err) => this.log.warn({ err }, 'event_store_pg_idle_error'));
    this.channel = channelOf(this.schema);
    this.notifier = new AppendNotifier(() => this.connectListener(), this.channel, this.log, this);
  }

  private clientConfig(max?: number): pg.PoolConfig {
    return {
      connectionString: this.options.connectionString,
      connectionTimeoutMillis: this.options.connectTimeoutMs ?? 10_000,
      application_name: this.options.applicationName ?? 'wearon-event-store',
      ...(max ? { max } : {}),
    };
  }

  /** Checks the connection and brings the schema up to date (or checks it is, with `migrate: false`). */
  async open(): Promise<this> {
    const c = await this.retrying('open', () => this.pool.connect());
    try {
      if (this.options.migrate === false) {
        const v = await storeVersion(c, this.schema);
        if (v !== STORE_VERSION) throw new Error(`event store schema ${this.schema} is at version ${v}, expected ${STORE_VERSION}: run \`wearon migrate\``);
      } else {
        const m = await migratePgEventStore(c, this.schema);
        if (m.from !== m.to) this.log.info({ schema: this.schema, from: m.from, to: m.to }, 'event_store_migrated');
      }
    } finally {
      c.release();
    }
    return this;
  }

  backoff(attempt: number): number {
    const initial = this.options.backoffInitialMs ?? 100;
    const cap = this.options.backoffMaxMs ?? 5_000;
    const base = Math.min(cap, initial * 2 ** Math.max(0, attempt - 1));
    return Math.round(base * (0.8 + Math.random() * 0.4));
  }

  /** Runs `op` again after transient errors, with backoff; a last failure becomes EventStoreUnavailableError. */
  private async retrying<T>(what: string, op: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      if (this.closed) throw new EventStoreUnavailableError(`Postgres event store ${what}: store closed`);
      try {
        return await op();
      } catch (err) {
        if (!isTransientPgError(err)) throw err;
        if (attempt >= this.attempts) {
          throw new EventStoreUnavailableError(`Postgres event store ${what} failed: ${(err as Error).message}`, { cause: err });
        }
        const delayMs = this.backoff(attempt);
        this.log.warn({ err, what, attempt, delayMs }, 'Postgres event store call failed; retrying');
        await sleep(delayMs);
      }
    }
  }

  private query<R extends pg.QueryResultRow>(what: string, text: string, values: unknown[]): Promise<R[]> {
    return this.retrying(what, async () => (await this.pool.query<R>(text, values)).rows);
  }

  async append(streamId: string, events: readonly NewEvent[], expected: ExpectedRevision): Promise<AppendResult> {
    if (this.closed) throw new Error('event store is closed');
    if (events.length === 0) throw new Error('append needs at least one event');
    const code = toCode(expected);
    try {
      // Same ids on every attempt: if an earlier attempt committed before its answer was lost, the retry is
      // recognised and answered with the original result.
      const [row] = await this.query<{ outcome: string; stream_revision: string | null; commit_position: string | null; prepare_position: string | null }>(
        'append',
        `SELECT * FROM ${this.schema}.append_events($1, $2, $3::uuid[], $4::text[], $5::jsonb, $6::jsonb)`,
        [
          streamId,
          code,
          events.map((e) => e.id),
          events.map((e) => e.type),
          JSON.stringify(events.map((e) => e.data)),
          JSON.stringify(events.map((e) => e.metadata)),
        ],
      );
      if (!row) throw new Error(`append to ${streamId} returned no row`);
      if (row.outcome === 'wrong') {
        throw new WrongExpectedRevisionError(streamId, expected, row.stream_revision === null ? 'no_stream' : Number(row.stream_revision));
      }
      if (row.outcome === 'ok') {
        this.announce();
        this.notifier.signal(); // this process's consumers need not wait for the NOTIFY round trip
      }
      return {
        nextRevision: Number(row.stream_revision),
        position: { commit: BigInt(row.commit_position!), prepare: BigInt(row.prepare_position!) },
      };
    } catch (err) {
      if ((err as { code?: string }).code === DUPLICATE_ID_STATE) {
        throw new DuplicateEventIdError((err as { detail?: string }).detail || events[0]!.id, streamId);
      }
      throw err;
    }
  }

  private announcing = false;
  private announceAgain = false;

  /**
   * Wakes the listening subscriptions (of every process) after appends committed: a NOTIFY of its own, at most one in
   * flight, covering every append that committed meanwhile. Not inside the appending transaction: NOTIFY takes a
   * database-wide lock from its commit until the commit's WAL flush ends, which would serialise every appending commit
   * (the bench measured about 4x fewer concurrent appends). Its own commit skips the flush wait (set_config for the
   * statement's transaction). Lost only if this process dies first: subscriptions then find the events by polling.
   */
  private announce(): void {
    if (this.announcing) {
      this.announceAgain = true;
      return;
    }
    this.announcing = true;
    void (async () => {
      try {
        do {
          this.announceAgain = false;
          await this.pool.query(`SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, '')`, [this.channel]);
        } while (this.announceAgain && !this.closed);
      } catch (err) {
        if (!this.closed) this.log.warn({ err }, 'event store NOTIFY failed; subscriptions find the events by polling');
      } finally {
        this.announcing = false;
      }
    })();
  }

  async readStream(streamId: string, options: ReadStreamOptions = {}): Promise<RecordedEvent[]> {
    const max = options.maxCount ?? DEFAULT_PAGE;
    if (max <= 0) return [];
    const backwards = options.direction === 'backwards';
    const from = options.fromRevision ?? (backwards ? 'end' : 'start');
    const bound = from === 'start' ? 0 : from === 'end' ? Number.MAX_SAFE_INTEGER : from;
    const rows = await this.query<EventRow>(
      'readStream',
      `SELECT ${COLUMNS} FROM ${this.schema}.events WHERE stream_id = $1 AND revision ${backwards ? '<=' : '>='} $2
        ORDER BY revision ${backwards ? 'DESC' : 'ASC'} LIMIT $3`,
      [streamId, bound, max],
    );
    return rows.map(toRecorded);
  }

  async streamRevision(streamId: string): Promise<number | null> {
    const [row] = await this.query<{ r: string | null }>('streamRevision', `SELECT max(revision) AS r FROM ${this.schema}.events WHERE stream_id = $1`, [streamId]);
    return row?.r == null ? null : Number(row.r);
  }

  /**
   * One page of the global log. Rows come with `settled`: written by a transaction below the xmin of the query's
   * snapshot, i.e. one that had finished before every transaction still running began. Only settled rows are
   * returned, and forwards only up to the first unsettled one, so a reader always sees a prefix of the
   * (transaction_id, seq) order that later commits can only extend. `hidden`: committed rows wait behind an older
   * running transaction (anywhere in the database) and will join the prefix once it ends.
   */
  async readPage(o: { from: Position | 'start' | 'end'; backwards: boolean; exclusive: boolean; max: number; filter: EventFilter | undefined }): Promise<GlobalPage> {
    const params: unknown[] = [];
    let where = 'true';
    if (typeof o.from === 'object' && o.from.commit >= 0n) {
      params.push(o.from.commit.toString(), o.from.prepare.toString());
      const op = o.backwards ? (o.exclusive ? '<' : '<=') : o.exclusive ? '>' : '>=';
      where = `(transaction_id, seq) ${op} ($1::xid8, $2::bigint)`;
    } else if (o.backwards ? o.from !== 'end' : o.from === 'end') return { events: [], hidden: false, horizon: undefined }; // before the start, after the end
    where += filterSql(o.filter, params);
    params.push(o.max);
    const order = o.backwards ? 'DESC' : 'ASC';
    const rows = await this.query<EventRow & { settled: boolean }>(
      'readAll',
      `SELECT ${COLUMNS}, transaction_id < pg_snapshot_xmin(pg_current_snapshot()) AS settled
         FROM ${this.schema}.events WHERE ${where} ORDER BY transaction_id ${order}, seq ${order} LIMIT $${params.length}`,
      params,
    );
    // Forwards the unsettled rows can only trail the settled ones; backwards they can only lead them.
    const firstUnsettled = rows.findIndex((r) => !r.settled);
    const kept = firstUnsettled < 0 ? rows : o.backwards ? rows.filter((r) => r.settled) : rows.slice(0, firstUnsettled);
    const newest = o.backwards ? rows[0] : rows.at(-1);
    return {
      events: kept.map(toRecorded),
      hidden: kept.length < rows.length,
      horizon: kept.length < rows.length && newest ? toRecorded(newest).position : undefined,
    };
  }

  /**
   * A global read that includes whatever had committed before it began (read-your-writes): while events that had
   * committed by its first query wait behind an older running transaction, it re-reads, backing off, until they
   * settle (later commits are not waited for, so a busy log cannot keep it waiting), for at most `settleTimeoutMs`;
   * after that it returns the prefix it has and warns (a transaction held open that long holds every global reader back).
   */
  private async readGlobal(o: { from: Position | 'start' | 'end'; backwards: boolean; max: number; filter: EventFilter | undefined }): Promise<RecordedEvent[]> {
    const deadline = Date.now() + (this.options.settleTimeoutMs ?? 10_000);
    const out: RecordedEvent[] = [];
    let from = o.from;
    let exclusive = false;
    let target: Position | undefined; // the newest event committed by the first query
    for (let wait = 5; ; wait = Math.min(wait * 2, 200)) {
      const page = await this.readPage({ from, backwards: o.backwards, exclusive, max: o.max - out.length, filter: o.filter });
      target ??= page.horizon;
      if (o.backwards) {
        // Backwards the settled events come after the unsettled ones: read the end again until the newest is there.
        const top = page.events[0];
        if (!page.hidden || (top && target && comparePositions(top.position, target) >= 0)) return page.events;
      } else {
        out.push(...page.events);
        const last = out.at(-1);
        if (!page.hidden || out.length >= o.max || (last && target && comparePositions(last.position, target) >= 0)) return out;
        if (last) {
          from = last.position;
          exclusive = true;
        }
      }
      if (Date.now() >= deadline) {
        await this.warnHeldBack();
        return o.backwards ? page.events : out;
      }
      await sleep(wait);
    }
  }

  private async warnHeldBack(): Promise<void> {
    const [oldest] = await this.query<{ pid: number; application_name: string; state: string; seconds: string }>(
      'readAll',
      `SELECT pid, application_name, state, extract(epoch FROM now() - xact_start)::int::text AS seconds
         FROM pg_stat_activity WHERE backend_xid IS NOT NULL ORDER BY xact_start LIMIT 1`,
      [],
    ).catch(() => []);
    this.log.warn(
      { settle_timeout_ms: this.options.settleTimeoutMs ?? 10_000, oldest_transaction: oldest ?? null },
      'event store global log held back by a long-running transaction; returning the settled part',
    );
  }

  async readAll(options: ReadAllOptions = {}): Promise<RecordedEvent[]> {
    const max = options.maxCount ?? DEFAULT_PAGE;
    if (max <= 0) return [];
    const backwards = options.direction === 'backwards';
    return this.readGlobal({ from: options.fromPosition ?? (backwards ? 'end' : 'start'), backwards, max, filter: options.filter });
  }

  subscribeToAll(options: SubscribeOptions): Subscription {
    if (this.closed) throw new EventStoreUnavailableError('Postgres event store closed');
    this.notifier.start();
    const sub = new PgSubscription(this, this.notifier, options, this.log, () => this.subscriptions.delete(sub));
    this.subscriptions.add(sub);
    return sub;
  }

  async headPosition(): Promise<Position | null> {
    const [last] = await this.readAll({ direction: 'backwards', maxCount: 1 });
    return last?.position ?? null;
  }

  async ping(): Promise<void> {
    const timeoutMs = 3_000;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.pool.query('SELECT 1'),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new EventStoreUnavailableError(`Postgres event store ping timed out after ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
    } catch (err) {
      throw err instanceof EventStoreUnavailableError ? err : new EventStoreUnavailableError(`Postgres event store ping failed: ${(err as Error).message}`, { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }

  /** Appends of this process at once, other processes' through LISTEN/NOTIFY (started by the first listener). */
  onAppended(listener: () => void): () => void {
    if (!this.closed) this.notifier.start();
    this.notifier.listeners.add(listener);
    return () => void this.notifier.listeners.delete(listener);
  }

  /** A dedicated connection for LISTEN (outside the pool: it stays in the session as long as it lives). */
  private async connectListener(): Promise<pg.Client> {
    const client = new pg.Client(this.clientConfig());
    await client.connect();
    return client;
  }

  /** Backend pid of the LISTEN connection, or null while there is none (tests cut it to check the reconnect). */
  listenerPid(): number | null {
    return this.notifier.pid();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.subscriptions].map((s) => s.close()));
    await this.notifier.close();
    await this.pool.end();
  }

  get isClosed(): boolean {
    return this.closed;
  }
}

/**
 * One LISTEN connection per store, shared by its subscriptions: every notification bumps `generation` and wakes the
 * waiters. If the connection breaks it is re-established with backoff; subscriptions poll meanwhile, so nothing is
 * missed, only later.
 */
class AppendNotifier {
  generation = 0;
  private readonly waiters = new Set<() => void>();
  /** called on every notification and local append (EventStore.onAppended) */
  readonly listeners = new Set<() => void>();
  private client: pg.Client | null = null;
  private started = false;
  private closed = false;
  private reconnects = 0;

  constructor(
    private readonly connect: () => Promise<pg.Client>,
    private readonly channel: string,
    private readonly log: Logger,
    private readonly store: { backoff(attempt: number): number },
  ) {}

  start(): void {
    if (this.started) return;
    this.started = true;
    void this.listen();
  }

  pid(): number | null {
    return (this.client as unknown as { processID?: number } | null)?.processID ?? null;
  }

  private async listen(): Promise<void> {
    while (!this.closed) {
      let client: pg.Client | null = null;
      try {
        client = await this.connect();
        const ended = new Promise<unknown>((resolve) => {
          client!.on('error', resolve);
          client!.on('end', () => resolve(undefined));
        });
        client.on('notification', () => this.bump());
        await client.query(`LISTEN "${this.channel}"`);
        if (this.closed) break;
        this.client = client;
        this.reconnects = 0;
        this.bump(); // appends may have landed while we were not listening
        const err = await ended;
        this.client = null;
        if (this.closed) return;
        this.log.warn({ err }, 'event store LISTEN connection lost; reconnecting (subscriptions poll meanwhile)');
      } catch (err) {
        if (this.closed) break;
        this.log.warn({ err }, 'event store LISTEN connection failed; retrying (subscriptions poll meanwhile)');
      }
      await client?.end().catch(() => undefined);
      await sleep(this.store.backoff(++this.reconnects));
    }
    this.client = null;
  }

  private bump(): void {
    this.generation += 1;
    for (const w of [...this.waiters]) w();
    this.signal();
  }

  /** Tells the append listeners (not the subscriptions, which the NOTIFY wakes) that events may be there. */
  signal(): void {
    for (const l of [...this.listeners]) l();
  }

  /**
   * Resolves after `ms`, on `cancel`, or (unless `seen` is null) on the next notification after generation `seen`:
   * at once if one came since.
   */
  wait(seen: number | null, ms: number, handle: { cancel?: () => void }): Promise<void> {
    if (seen !== null && this.generation !== seen) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        handle.cancel = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      if (seen !== null) this.waiters.add(done);
      handle.cancel = done;
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const c = this.client;
    this.client = null;
    await c?.end().catch(() => undefined);
    for (const w of [...this.waiters]) w();
  }
}

/** A catch-up subscription: pages through the visible log after its last position, then waits for NOTIFY or the poll. */
class PgSubscription implements Subscription {
  private closed = false;
  private started = false;
  private readonly wakeHandle: { cancel?: () => void } = {};

  constructor(
    private readonly store: PgEventStore,
    private readonly notifier: AppendNotifier,
    private readonly options: SubscribeOptions,
    private readonly log: Logger,
    private readonly onClose: () => void,
  ) {}

  [Symbol.asyncIterator](): AsyncIterator<SubscriptionItem> {
    if (this.started) throw new Error('a subscription can be iterated once');
    this.started = true;
    return this.run();
  }

  private async *run(): AsyncGenerator<SubscriptionItem> {
    const pollMs = this.store.options.pollIntervalMs ?? 1000;
    let last: Position | 'start' = this.options.fromPosition;
    let caughtUp = false;
    /** caught up once this is delivered: the newest event that had committed when the end was first reached */
    let caughtUpAt: Position | undefined;
    let failures = 0;
    let hiddenPolls = 0;
    try {
      while (!this.closed) {
        const seen = this.notifier.generation;
        let page: GlobalPage;
        try {
          page = await this.store.readPage({ from: last, backwards: false, exclusive: true, max: SUBSCRIPTION_PAGE, filter: this.options.filter });
          failures = 0;
        } catch (err) {
          if (this.closed || this.store.isClosed) return;
          if (!isTransientPgError(err)) throw err;
          failures += 1;
          const delayMs = this.store.backoff(failures);
          this.store.options.metrics?.eventStoreResubscribes.inc();
          this.log.warn({ err, attempt: failures, delayMs }, 'event store subscription read failed; retrying from its last position');
          await this.notifier.wait(null, delayMs, this.wakeHandle);
          continue;
        }
        for (const event of page.events) {
          if (this.closed) return;
          yield { kind: 'event', event };
          last = event.position;
        }
        if (page.events.length === SUBSCRIPTION_PAGE) continue; // more history
        if (!caughtUp) {
          // Events that had committed by now but still wait behind an older running transaction are history too.
          caughtUpAt ??= page.horizon;
          if (!page.hidden || (caughtUpAt && last !== 'start' && comparePositions(last, caughtUpAt) >= 0)) {
            caughtUp = true;
            yield { kind: 'caughtUp' };
          }
        }
        if (this.closed) return;
        if (page.hidden) {
          // No NOTIFY may come when the older transaction ends (it need not be an append): look again soon.
          hiddenPolls += 1;
          await this.notifier.wait(seen, Math.min(pollMs, 10 * 2 ** Math.min(hiddenPolls, 10)), this.wakeHandle);
          continue;
        }
        hiddenPolls = 0;
        await this.notifier.wait(seen, pollMs, this.wakeHandle);
      }
    } finally {
      this.closed = true;
      this.onClose();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.wakeHandle.cancel?.();
    this.onClose();
  }
}

/** Opens (and by default migrates) a Postgres event store. */
export async function openPgEventStore(options: PgEventStoreOptions): Promise<PgEventStore> {
  const store = new PgEventStore(options);
  try {
    return await store.open();
  } catch (err) {
    await store.close().catch(() => undefined);
    throw err;
  }
}

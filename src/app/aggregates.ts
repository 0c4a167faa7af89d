// Loading aggregates and appending their decisions: read, decide, append with the revision read, retry on conflict
// (the emmett handleCommand shape). Loading costs O(new events), not O(stream length): folded states are cached by
// revision in memory, and snapshots (when the store offers them) make a cold load cheap too.
import { ACCOUNT_STATE_VERSION, initialAccount, evolveAccount, type AccountState } from '../domain/account.ts';
import { decodeAccountEvent, decodeGenerationEvent, decodeStoreEvent, decodeTransferEvent, type StoredEvent } from '../domain/decode.ts';
import type { AccountEvent, GenerationEvent, StoreEvent, TransferEvent } from '../domain/events.ts';
import { STORE_STATE_VERSION, evolveStore, initialStore, type StoreState } from '../domain/store.ts';
import { TRANSFER_STATE_VERSION, evolveTransfer, initialTransfer, type TransferState } from '../domain/transfer.ts';
import { GENERATION_STATE_VERSION, evolveGeneration, initialGeneration, type GenerationState } from '../domain/generation.ts';
import {
  WrongExpectedRevisionError,
  type EventMeta,
  type EventStore,
  type NewEvent,
  type RecordedEvent,
} from './ports/eventStore.ts';
import { eventTime } from './recorded.ts';

/** Optional capability of a store: persisted folded state (a cache, never the truth). */
export interface SnapshotCapable {
  readSnapshot(streamId: string): { revision: number; state: unknown } | null;
  writeSnapshot(streamId: string, revision: number, state: unknown): void;
}

const hasSnapshots = (s: object): s is SnapshotCapable => 'readSnapshot' in s && 'writeSnapshot' in s;

/** What a snapshot holds: the folded state and the version of its shape. */
interface VersionedState<S> {
  version: number;
  state: S;
}

export interface Loaded<S> {
  state: S;
  /** last revision folded, -1 for a missing stream */
  revision: number;
}

/** What the repository needs to know of an aggregate type: its name, state, decoder and fold. */
export interface AggregateType<S, E> {
  name: string;
  /** the state's shape version: a snapshot of another version is ignored and the stream folded again */
  stateVersion: number;
  initial: () => S;
  /** the stream type's decoder: stored events are decoded, never cast */
  decode: (stored: StoredEvent) => E;
  evolve: (s: S, e: E, at: number) => S;
}

export const ACCOUNT: AggregateType<AccountState, AccountEvent> = {
  name: 'account',
  stateVersion: ACCOUNT_STATE_VERSION,
  initial: initialAccount,
  decode: decodeAccountEvent,
  evolve: evolveAccount,
};

export const GENERATION: AggregateType<GenerationState, GenerationEvent> = {
  name: 'generation',
  stateVersion: GENERATION_STATE_VERSION,
  initial: initialGeneration,
  decode: decodeGenerationEvent,
  evolve: (s, e) => evolveGeneration(s, e),
};

export const STORE: AggregateType<StoreState, StoreEvent> = {
  name: 'store',
  stateVersion: STORE_STATE_VERSION,
  initial: initialStore,
  decode: decodeStoreEvent,
  evolve: evolveStore,
};

export const TRANSFER: AggregateType<TransferState, TransferEvent> = {
  name: 'transfer',
  stateVersion: TRANSFER_STATE_VERSION,
  initial: initialTransfer,
  decode: decodeTransferEvent,
  evolve: (s, e) => evolveTransfer(s, e),
};

const PAGE = 1000;
const SNAPSHOT_EVERY = 500;

/** A small LRU of folded states per stream. */
class StateCache {
  private readonly map = new Map<string, Loaded<unknown>>();
  constructor(private readonly capacity: number) {}
  get(key: string): Loaded<unknown> | undefined {
    const v = this.map.get(key);
    if (v) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }
  set(key: string, v: Loaded<unknown>) {
    this.map.delete(key);
    this.map.set(key, v);
    if (this.map.size > this.capacity) this.map.delete(this.map.keys().next().value!);
  }
}

/** Event metadata of a command: who caused it and why (ledger.md: every event carries it). */
export function commandMeta(c: { requestId: string; causationId: string; workerId: string; at: number }): EventMeta {
  return {
    requestId: c.requestId,
    causationId: c.causationId,
    correlationId: c.requestId,
    workerId: c.workerId,
    occurredAt: new Date(c.at).toISOString(),
  };
}

export class ConflictRetriesExhaustedError extends Error {
  override readonly name = 'ConflictRetriesExhaustedError';
}

export class AggregateRepository {
  private readonly cache: StateCache;

  constructor(
    readonly store: EventStore,
    options: { cacheSize?: number; onConflict?: () => void; onAppend?: (seconds: number) => void } = {},
  ) {
    this.cache = new StateCache(options.cacheSize ?? 10_000);
    this.onConflict = options.onConflict ?? (() => {});
    this.onAppend = options.onAppend ?? (() => {});
  }

  private readonly onConflict: () => void;
  private readonly onAppend: (seconds: number) => void;

  private readonly loading = new Map<string, Promise<unknown>>();

  /**
   * Folds the stream from the cached revision on. The returned state is SHARED with the cache and is advanced in place
   * by later loads: use it synchronously (decide right away). That is safe for appends: a state that moved ahead of
   * the returned revision only makes the append conflict and retry. Loads of one stream are serialised so no event is
   * applied twice.
   */
  async load<S, E>(aggregate: AggregateType<S, E>, streamId: string): Promise<Loaded<S>> {
    const key = `${aggregate.name}:${streamId}`;
    for (let pending = this.loading.get(key); pending; pending = this.loading.get(key)) await pending.catch(() => {});
    const work = this.loadUnlocked(aggregate, streamId, key);
    this.loading.set(key, work);
    try {
      return await work;
    } finally {
      if (this.loading.get(key) === work) this.loading.delete(key);
    }
  }

  private async loadUnlocked<S, E>(aggregate: AggregateType<S, E>, streamId: string, key: string): Promise<Loaded<S>> {
    let current = this.cache.get(key) as Loaded<S> | undefined;
    if (!current && hasSnapshots(this.store)) {
      const snap = this.store.readSnapshot(streamId);
      const stored = snap?.state as Partial<VersionedState<S>> | undefined;
      // Unversioned (written before versions existed) or another version: not this shape, fold from the start.
      if (snap && stored?.version === aggregate.stateVersion && stored.state !== undefined) current = { state: stored.state, revision: snap.revision };
    }
    let state = current?.state ?? aggregate.initial();
    let revision = current?.revision ?? -1;
    const startRevision = revision;
    for (;;) {
      const page: RecordedEvent[] = await this.store.readStream(streamId, { fromRevision: revision + 1, maxCount: PAGE });
      for (const e of page) {
        state = aggregate.evolve(state, aggregate.decode(e), eventTime(e));
        revision = e.revision;
      }
      if (page.length < PAGE) break;
    }
    if (revision >= 0) {
      this.cache.set(key, { state, revision });
      if (hasSnapshots(this.store) && Math.floor(revision / SNAPSHOT_EVERY) > Math.floor(startRevision / SNAPSHOT_EVERY)) {
        this.store.writeSnapshot(streamId, revision, { version: aggregate.stateVersion, state } satisfies VersionedState<S>);
      }
    }
    return { state, revision };
  }

  /**
   * Read, decide, append with the revision read; on a conflict, reload and decide again (bounded).
   * `decide` returns the events to append (possibly none) or throws its own typed rejection.
   */
  async handle<S, E extends { type: string; data: unknown }, R>(
    aggregate: AggregateType<S, E>,
    streamId: string,
    decide: (loaded: Loaded<S>) => { events: E[]; ids: string[]; result: R },
    meta: EventMeta,
    maxRetries = 20,
  ): Promise<{ result: R; appended: boolean; revision: number }> {
    for (let attempt = 0; ; attempt++) {
      const loaded = await this.load(aggregate, streamId);
      const { events, ids, result } = decide(loaded);
      if (events.length === 0) return { result, appended: false, revision: loaded.revision };
      const toAppend: NewEvent[] = events.map((e, i) => ({ id: ids[i]!, type: e.type, data: e.data, metadata: meta }));
      try {
        const started = performance.now();
        const r = await this.store.append(streamId, toAppend, loaded.revision < 0 ? 'no_stream' : loaded.revision);
        this.onAppend((performance.now() - started) / 1000);
        return { result, appended: true, revision: r.nextRevision };
      } catch (err) {
        if (!(err instanceof WrongExpectedRevisionError)) throw err;
        this.onConflict();
        if (attempt >= maxRetries) throw new ConflictRetriesExhaustedError(`${streamId}: still conflicting after ${maxRetries} retries`);
        await new Promise((r) => setTimeout(r, Math.random() * Math.min(50, 2 ** attempt)));
      }
    }
  }
}

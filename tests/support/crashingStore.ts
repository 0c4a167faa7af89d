// An EventStore wrapper for crash and interleaving tests. It can (1) crash the "process" at the k-th append, before or
// after the write reached the store, after which every call fails like a dead process; and (2) hand every call to a
// scheduler (fast-check's) so that concurrent workers' store calls run and return in an order the test controls.
import type { SnapshotCapable } from '../../src/app/aggregates.ts';
import type {
  AppendResult,
  EventStore,
  ExpectedRevision,
  NewEvent,
  Position,
  ReadAllOptions,
  ReadStreamOptions,
  RecordedEvent,
  SubscribeOptions,
  Subscription,
} from '../../src/app/ports/eventStore.ts';

export class Crash extends Error {
  override readonly name = 'Crash';
}

export type CrashMode = 'before' | 'after';

/** Delays a step until the scheduler releases it; identity when absent. */
export type Gate = <T>(label: string, work: () => Promise<T>) => Promise<T>;

export class CrashingStore implements EventStore, SnapshotCapable {
  readonly kind: string;
  dead = false;
  appends = 0;
  private crashAt: { append: number; mode: CrashMode } | null = null;

  constructor(
    readonly inner: EventStore,
    private readonly gate: Gate = (_l, w) => w(),
  ) {
    this.kind = inner.kind;
  }

  /** The `k`-th append from now (1 = the next) crashes the process, `before` or `after` its write. */
  armCrash(k: number, mode: CrashMode): void {
    this.crashAt = { append: this.appends + k, mode };
  }

  disarm(): void {
    this.crashAt = null;
  }

  private alive(): void {
    if (this.dead) throw new Crash('the process is dead');
  }

  append(streamId: string, events: readonly NewEvent[], expected: ExpectedRevision): Promise<AppendResult> {
    return this.gate(`append ${streamId} ${events.map((e) => e.type).join(',')}`, async () => {
      this.alive();
      this.appends += 1;
      const crash = this.crashAt?.append === this.appends ? this.crashAt.mode : null;
      if (crash === 'before') {
        this.dead = true;
        throw new Crash(`crash before append #${this.appends} to ${streamId}`);
      }
      const result = await this.inner.append(streamId, events, expected);
      if (crash === 'after') {
        this.dead = true;
        throw new Crash(`crash after append #${this.appends} to ${streamId}`);
      }
      this.alive();
      return result;
    });
  }

  readStream(streamId: string, options?: ReadStreamOptions): Promise<RecordedEvent[]> {
    return this.gate(`read ${streamId}`, async () => {
      this.alive();
      const r = await this.inner.readStream(streamId, options);
      this.alive();
      return r;
    });
  }

  streamRevision(streamId: string): Promise<number | null> {
    return this.gate(`revision ${streamId}`, async () => (this.alive(), this.inner.streamRevision(streamId)));
  }

  readAll(options?: ReadAllOptions): Promise<RecordedEvent[]> {
    return this.gate('readAll', async () => (this.alive(), this.inner.readAll(options)));
  }

  subscribeToAll(options: SubscribeOptions): Subscription {
    this.alive();
    return this.inner.subscribeToAll(options);
  }

  headPosition(): Promise<Position | null> {
    return this.inner.headPosition();
  }

  ping(): Promise<void> {
    return this.inner.ping();
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  readSnapshot(streamId: string): { revision: number; state: unknown } | null {
    this.alive();
    const inner = this.inner as Partial<SnapshotCapable>;
    return inner.readSnapshot ? inner.readSnapshot(streamId) : null;
  }

  writeSnapshot(streamId: string, revision: number, state: unknown): void {
    this.alive();
    (this.inner as Partial<SnapshotCapable>).writeSnapshot?.(streamId, revision, state);
  }
}

// Following the log from a stored checkpoint: the one loop behind the projectors, their rebuilds and the worker's
// pending index (the processor/checkpoint split of Emmett). A processor applies a batch and stores its checkpoint as one
// step, compare-and-set on the checkpoint it was handed; the consumer reads the pages (one ahead, so reads overlap
// writes), hands them over in order, and waits for new events once caught up. What a batch does and where the
// checkpoint lives (a read-model row, a file) is the processor's business.
import { setTimeout as sleep } from 'node:timers/promises';
import { comparePositions, type EventFilter, type EventStore, type Position, type RecordedEvent } from './ports/eventStore.ts';
import { readAfter } from './log.ts';

export type StoreCheckpointResult =
  | { ok: true; applied: number }
  /** the stored checkpoint is no longer the one handed over (another writer moved it): nothing was applied */
  | { ok: false; reason: 'mismatch' };

export interface CheckpointedProcessor {
  /** where the processor stands: the events after it are still to apply */
  checkpoint(): Promise<Position>;
  /** Applies `events` (all after `expected`, in order) and stores the checkpoint at the last, if it still is `expected`. */
  apply(events: readonly RecordedEvent[], expected: Position): Promise<StoreCheckpointResult>;
}

export interface ConsumeOptions {
  store: EventStore;
  processor: CheckpointedProcessor;
  batchSize: number;
  filter?: EventFilter;
  /** Stop once the checkpoint reaches this position (null: an empty log, nothing to do). Omitted: follow the log. */
  until?: Position | null;
  signal?: AbortSignal | undefined;
  /** following: keep going while this holds (e.g. a projection lock) */
  active?: () => boolean;
  /** following: how to wait for new events once caught up; default a poll every `pollMs` (200) */
  wait?: (signal?: AbortSignal) => Promise<void>;
  pollMs?: number;
  /** after every read: the checkpoint, and whether the log had nothing more (caught up) */
  onRead?: (checkpoint: Position, caughtUp: boolean) => Promise<void> | void;
  /** after every applied batch */
  onBatch?: (applied: number, checkpoint: Position) => void;
  /** the stored checkpoint moved under us (e.g. a rebuild swapped in); the consumer continues from the stored one */
  onMoved?: (checkpoint: Position) => void;
}

/** Runs until `until` is reached, or (following) until `signal` aborts or `active()` fails; returns the checkpoint. */
export async function consume(options: ConsumeOptions): Promise<Position> {
  const { store, processor, batchSize, filter, until, signal } = options;
  const bounded = until !== undefined;
  const wait = options.wait ?? ((s?: AbortSignal) => sleep(options.pollMs ?? 200, undefined, { signal: s }).catch(() => undefined));
  const within = (events: RecordedEvent[]) => (until ? events.filter((e) => comparePositions(e.position, until) <= 0) : events);
  const read = (after: Position) => readAfter(store, after, batchSize, filter).then(within);
  let cp = await processor.checkpoint();
  if (bounded && (!until || comparePositions(cp, until) >= 0)) return cp;
  let next = read(cp);
  try {
    while (!signal?.aborted && (options.active?.() ?? true)) {
      const events = await next;
      await options.onRead?.(cp, events.length === 0);
      if (events.length === 0) {
        if (bounded) break;
        await wait(signal);
        next = read(cp);
        continue;
      }
      const last = events[events.length - 1]!.position;
      next = bounded && comparePositions(last, until!) >= 0 ? Promise.resolve([]) : read(last);
      const stored = await processor.apply(events, cp);
      if (!stored.ok) {
        next.catch(() => undefined);
        cp = await processor.checkpoint();
        options.onMoved?.(cp);
        next = read(cp);
        continue;
      }
      cp = last;
      options.onBatch?.(stored.applied, cp);
    }
  } finally {
    next.catch(() => undefined);
  }
  return cp;
}

/**
 * A `wait` for `consume` that ends as soon as the store signals an append (EventStore.onAppended), or after `pollMs`,
 * the fallback for appends the signal does not see (another process on a SQLite file, a store without the signal). A
 * signal that came since the last wait ends the next one at once, so an append that lands between a read that found
 * nothing and the wait is never slept through.
 */
export function appendWait(store: EventStore, pollMs: number): { wait: (signal?: AbortSignal) => Promise<void>; close: () => void } {
  let pending = false;
  let wake: (() => void) | null = null;
  const off =
    store.onAppended?.(() => {
      pending = true;
      wake?.();
    }) ?? (() => undefined);
  return {
    wait: (signal) => {
      if (pending || signal?.aborted) {
        pending = false;
        return Promise.resolve();
      }
      return new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', done);
          wake = null;
          pending = false;
          resolve();
        };
        const timer = setTimeout(done, pollMs);
        signal?.addEventListener('abort', done, { once: true });
        wake = done;
      });
    },
    close: off,
  };
}

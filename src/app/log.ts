// Reading the global log page by page after a position: the one page loop behind recovery, verify, the rebuild swap
// and the consumer (consumer.ts) that the projectors and the pending index follow the log with.
import { comparePositions, START, type EventFilter, type EventStore, type Position, type RecordedEvent } from './ports/eventStore.ts';

/** Up to `max` events strictly after `after` (store reads are inclusive, so the event at `after` is dropped). */
export async function readAfter(store: EventStore, after: Position | 'start', max: number, filter?: EventFilter): Promise<RecordedEvent[]> {
  const from = after === 'start' || comparePositions(after, START) === 0 ? 'start' : after;
  const page = await store.readAll({ fromPosition: from, maxCount: max + 1, ...(filter ? { filter } : {}) });
  const out = from === 'start' ? page : page.filter((e) => comparePositions(e.position, from) > 0);
  return out.length > max ? out.slice(0, max) : out;
}

export interface ReadLogOptions {
  /** exclusive; default: the start */
  after?: Position | 'start';
  /** inclusive; default: the log as it stands */
  until?: Position | null;
  pageSize?: number;
  filter?: EventFilter;
}

/** The log after `after` up to `until`, in pages (each non-empty), oldest first. */
export async function* readLog(store: EventStore, options: ReadLogOptions = {}): AsyncGenerator<RecordedEvent[]> {
  const { until } = options;
  const pageSize = options.pageSize ?? 5000;
  let after: Position | 'start' = options.after ?? 'start';
  for (;;) {
    let page = await readAfter(store, after, pageSize, options.filter);
    const full = page.length === pageSize;
    if (until) page = page.filter((e) => comparePositions(e.position, until) <= 0);
    if (page.length === 0) return;
    yield page;
    if (!full) return; // a short page is the end of the log as it stands (or of `until`): no need to ask again
    after = page[page.length - 1]!.position;
  }
}

// Reading the global log page by page after a position: the one loop behind recovery, verify and the projectors.
import { comparePositions, START, type EventFilter, type EventStore, type Position, type RecordedEvent } from './ports/eventStore.ts';

/** Up to `max` events strictly after `after` (store reads are inclusive, so the event at `after` is dropped). */
export async function readAfter(store: EventStore, after: Position | 'start', max: number, filter?: EventFilter): Promise<RecordedEvent[]> {
  const from = after === 'start' || comparePositions(after, START) === 0 ? 'start' : after;
  const page = await store.readAll({ fromPosition: from, maxCount: max + 1, ...(filter ? { filter } : {}) });
  const out = from === 'start' ? page : page.filter((e) => comparePositions(e.position, from) > 0);
  return out.length > max ? out.slice(0, max) : out;
}

/** The whole log as it stands, in pages (each non-empty), oldest first. */
export async function* readLog(store: EventStore, options: { pageSize?: number; filter?: EventFilter } = {}): AsyncGenerator<RecordedEvent[]> {
  const pageSize = options.pageSize ?? 5000;
  let after: Position | 'start' = 'start';
  for (;;) {
    const page = await readAfter(store, after, pageSize, options.filter);
    if (page.length === 0) return;
    yield page;
    if (page.length < pageSize) return; // a short page is the end of the log as it stands: no need to ask again
    after = page[page.length - 1]!.position;
  }
}

// The event store port's contract: every adapter runs these same tests unchanged.
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  WrongExpectedRevisionError,
  comparePositions,
  type EventStore,
  type NewEvent,
  type RecordedEvent,
  type SubscriptionItem,
} from '../../src/app/ports/eventStore.ts';
import { before, scaled } from './deadlines.ts';

export interface StoreUnderTest {
  store: EventStore;
  cleanup(): Promise<void>;
}

const meta = () => ({
  requestId: 'req_test',
  causationId: 'cause',
  correlationId: 'corr',
  workerId: 'contract',
  occurredAt: new Date().toISOString(),
});

export const ev = (type: string, data: unknown = {}, id: string = randomUUID()): NewEvent => ({ id, type, data, metadata: meta() });

async function take(iter: AsyncIterator<SubscriptionItem>, n: number, timeoutMs = 5000): Promise<SubscriptionItem[]> {
  const out: SubscriptionItem[] = [];
  const deadline = Date.now() + scaled(timeoutMs);
  while (out.length < n) {
    if (Date.now() >= deadline) throw new Error(`subscription delivered ${out.length} of ${n} items in ${timeoutMs} ms`);
    const next = await before(`item ${out.length + 1} of ${n} from the subscription`, iter.next(), deadline);
    if (next.done) break;
    out.push(next.value);
  }
  return out;
}

export function describeEventStoreContract(name: string, factory: () => Promise<StoreUnderTest>): void {
  describe(`event store contract: ${name}`, () => {
    let sut: StoreUnderTest;
    let store: EventStore;
    // Unique stream names so adapters backed by a shared server need no reset between tests.
    let ns: string;
    const s = (suffix: string) => `generation-${ns}-${suffix}`;

    beforeEach(async () => {
      sut = await factory();
      store = sut.store;
      ns = randomUUID().slice(0, 8);
    });
    afterEach(async () => {
      await sut.cleanup();
    });

    it('appends to a new stream with no_stream and reads it back in order', async () => {
      const r = await store.append(s('a'), [ev('A', { n: 1 }), ev('B', { n: 2 })], 'no_stream');
      expect(r.nextRevision).toBe(1);
      const events = await store.readStream(s('a'));
      expect(events.map((e) => [e.type, e.revision, e.data])).toEqual([
        ['A', 0, { n: 1 }],
        ['B', 1, { n: 2 }],
      ]);
      expect(events[0]!.metadata.requestId).toBe('req_test');
      expect(events[0]!.streamId).toBe(s('a'));
      expect(events[0]!.recordedAt).toBeInstanceOf(Date);
      expect(comparePositions(events[0]!.position, events[1]!.position)).toBe(-1);
      expect(comparePositions(events[1]!.position, r.position)).toBe(0);
      expect(await store.streamRevision(s('a'))).toBe(1);
    });

    it('rejects no_stream on an existing stream with a typed conflict naming the actual revision', async () => {
      await store.append(s('b'), [ev('A')], 'no_stream');
      const err = await store.append(s('b'), [ev('A')], 'no_stream').catch((e) => e);
      expect(err).toBeInstanceOf(WrongExpectedRevisionError);
      expect(err.streamId).toBe(s('b'));
      expect(err.actual).toBe(0);
    });

    it('checks exact revisions, stream_exists and any', async () => {
      const missing = await store.append(s('c'), [ev('A')], 'stream_exists').catch((e) => e);
      expect(missing).toBeInstanceOf(WrongExpectedRevisionError);
      expect(missing.actual).toBe('no_stream');
      const wrongOnMissing = await store.append(s('c'), [ev('A')], 0).catch((e) => e);
      expect(wrongOnMissing).toBeInstanceOf(WrongExpectedRevisionError);

      await store.append(s('c'), [ev('A')], 'any');
      await store.append(s('c'), [ev('B')], 'stream_exists');
      await store.append(s('c'), [ev('C')], 1);
      const stale = await store.append(s('c'), [ev('D')], 1).catch((e) => e);
      expect(stale).toBeInstanceOf(WrongExpectedRevisionError);
      expect(stale.actual).toBe(2);
      expect((await store.readStream(s('c'))).map((e) => e.type)).toEqual(['A', 'B', 'C']);
      expect(await store.streamRevision(s('c'))).toBe(2);
      expect(await store.streamRevision(s('nope'))).toBeNull();
    });

    it('treats a retried append with the same event ids as already done', async () => {
      const a = ev('A');
      const b = ev('B');
      const first = await store.append(s('d'), [a, b], 'no_stream');
      const again = await store.append(s('d'), [a, b], 'no_stream');
      expect(again.nextRevision).toBe(first.nextRevision);
      expect(comparePositions(again.position, first.position)).toBe(0);
      const c = ev('C');
      await store.append(s('d'), [c], 1);
      await store.append(s('d'), [c], 1);
      expect((await store.readStream(s('d'))).map((e) => e.id)).toEqual([a.id, b.id, c.id]);
    });

    it('keeps concurrent appends with the same expected revision to exactly one winner', async () => {
      await store.append(s('e'), [ev('Init')], 'no_stream');
      const results = await Promise.allSettled(Array.from({ length: 5 }, (_, i) => store.append(s('e'), [ev(`W${i}`)], 0)));
      const won = results.filter((r) => r.status === 'fulfilled');
      expect(won).toHaveLength(1);
      for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(WrongExpectedRevisionError);
      expect(await store.streamRevision(s('e'))).toBe(1);
    });

    it('reads a stream forwards and backwards from a revision in pages', async () => {
      for (let i = 0; i < 10; i++) await store.append(s('f'), [ev('N', { i })], i === 0 ? 'no_stream' : i - 1);
      const page1 = await store.readStream(s('f'), { maxCount: 4 });
      expect(page1.map((e) => e.revision)).toEqual([0, 1, 2, 3]);
      const page2 = await store.readStream(s('f'), { fromRevision: 4, maxCount: 4 });
      expect(page2.map((e) => e.revision)).toEqual([4, 5, 6, 7]);
      const back = await store.readStream(s('f'), { direction: 'backwards', maxCount: 3 });
      expect(back.map((e) => e.revision)).toEqual([9, 8, 7]);
      const backFrom = await store.readStream(s('f'), { direction: 'backwards', fromRevision: 2, maxCount: 10 });
      expect(backFrom.map((e) => e.revision)).toEqual([2, 1, 0]);
      expect(await store.readStream(s('missing'))).toEqual([]);
      expect(await store.readStream(s('missing'), { direction: 'backwards' })).toEqual([]);
    });

    it('reads the global log forwards and backwards from a position, with filters', async () => {
      await store.append(s('g1'), [ev('GenerationRequested', { k: 1 })], 'no_stream');
      await store.append(`credit-account-user-${ns}`, [ev('CreditsGranted', { k: 2 })], 'no_stream');
      await store.append(s('g2'), [ev('GenerationRequested', { k: 3 })], 'no_stream');
      const mine = (list: RecordedEvent[]) => list.filter((e) => e.streamId.includes(ns));

      const all = mine(await store.readAll({ maxCount: 100_000 }));
      expect(all.map((e) => (e.data as { k: number }).k)).toEqual([1, 2, 3]);
      const fromSecond = mine(await store.readAll({ fromPosition: all[1]!.position, maxCount: 100_000 }));
      expect(fromSecond.map((e) => (e.data as { k: number }).k)).toEqual([2, 3]);
      const back = await store.readAll({ direction: 'backwards', fromPosition: all[1]!.position, maxCount: 2 });
      expect(back[0]!.id).toBe(all[1]!.id);
      expect(comparePositions(back[1]!.position, all[1]!.position)).toBe(-1);

      const byPrefix = mine(await store.readAll({ filter: { streamPrefixes: ['credit-account-'] }, maxCount: 100_000 }));
      expect(byPrefix.map((e) => e.type)).toEqual(['CreditsGranted']);
      const byType = mine(await store.readAll({ filter: { eventTypes: ['GenerationRequested'] }, maxCount: 100_000 }));
      expect(byType).toHaveLength(2);

      const head = await store.headPosition();
      expect(head).not.toBeNull();
      expect(comparePositions(head!, all[2]!.position)).toBeGreaterThanOrEqual(0);
    });

    it('subscribes with catch-up, then caughtUp, then live events, exclusive of the start position', async () => {
      const first = await store.append(s('h'), [ev('A', { i: 0 })], 'no_stream');
      await store.append(s('h'), [ev('A', { i: 1 })], 0);
      const sub = store.subscribeToAll({ fromPosition: first.position, filter: { streamPrefixes: [s('h')] } });
      const it = sub[Symbol.asyncIterator]();
      const history = await take(it, 2);
      expect(history[0]).toMatchObject({ kind: 'event', event: { data: { i: 1 } } });
      expect(history[1]).toEqual({ kind: 'caughtUp' });
      await store.append(s('h'), [ev('A', { i: 2 }), ev('A', { i: 3 })], 1);
      const live = await take(it, 2);
      expect(live.map((x) => (x.kind === 'event' ? (x.event.data as { i: number }).i : -1))).toEqual([2, 3]);
      await sub.close();
    });

    it('delivers every event exactly once to a subscription from the start while appends race it', async () => {
      const stream = s('race');
      const sub = store.subscribeToAll({ fromPosition: 'start', filter: { streamPrefixes: [stream] } });
      const it = sub[Symbol.asyncIterator]();
      const writes = (async () => {
        for (let i = 0; i < 30; i++) await store.append(stream, [ev('N', { i })], i === 0 ? 'no_stream' : i - 1);
      })();
      const seen: number[] = [];
      while (seen.length < 30) {
        const [item] = await take(it, 1);
        if (item!.kind === 'event') seen.push((item!.event.data as { i: number }).i);
      }
      await writes;
      await sub.close();
      expect(seen).toEqual(Array.from({ length: 30 }, (_, i) => i));
    });
  });
}

// EventStoreDB-specific checks of the adapter, beyond the port contract: what lands on the server (metadata keys that
// ESDB's system projections read), system events kept out of the ledger's view, and the server-side filter choice.
// Runs against the fake (eventstore-esdb.test.ts) and against a real server (eventstore-esdb-real.test.ts).
import { randomUUID } from 'node:crypto';
import { EventStoreDBClient, jsonEvent } from '@eventstore/db-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openEsdbEventStore, type EsdbEventStore } from '../../src/adapters/eventstore/esdb/esdbEventStore.ts';
import { START, type SubscriptionItem } from '../../src/app/ports/eventStore.ts';
import { silentLogger } from '../../src/logger.ts';
import { deterministicEventId } from '../../src/domain/streams.ts';
import { ev } from './eventStoreContract.ts';

export interface EsdbUnderTest {
  connectionString: string;
  cleanup(): Promise<void>;
}

export function describeEsdbSpecifics(name: string, factory: () => Promise<EsdbUnderTest>): void {
  describe(`esdb adapter specifics: ${name}`, () => {
    let sut: EsdbUnderTest;
    let store: EsdbEventStore;
    let raw: EventStoreDBClient;
    let ns: string;
    beforeEach(async () => {
      sut = await factory();
      store = openEsdbEventStore({ connectionString: sut.connectionString, logger: silentLogger() });
      raw = EventStoreDBClient.connectionString(sut.connectionString);
      ns = randomUUID().slice(0, 8);
    });
    afterEach(async () => {
      await store.close();
      await raw.dispose();
      await sut.cleanup();
    });

    it('writes the port metadata plus $correlationId/$causationId, and reads back exactly the port metadata', async () => {
      const stream = `generation-${ns}`;
      const e = ev('GenerationRequested', { n: 1 }, deterministicEventId(stream, 'requested'));
      await store.append(stream, [e], 'no_stream');
      const [onServer] = await toArray(raw.readStream(stream));
      expect(onServer!.event!.id).toBe(e.id);
      expect(onServer!.event!.isJson).toBe(true);
      expect(onServer!.event!.metadata).toEqual({ ...e.metadata, $correlationId: 'corr', $causationId: 'cause' });
      const [back] = await store.readStream(stream);
      expect(back!.metadata).toEqual(e.metadata);
      expect(Math.abs(back!.recordedAt.getTime() - Date.now())).toBeLessThan(10 * 60_000); // ticks decoded, not 1970
    });

    it('keeps system events and other services’ streams out of readAll, headPosition and unfiltered subscriptions', async () => {
      const own = `generation-${ns}`;
      await store.append(own, [ev('A', { i: 1 })], 'no_stream');
      // another writer's system-looking event (type starting with $) and a $-stream are both excluded
      await raw.appendToStream(`$sys-${ns}`, jsonEvent({ type: 'Whatever', data: {} }));
      await raw.appendToStream(`other-${ns}`, jsonEvent({ type: '$internal', data: {} }));
      const all = await store.readAll({ direction: 'backwards', maxCount: 50 });
      expect(all.some((e) => e.streamId.startsWith('$') || e.type.startsWith('$'))).toBe(false);
      expect(all.some((e) => e.streamId === own)).toBe(true);
      const head = await store.headPosition();
      expect(head).toEqual(all[0]!.position);

      const sub = store.subscribeToAll({ fromPosition: all.find((e) => e.streamId === own)!.position });
      const it = sub[Symbol.asyncIterator]();
      await store.append(own, [ev('A', { i: 2 })], 0);
      const items: SubscriptionItem[] = [];
      while (!items.some((x) => x.kind === 'event' && x.event.streamId === own)) items.push((await it.next()).value as SubscriptionItem);
      expect(items.filter((x) => x.kind === 'event').every((x) => x.kind === 'event' && !x.event.streamId.startsWith('$') && !x.event.type.startsWith('$'))).toBe(true);
      await sub.close();
    });

    it('treats the port START position ({-1,-1}, a fresh checkpoint) as the beginning of $all', async () => {
      const own = `generation-${ns}`;
      await store.append(own, [ev('A', { i: 1 })], 'no_stream');
      const read = await store.readAll({ fromPosition: START, filter: { streamPrefixes: [own] }, maxCount: 100_000 });
      expect(read.map((e) => e.data)).toEqual([{ i: 1 }]);
      expect(await store.readAll({ fromPosition: START, direction: 'backwards' })).toEqual([]);
      const sub = store.subscribeToAll({ fromPosition: START, filter: { streamPrefixes: [own] } });
      const it = sub[Symbol.asyncIterator]();
      expect((await it.next()).value).toMatchObject({ kind: 'event', event: { data: { i: 1 } } });
      await sub.close();
    });

    it('combines a stream-prefix filter with an event-type filter (one server-side, one client-side)', async () => {
      const own = `credit-account-user-${ns}`;
      await store.append(own, [ev('CreditsGranted', { i: 1 }), ev('CreditsDeducted', { i: 2 })], 'no_stream');
      await store.append(`generation-${ns}`, [ev('CreditsGranted', { i: 3 })], 'no_stream');
      const sub = store.subscribeToAll({ fromPosition: 'start', filter: { streamPrefixes: [own], eventTypes: ['CreditsDeducted'] } });
      const it = sub[Symbol.asyncIterator]();
      const first = (await it.next()).value as SubscriptionItem;
      expect(first).toMatchObject({ kind: 'event', event: { type: 'CreditsDeducted', streamId: own } });
      expect((await it.next()).value).toEqual({ kind: 'caughtUp' });
      await sub.close();
      const read = await store.readAll({ filter: { streamPrefixes: [own], eventTypes: ['CreditsGranted'] }, maxCount: 100_000 });
      expect(read.map((e) => e.data)).toEqual([{ i: 1 }]);
    });
  });
}

async function toArray<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of iterable) out.push(x);
  return out;
}

// The EventStoreDB adapter, with the real @eventstore/db-client, against the in-process fake server of
// tests/support/fakeEsdb. The fake is a wire-level double of our understanding of ESDB, not the server: what it does not
// imitate is listed at the top of tests/support/fakeEsdb/server.ts. The same contract runs against a real server in
// eventstore-esdb-real.test.ts when EVENTSTORE_TEST_URL is set.
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { openEsdbEventStore, type EsdbEventStore } from '../../src/adapters/eventstore/esdb/esdbEventStore.ts';
import { EventStoreUnavailableError, type SubscriptionItem } from '../../src/app/ports/eventStore.ts';
import { silentLogger } from '../../src/logger.ts';
import { createMetrics } from '../../src/metrics.ts';
import { describeEventStoreContract, ev } from '../support/eventStoreContract.ts';
import { describeEsdbSpecifics } from '../support/esdbSpecifics.ts';
import { startFakeEsdb, type FakeEsdb } from '../support/fakeEsdb/index.ts';

// 'batch': the client appends over BatchAppend, as against a real 21.10+ server; 'classic': the Append fallback.
// 'transaction' positions: the events of one append share a commit position and the append reports the transaction's.
const variants = [
  { appendPath: 'batch', positions: 'event' },
  { appendPath: 'classic', positions: 'event' },
  { appendPath: 'batch', positions: 'transaction' },
] as const;
for (const { appendPath, positions } of variants) {
  describeEventStoreContract(`esdb (in-process fake server, ${appendPath} append, ${positions} positions)`, async () => {
    const fake = await startFakeEsdb({ appendPath, positions });
    const store = openEsdbEventStore({ connectionString: fake.connectionString, logger: silentLogger() });
    return {
      store,
      cleanup: async () => {
        await store.close();
        await fake.close();
      },
    };
  });
}

describeEsdbSpecifics('esdb (in-process fake server)', async () => {
  const fake = await startFakeEsdb();
  return { connectionString: fake.connectionString, cleanup: () => fake.close() };
});

const dataOf = (x: SubscriptionItem) => (x.kind === 'event' ? (x.event.data as { i: number }).i : 'caughtUp');

/** Next `n` events (caughtUp markers are collected separately); fails after `timeoutMs` without them. */
async function nextEvents(it: AsyncIterator<SubscriptionItem>, n: number, seen: { caughtUp: number }, timeoutMs = 10_000) {
  const out: number[] = [];
  const deadline = Date.now() + timeoutMs;
  while (out.length < n) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`got ${out.length} of ${n} events`);
    let timer: NodeJS.Timeout | undefined;
    const next = await Promise.race([
      it.next(),
      new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error(`got ${out.length} of ${n} events: ${out.join(',')}`)), left))),
    ]).finally(() => clearTimeout(timer));
    if (next.done) throw new Error('subscription ended');
    const v = dataOf(next.value);
    if (v === 'caughtUp') seen.caughtUp++;
    else out.push(v);
  }
  return out;
}

describe.each(['batch', 'classic'] as const)('esdb adapter under faults (fake server stopped and restarted, %s append)', (appendPath) => {
  let fake: FakeEsdb;
  let store: EsdbEventStore;
  let metrics: ReturnType<typeof createMetrics>;
  const open = async (opts: { attempts?: number } = {}) => {
    fake = await startFakeEsdb({ appendPath });
    metrics = createMetrics({ defaults: false });
    store = openEsdbEventStore({
      connectionString: fake.connectionString,
      logger: silentLogger(),
      metrics,
      backoffInitialMs: 20,
      backoffMaxMs: 200,
      attempts: opts.attempts ?? 8,
      timeoutMs: 3_000,
    });
  };
  afterEach(async () => {
    await store?.close();
    await fake?.close();
  });

  it('resumes a subscription after restarts with no gap and no duplicate, and leaves one server-side subscription', async () => {
    await open();
    const stream = `generation-${randomUUID().slice(0, 8)}`;
    for (let i = 0; i < 20; i++) await store.append(stream, [ev('N', { i })], i === 0 ? 'no_stream' : i - 1);
    const sub = store.subscribeToAll({ fromPosition: 'start', filter: { streamPrefixes: [stream] } });
    const it = sub[Symbol.asyncIterator]();
    const seen = { caughtUp: 0 };
    // Part of the history only: events still in flight when the connection breaks must come again, once.
    const got = await nextEvents(it, 3, seen);
    let next = 20;
    for (let cycle = 0; cycle < 3; cycle++) {
      await fake.stop();
      // Another client writes while we are cut off; a system event lands in between too.
      fake.server.write(stream, [{ type: 'N', data: { i: next++ } }]);
      fake.server.appendSystemEvent('$stats-127.0.0.1:2113', '$statsCollected');
      await new Promise((r) => setTimeout(r, 100));
      await fake.restart();
      await store.append(stream, [ev('N', { i: next })], next - 1);
      next++;
      got.push(...(await nextEvents(it, 4, seen)));
    }
    got.push(...(await nextEvents(it, next - got.length, seen)));
    expect(got).toEqual(Array.from({ length: next }, (_, i) => i));
    // A sentinel proves nothing else (no repeat) was queued before it.
    await store.append(stream, [ev('N', { i: next })], next - 1);
    expect(await nextEvents(it, 1, seen)).toEqual([next]);
    expect(seen.caughtUp).toBeGreaterThanOrEqual(1);
    expect((await metrics.eventStoreResubscribes.get()).values[0]!.value).toBeGreaterThanOrEqual(3);
    expect(fake.server.activeSubscriptions()).toBe(1);
    // The client keeps its open gRPC calls in a set: reconnects must not pile them up (the subscription, plus the
    // long-lived BatchAppend call in batch mode).
    const calls = (store.client as unknown as { disposableStreams: Set<unknown> }).disposableStreams.size;
    expect(calls).toBeLessThanOrEqual(appendPath === 'batch' ? 2 : 1);
    await sub.close();
    expect(await it.next()).toMatchObject({ done: true });
  });

  it('answers an append whose reply was lost in a crash with the committed result, written once', async () => {
    await open();
    const stream = `generation-${randomUUID().slice(0, 8)}`;
    fake.server.crashAfterNextCommits(1);
    const restarted = new Promise((r) => setTimeout(r, 150)).then(() => fake.restart());
    const events = [ev('A', { i: 0 }), ev('B', { i: 1 })];
    const result = await store.append(stream, events, 'no_stream');
    await restarted;
    expect(result.nextRevision).toBe(1);
    const read = await store.readStream(stream);
    expect(read.map((e) => e.id)).toEqual(events.map((e) => e.id));
    expect(fake.server.calls[appendPath === 'batch' ? 'batchAppend' : 'append']).toBeGreaterThanOrEqual(2);
    expect(fake.server.calls[appendPath === 'batch' ? 'append' : 'batchAppend']).toBe(0);
  });

  it('retries an append whose answer never comes after the deadline, and the retry is answered without a second copy', async () => {
    fake = await startFakeEsdb({ appendPath });
    store = openEsdbEventStore({ connectionString: fake.connectionString, logger: silentLogger(), timeoutMs: 300, attempts: 3, backoffInitialMs: 10 });
    const stream = `generation-${randomUUID().slice(0, 8)}`;
    fake.server.silenceAfterNextCommits(1);
    const e = ev('A', { i: 0 });
    expect((await store.append(stream, [e], 'no_stream')).nextRevision).toBe(0);
    expect((await store.readStream(stream)).map((x) => x.id)).toEqual([e.id]);
    expect(fake.server.calls[appendPath === 'batch' ? 'batchAppend' : 'append']).toBe(2);
  });

  it('ends appends during an outage committed once or with EventStoreUnavailableError; a retry with the same ids leaves one copy', async () => {
    await open({ attempts: 2 });
    const ns = randomUUID().slice(0, 8);
    const batches = Array.from({ length: 12 }, (_, i) => ({ stream: `credit-account-user-${ns}-${i}`, events: [ev('CreditsGranted', { i })] }));
    // Some appends commit and lose their reply, the rest meet a stopped server.
    fake.server.crashAfterNextCommits(1);
    const outcomes = await Promise.allSettled(batches.map((b) => store.append(b.stream, b.events, 'no_stream')));
    for (const o of outcomes) if (o.status === 'rejected') expect(o.reason).toBeInstanceOf(EventStoreUnavailableError);
    expect(outcomes.some((o) => o.status === 'rejected')).toBe(true);
    // at least the append that crashed the server was committed although its caller saw an error
    const committed = batches.filter((b) => fake.server.log.some((e) => e.id === b.events[0]!.id));
    expect(committed.length).toBeGreaterThanOrEqual(1);
    outcomes.forEach((o, i) => o.status === 'fulfilled' && expect(committed).toContain(batches[i]));
    await fake.restart();
    for (const b of batches) {
      const r = await store.append(b.stream, b.events, 'no_stream');
      expect(r.nextRevision).toBe(0);
    }
    for (const b of batches) expect((await store.readStream(b.stream)).map((e) => e.id)).toEqual([b.events[0]!.id]);
  });

  it('fails a call with EventStoreUnavailableError while the server is down, and works again after a restart', async () => {
    await open({ attempts: 2 });
    await fake.stop();
    await expect(store.ping()).rejects.toBeInstanceOf(EventStoreUnavailableError);
    await expect(store.readStream('generation-x')).rejects.toBeInstanceOf(EventStoreUnavailableError);
    await fake.restart();
    await store.ping();
    expect(await store.readStream('generation-x')).toEqual([]);
  });
});

describe('esdb subscription lifecycle (fake server)', () => {
  let fake: FakeEsdb;
  let store: EsdbEventStore;
  afterEach(async () => {
    await store?.close();
    await fake?.close();
  });

  it('applies backpressure: a consumer that does not pull leaves history unsent on the server', async () => {
    fake = await startFakeEsdb();
    store = openEsdbEventStore({ connectionString: fake.connectionString, logger: silentLogger() });
    const stream = `generation-${randomUUID().slice(0, 8)}`;
    const pad = 'x'.repeat(500);
    for (let i = 0; i < 4000; i += 500) fake.server.write(stream, Array.from({ length: 500 }, (_, k) => ({ type: 'N', data: { i: i + k, pad } })));
    const sub = store.subscribeToAll({ fromPosition: 'start', filter: { streamPrefixes: [stream] } });
    const it = sub[Symbol.asyncIterator]();
    const seen = { caughtUp: 0 };
    expect(await nextEvents(it, 1, seen)).toEqual([0]);
    await new Promise((r) => setTimeout(r, 300)); // let the server push as much as flow control allows
    expect(fake.server.subscriptionEventsSent).toBeLessThan(4000);
    const rest = await nextEvents(it, 3999, seen);
    expect(rest[3998]).toBe(3999);
    await sub.close();
  });

  it('resumes a subscription the server ended cleanly, and ends with the error when the server refuses for good', async () => {
    fake = await startFakeEsdb();
    store = openEsdbEventStore({ connectionString: fake.connectionString, logger: silentLogger(), backoffInitialMs: 10, backoffMaxMs: 20 });
    const stream = `generation-${randomUUID().slice(0, 8)}`;
    fake.server.write(stream, [{ type: 'N', data: { i: 0 } }]);
    const sub = store.subscribeToAll({ fromPosition: 'start', filter: { streamPrefixes: [stream] } });
    const it = sub[Symbol.asyncIterator]();
    const seen = { caughtUp: 0 };
    expect(await nextEvents(it, 1, seen)).toEqual([0]);
    fake.server.endSubscriptions();
    fake.server.write(stream, [{ type: 'N', data: { i: 1 } }]);
    expect(await nextEvents(it, 1, seen)).toEqual([1]);
    expect(fake.server.calls.subscribe).toBe(2);

    fake.server.refuseSubscriptionsWith({ code: 7 /* PERMISSION_DENIED */, exception: 'access-denied' });
    fake.server.endSubscriptions();
    let err: unknown;
    for (let i = 0; i < 5 && !err; i++) {
      const r = await it.next().catch((e: unknown) => ({ thrown: e }));
      if ('thrown' in r) err = r.thrown;
      else expect(r.value).toEqual({ kind: 'caughtUp' }); // the resumed subscription's own caughtUp
    }
    expect(err).toMatchObject({ type: 'access-denied' });
    expect(fake.server.calls.subscribe).toBe(3); // no retry loop against a permanent refusal
  });

  it('ends a pending next() with done when closed', async () => {
    fake = await startFakeEsdb();
    store = openEsdbEventStore({ connectionString: fake.connectionString, logger: silentLogger() });
    const sub = store.subscribeToAll({ fromPosition: 'start', filter: { streamPrefixes: [`generation-${randomUUID()}`] } });
    const it = sub[Symbol.asyncIterator]();
    expect(await it.next()).toEqual({ done: false, value: { kind: 'caughtUp' } });
    const pending = it.next();
    await sub.close();
    expect(await pending).toMatchObject({ done: true });
    // the cancellation reaches the server asynchronously (RST_STREAM)
    await vi.waitFor(() => expect(fake.server.activeSubscriptions()).toBe(0), { timeout: 5000 });
  });

  it('starts once the server comes up, and gives up with EventStoreUnavailableError after maxResubscribeAttempts', async () => {
    fake = await startFakeEsdb();
    await fake.stop();
    store = openEsdbEventStore({ connectionString: fake.connectionString, logger: silentLogger(), backoffInitialMs: 20, backoffMaxMs: 50 });
    const stream = `generation-${randomUUID().slice(0, 8)}`;
    fake.server.write(stream, [{ type: 'N', data: { i: 0 } }]);
    const sub = store.subscribeToAll({ fromPosition: 'start', filter: { streamPrefixes: [stream] } });
    const it = sub[Symbol.asyncIterator]();
    setTimeout(() => void fake.restart(), 150);
    expect(await nextEvents(it, 1, { caughtUp: 0 })).toEqual([0]);
    await sub.close();

    const limited = openEsdbEventStore({
      connectionString: fake.connectionString,
      logger: silentLogger(),
      backoffInitialMs: 10,
      backoffMaxMs: 20,
      maxResubscribeAttempts: 3,
    });
    await fake.stop();
    const doomed = limited.subscribeToAll({ fromPosition: 'start' })[Symbol.asyncIterator]();
    await expect(doomed.next()).rejects.toBeInstanceOf(EventStoreUnavailableError);
    await limited.close();
  });
});

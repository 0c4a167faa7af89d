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
import { before, scaled, waitFor } from '../support/deadlines.ts';
import { describeEventStoreContract, ev } from '../support/eventStoreContract.ts';
import { describeEsdbSpecifics } from '../support/esdbSpecifics.ts';
import { FakeEsdbServer, startFakeEsdb, type FakeEsdb } from '../support/fakeEsdb/index.ts';

// 'batch': the client appends over BatchAppend, as against a real 21.10+ server; 'classic': the Append fallback.
for (const appendPath of ['batch', 'classic'] as const) {
  describeEventStoreContract(`esdb (in-process fake server, ${appendPath} append)`, async () => {
    const fake = await startFakeEsdb({ appendPath });
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
  const deadline = Date.now() + scaled(timeoutMs);
  while (out.length < n) {
    if (Date.now() >= deadline) throw new Error(`got ${out.length} of ${n} events`);
    const next = await before(`event ${out.length + 1} of ${n} (the last ones: ${out.slice(-5).join(',')})`, it.next(), deadline);
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
      await new Promise((r) => setTimeout(r, 100)); // an outage of some length; nothing waits for anything in it
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
    await waitFor('the server to stop on flow control', () => fake.server.callsHeldByFlowControl() > 0, 10_000);
    expect(fake.server.subscriptionEventsSent).toBeLessThan(4000);
    const rest = await nextEvents(it, 3999, seen, 60_000); // 3999 events through the client: give a busy machine time
    expect(rest[3998]).toBe(3999);
    await sub.close();
  }, scaled(120_000)); // the drain's 60 s deadline must fit inside the test's

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
    await vi.waitFor(() => expect(fake.server.activeSubscriptions()).toBe(0), { timeout: scaled(5000) });
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

// Issue 14: what a review of the adapter against client 6.2.1 and KurrentDB 26 found, each on the stand-in.
describe.each(['batch', 'classic'] as const)('esdb adapter: node states and a leader change (%s append)', (appendPath) => {
  const fakes: FakeEsdb[] = [];
  const extra: FakeEsdbServer[] = [];
  const stores: EsdbEventStore[] = [];
  const open = async (options: { attempts?: number; connectionString?: string } = {}) => {
    const fake = await startFakeEsdb({ appendPath });
    fakes.push(fake);
    const store = openEsdbEventStore({
      connectionString: options.connectionString ?? fake.connectionString,
      logger: silentLogger(),
      backoffInitialMs: 10,
      backoffMaxMs: 50,
      attempts: options.attempts ?? 6,
      timeoutMs: 3_000,
    });
    stores.push(store);
    return { fake, store };
  };
  /** A second node on the first one's data (a cluster). */
  const secondNode = async (fake: FakeEsdb) => {
    const node = new FakeEsdbServer({ appendPath, storage: fake.server.storage });
    await node.start();
    extra.push(node);
    return node;
  };
  const appendCalls = (s: FakeEsdbServer) => s.calls[appendPath === 'batch' ? 'batchAppend' : 'append'];
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close();
    for (const f of fakes.splice(0)) await f.close();
    for (const n of extra.splice(0)) await n.stop();
  });

  for (const reason of ['not-ready', 'too-busy', 'no-leader'] as const) {
    it(`retries an append the node refuses as ${reason}, writes it once, and reconnects`, async () => {
      const { fake, store } = await open();
      const stream = `generation-${randomUUID().slice(0, 8)}`;
      await store.append(`${stream}-warm`, [ev('W')], 'no_stream');
      const features = fake.server.calls.serverFeatures;
      fake.server.refuseAppends(reason, 2);
      const e = ev('A');
      expect((await store.append(stream, [e], 'no_stream')).nextRevision).toBe(0);
      expect((await store.readStream(stream)).map((x) => x.id)).toEqual([e.id]);
      expect(appendCalls(fake.server)).toBe(1 + 3);
      // A new channel asks for the server's features again (only BatchAppend servers advertise them).
      if (appendPath === 'batch') expect(fake.server.calls.serverFeatures).toBeGreaterThan(features);
    });
  }

  it('ends with EventStoreUnavailableError, not the raw client error, when the node keeps refusing', async () => {
    const { fake, store } = await open({ attempts: 3 });
    fake.server.refuseAppends('no-leader');
    const stream = `generation-${randomUUID().slice(0, 8)}`;
    await expect(store.append(stream, [ev('A')], 'no_stream')).rejects.toBeInstanceOf(EventStoreUnavailableError);
    fake.server.refuseAppends(undefined);
    expect(await store.readStream(stream)).toEqual([]);
  });

  it('waits out a node that refuses every call while it starts', async () => {
    const { fake, store } = await open({ attempts: 10 });
    fake.server.setStarting(true);
    setTimeout(() => fake.server.setStarting(false), 300);
    const stream = `generation-${randomUUID().slice(0, 8)}`;
    expect((await store.append(stream, [ev('A'), ev('B')], 'no_stream')).nextRevision).toBe(1);
    expect(await store.streamRevision(stream)).toBe(1);
  });

  it('appends through a leader change: refused during the election, forwarded by the old leader after it', async () => {
    const { fake, store } = await open();
    const newLeader = await secondNode(fake);
    const stream = `generation-${randomUUID().slice(0, 8)}`;
    await store.append(stream, [ev('A')], 'no_stream');
    fake.server.refuseAppends('no-leader', 2); // the election
    setTimeout(() => {
      fake.server.refuseAppends(undefined);
      fake.server.followerOf(newLeader); // elected: the node we talk to forwards writes to the new leader
    }, 60);
    const b = ev('B');
    const r = await store.append(stream, [b], 0);
    expect(r.nextRevision).toBe(1);
    expect(await store.append(stream, [b], 0)).toEqual(r); // a retry after a lost answer: the same result
    expect((await store.readStream(stream)).map((e) => e.type)).toEqual(['A', 'B']);
  });

  it('answers a multi-event append with the position the server gave, even when reads lag behind the write', async () => {
    const { fake } = await open();
    const follower = await secondNode(fake);
    follower.followerOf(fake.server, { lagging: true }); // its reads do not see new writes yet
    const store = openEsdbEventStore({ connectionString: follower.connectionString, logger: silentLogger(), backoffInitialMs: 10, attempts: 6 });
    stores.push(store);
    const stream = `generation-${randomUUID().slice(0, 8)}`;
    const r = await store.append(stream, [ev('A'), ev('B'), ev('C')], 'no_stream');
    expect(r.nextRevision).toBe(2);
    follower.catchUp();
    const last = (await store.readStream(stream)).at(-1)!;
    expect(last.position).toEqual(r.position);
  });

  it('completes an answer without a position from the leader, following its NotLeader redirect', async () => {
    const { fake } = await open();
    const follower = await secondNode(fake);
    follower.followerOf(fake.server, { lagging: true });
    const store = openEsdbEventStore({ connectionString: follower.connectionString, logger: silentLogger(), backoffInitialMs: 10, attempts: 6 });
    stores.push(store);
    follower.omitPositionsInNextAnswers(1);
    const stream = `generation-${randomUUID().slice(0, 8)}`;
    const r = await store.append(stream, [ev('A'), ev('B')], 'no_stream');
    expect(fake.server.calls.read).toBeGreaterThanOrEqual(1); // read on the leader the follower named
    const onLeader = fake.server.log.filter((e) => e.stream === stream);
    expect(r.position).toEqual({ commit: onLeader[1]!.commit, prepare: onLeader[1]!.prepare });
  });
});

describe('esdb adapter: what the review found beyond node states', () => {
  let fake: FakeEsdb | undefined;
  let store: EsdbEventStore | undefined;
  afterEach(async () => {
    await store?.close();
    await fake?.close();
    store = undefined;
    fake = undefined;
  });

  it('ends a subscription failing with UNKNOWN for no known reason, and resubscribes when it says there is no leader', async () => {
    fake = await startFakeEsdb();
    store = openEsdbEventStore({ connectionString: fake.connectionString, logger: silentLogger(), backoffInitialMs: 10, backoffMaxMs: 20 });
    const stream = `generation-${randomUUID().slice(0, 8)}`;
    fake.server.write(stream, [{ type: 'N', data: { i: 0 } }]);
    const it = store.subscribeToAll({ fromPosition: 'start', filter: { streamPrefixes: [stream] } })[Symbol.asyncIterator]();
    const seen = { caughtUp: 0 };
    expect(await nextEvents(it, 1, seen)).toEqual([0]);

    fake.server.refuseSubscriptionsWith({ code: 2 /* UNKNOWN */, details: 'No leader info available in response' });
    fake.server.endSubscriptions();
    const pending = nextEvents(it, 1, seen); // pulling drives the resubscriptions
    await vi.waitFor(() => expect(fake!.server.calls.subscribe).toBeGreaterThanOrEqual(3), { timeout: scaled(5000) }); // retried
    fake.server.refuseSubscriptionsWith(undefined);
    fake.server.write(stream, [{ type: 'N', data: { i: 1 } }]);
    expect(await pending).toEqual([1]);

    const before = fake.server.calls.subscribe;
    fake.server.refuseSubscriptionsWith({ code: 2, details: 'Exception was thrown by handler' });
    fake.server.endSubscriptions();
    let err: unknown;
    for (let i = 0; i < 5 && !err; i++) {
      const r = await it.next().catch((e: unknown) => ({ thrown: e }));
      if ('thrown' in r) err = r.thrown;
    }
    expect(err).toMatchObject({ type: 'unknown', code: 2 });
    expect(fake.server.calls.subscribe).toBe(before + 1); // no resubscribe loop
  });

  it('takes only esdb:// and esdb+discover:// connection strings (client 6 refuses kurrentdb://)', () => {
    const open = (connectionString: string) => openEsdbEventStore({ connectionString, logger: silentLogger() });
    expect(() => open('kurrentdb://127.0.0.1:2113?tls=false')).toThrow(/esdb:\/\/ or esdb\+discover:\/\//);
    expect(() => open('127.0.0.1:2113')).toThrow(/esdb:\/\//);
  });

  it('keeps any-appends idempotent only while the server remembers their ids; exact revisions always', async () => {
    fake = await startFakeEsdb({ idCacheSize: 2 });
    store = openEsdbEventStore({ connectionString: fake.connectionString, logger: silentLogger() });
    const s = `generation-${randomUUID().slice(0, 8)}`;
    const copies = async (id: string) => (await store!.readStream(s)).filter((e) => e.id === id).length;
    const a = ev('A');
    await store.append(s, [a], 'any');
    await store.append(s, [a], 'any');
    expect(await copies(a.id)).toBe(1); // remembered
    await store.append(`${s}-x`, [ev('X')], 'any');
    await store.append(`${s}-y`, [ev('Y')], 'any'); // two newer ids push it out of the cache
    await store.append(s, [a], 'any');
    expect(await copies(a.id)).toBe(2); // forgotten: written again

    const b = ev('B');
    const revision = (await store.streamRevision(s))!;
    await store.append(s, [b], revision);
    await store.append(`${s}-z`, [ev('Z')], 'any');
    await store.append(`${s}-w`, [ev('W')], 'any');
    await store.append(s, [b], revision); // checked against the stream itself
    expect(await copies(b.id)).toBe(1);

    const c = ev('C');
    await store.append(s, [c], 'any');
    await fake.restart(); // the cache is memory
    await store.append(s, [c], 'any');
    expect(await copies(c.id)).toBe(2);
  });

  it('reads and subscribes across history written by legacy explicit transactions (events sharing a commit position)', async () => {
    fake = await startFakeEsdb();
    store = openEsdbEventStore({ connectionString: fake.connectionString, logger: silentLogger(), readPageSize: 2, backoffInitialMs: 10 });
    const stream = `generation-${randomUUID().slice(0, 8)}`;
    fake.server.write(stream, [0, 1, 2].map((i) => ({ type: 'N', data: { i } })));
    fake.server.write(stream, [3, 4, 5, 6].map((i) => ({ type: 'N', data: { i } })), { legacyTransaction: true });
    fake.server.write(stream, [7, 8].map((i) => ({ type: 'N', data: { i } })));
    const all = (await store.readAll({ maxCount: 100, filter: { streamPrefixes: [stream] } })).map((e) => (e.data as { i: number }).i);
    expect(all).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    const inside = (await store.readStream(stream))[4]!; // in the middle of the transaction
    const back = await store.readAll({ direction: 'backwards', fromPosition: inside.position, maxCount: 3, filter: { streamPrefixes: [stream] } });
    expect(back.map((e) => (e.data as { i: number }).i)).toEqual([4, 3, 2]);
    const it = store.subscribeToAll({ fromPosition: inside.position, filter: { streamPrefixes: [stream] } })[Symbol.asyncIterator]();
    const seen = { caughtUp: 0 };
    expect(await nextEvents(it, 2, seen)).toEqual([5, 6]);
    await fake.stop();
    await fake.restart();
    expect(await nextEvents(it, 2, seen)).toEqual([7, 8]);
  });
});

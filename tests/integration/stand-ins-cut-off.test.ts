// Every stand-in server in tests/support survives a client that leaves mid-request: the service under test gets
// SIGKILLed mid-upload (tests/e2e/crash.e2e.test.ts), a test aborts a call, a socket is reset. A stand-in must take
// that as ordinary traffic: no unhandled rejection or uncaught exception in the test process (vitest fails the whole
// run on one), and the next request is answered.
//
// Ordering: each case waits for the stand-in's own view of the cut-off before it checks: over HTTP/1.1 until the
// server-side connection is closed (Node runs the request's abort, and with it the handler's failure path, before
// that socket's 'close' listeners), then one more request answered; over HTTP/2, stream resets travel on the same
// connection as the next call, which the server reads in order; connection-level cuts are awaited as the client
// socket's 'close', and the follow-up call needs a new connection's handshake the server can only answer after it
// read the earlier socket's end.
import { createRequire } from 'node:module';
import http2 from 'node:http2';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { connectHttp2, CUT_OFFS, cutOffHttpRequest, grpcFrame, openGrpcCall, statusOfOneShotGet, unaryGrpcStatus, watchProcessErrors } from '../support/cutOff.ts';
import { waitFor, within } from '../support/deadlines.ts';
import { startFakeEsdb, type FakeEsdb } from '../support/fakeEsdb/index.ts';
import { startFakeOpenAI, type FakeOpenAI } from '../support/fakeOpenAI.ts';
import { startFakeSupabaseStorage, type FakeSupabaseStorage } from '../support/fakeSupabaseStorage.ts';
import { startImageServer, type ImageServer } from '../support/imageServer.ts';
import { readBody } from '../support/loopback.ts';

const require = createRequire(import.meta.url);
const pb = require('@eventstore/db-client/generated/streams_pb.js') as typeof import('@eventstore/db-client/generated/streams_pb.js');
const shared = require('@eventstore/db-client/generated/shared_pb.js') as typeof import('@eventstore/db-client/generated/shared_pb.js');

let watch: ReturnType<typeof watchProcessErrors>;
beforeEach(() => {
  watch = watchProcessErrors();
});
afterEach(() => watch.stop());

/** After an HTTP/1.1 cut-off: the server closed its side, still answers, and the process saw nothing unhandled. */
async function expectHttpSurvived(stand: { openConnections(): number }, answers: () => Promise<number>): Promise<void> {
  await waitFor('the stand-in to close the cut-off connection', () => stand.openConnections() === 0, 10_000);
  expect(await answers()).toBeGreaterThanOrEqual(200);
  expect(watch.seen).toEqual([]);
}

describe('OpenAI stand-in', () => {
  let fake: FakeOpenAI;
  beforeAll(async () => {
    fake = await startFakeOpenAI();
  });
  afterAll(() => fake.close());
  const answers = () => statusOfOneShotGet(`${fake.baseURL}/models`);

  it.each(CUT_OFFS)('a multipart upload cut off mid-body (%s)', async (how) => {
    await cutOffHttpRequest(Number(new URL(fake.baseURL).port), { how, path: '/v1/images/edits', headers: { 'content-type': 'multipart/form-data; boundary=x' } });
    await expectHttpSurvived(fake, answers);
    expect(fake.requests).toHaveLength(0);
  });

  it('a client that leaves while its answer is on the way (model latency)', async () => {
    fake.setLatency(60_000); // longer than the test: the answer never comes before the client leaves
    try {
      const ctl = new AbortController();
      const form = new FormData();
      form.append('model', 'gpt-image-1');
      form.append('image[]', new Blob([new Uint8Array(fake.defaultImage)], { type: 'image/jpeg' }), 'a.jpg');
      const call = fetch(`${fake.baseURL}/images/edits`, { method: 'POST', body: form, signal: ctl.signal }).catch(() => 'aborted');
      const before = fake.requests.length;
      await waitFor('the stand-in to record the request', () => fake.requests.length > before, 10_000);
      ctl.abort();
      expect(await call).toBe('aborted');
    } finally {
      fake.setLatency(0);
    }
    expect(await answers()).toBe(404);
    expect(watch.seen).toEqual([]);
  });
});

describe('Supabase Storage stand-in', () => {
  let fake: FakeSupabaseStorage;
  beforeAll(async () => {
    fake = await startFakeSupabaseStorage();
  });
  afterAll(() => fake.close());

  it.each(CUT_OFFS)('an upload cut off mid-body (%s)', async (how) => {
    const port = Number(new URL(fake.url).port);
    await cutOffHttpRequest(port, {
      how,
      path: `/storage/v1/object/${fake.bucket}/cut/off.jpg`,
      headers: { authorization: `Bearer ${fake.serviceRoleKey}`, 'content-type': 'image/jpeg' },
    });
    await expectHttpSurvived(fake, () => statusOfOneShotGet(`${fake.url}/nowhere`));
    expect(fake.objects.size).toBe(0);
  });
});

describe('image server', () => {
  let srv: ImageServer;
  beforeAll(async () => {
    srv = await startImageServer();
    srv.route('/upload', async (req, res) => {
      const body = await readBody(req);
      if (body) res.writeHead(200).end(String(body.length));
    });
    srv.route('/throws', () => {
      throw new Error('a route that fails');
    });
  });
  afterAll(() => srv.close());

  it.each(CUT_OFFS)('a body cut off mid-way (%s)', async (how) => {
    await cutOffHttpRequest(srv.port, { how, path: '/upload' });
    await expectHttpSurvived(srv, () => statusOfOneShotGet(srv.url('/nowhere')));
  });

  it.each(CUT_OFFS)('a GET whose client leaves before the answer (%s)', async (how) => {
    await cutOffHttpRequest(srv.port, { how, method: 'GET', path: '/nowhere' });
    await expectHttpSurvived(srv, () => statusOfOneShotGet(srv.url('/nowhere')));
  });

  it('a route that throws answers 500 and names the failure, nothing escapes', async () => {
    const r = await fetch(srv.url('/throws'));
    expect(r.status).toBe(500);
    expect(await r.text()).toContain('a route that fails');
    expect(watch.seen).toEqual([]);
  });
});

describe('EventStoreDB stand-in (gRPC)', () => {
  const STREAMS = '/event_store.client.streams.Streams';
  const FEATURES = '/event_store.client.server_features.ServerFeatures/GetSupportedMethods';
  let fake: FakeEsdb;
  let port: number;
  beforeAll(async () => {
    fake = await startFakeEsdb();
    port = Number(new URL(fake.connectionString.replace('esdb://', 'http://')).port);
  });
  afterAll(() => fake.close());

  /** The first 10 bytes of a frame that announces 100. */
  const halfFrame = () => Buffer.concat([Buffer.from([0, 0, 0, 0, 100]), Buffer.alloc(10, 1)]);
  const appendOptions = () =>
    new pb.AppendReq().setOptions(
      new pb.AppendReq.Options().setStreamIdentifier(new shared.StreamIdentifier().setStreamName(Buffer.from('cut-off'))).setAny(new shared.Empty()),
    );
  const batchOptions = () =>
    new pb.BatchAppendReq()
      .setCorrelationId(new shared.UUID().setString('00000000-0000-4000-8000-000000000001'))
      .setOptions(new pb.BatchAppendReq.Options().setStreamIdentifier(new shared.StreamIdentifier().setStreamName(Buffer.from('cut-off'))).setAny(new shared.Empty()));
  const subscribeAll = () =>
    new pb.ReadReq().setOptions(
      new pb.ReadReq.Options()
        .setAll(new pb.ReadReq.Options.AllOptions().setStart(new shared.Empty()))
        .setSubscription(new pb.ReadReq.Options.SubscriptionOptions())
        .setNoFilter(new shared.Empty())
        .setUuidOption(new pb.ReadReq.Options.UUIDOption().setString(new shared.Empty())),
    );

  const calls = [
    { name: 'Append, half a frame', path: `${STREAMS}/Append`, body: halfFrame },
    { name: 'Append, options sent, no end', path: `${STREAMS}/Append`, body: () => grpcFrame(appendOptions().serializeBinary()) },
    { name: 'BatchAppend, half a frame', path: `${STREAMS}/BatchAppend`, body: halfFrame },
    { name: 'BatchAppend, options without is_final', path: `${STREAMS}/BatchAppend`, body: () => grpcFrame(batchOptions().serializeBinary()) },
    { name: 'Read, half a frame', path: `${STREAMS}/Read`, body: halfFrame },
  ];

  it.each(calls)('$name, the call reset (RST_STREAM)', async ({ path, body }) => {
    const client = await connectHttp2(port);
    try {
      const call = openGrpcCall(client.session, path, body());
      call.close(http2.constants.NGHTTP2_CANCEL);
      expect(await unaryGrpcStatus(client.session, FEATURES, new Uint8Array())).toBe('0');
    } finally {
      client.session.destroy();
    }
    expect(watch.seen).toEqual([]);
  });

  it.each(calls.flatMap((c) => CUT_OFFS.map((how) => ({ ...c, how }))))('$name, the connection cut ($how)', async ({ path, body, how }) => {
    const client = await connectHttp2(port);
    const call = openGrpcCall(client.session, path, body());
    await new Promise<void>((resolve) => call.write(Buffer.alloc(0), () => resolve())); // flushed to the socket
    await client.leave(how);
    client.session.destroy();
    const next = await connectHttp2(port);
    try {
      expect(await unaryGrpcStatus(next.session, FEATURES, new Uint8Array())).toBe('0');
    } finally {
      next.session.destroy();
    }
    expect(watch.seen).toEqual([]);
  });

  it.each(['call', ...CUT_OFFS] as const)('a live subscription whose client leaves (%s)', async (how) => {
    const client = await connectHttp2(port);
    const call = openGrpcCall(client.session, `${STREAMS}/Read`, grpcFrame(subscribeAll().serializeBinary()));
    const confirmed = new Promise<void>((resolve) => call.once('data', () => resolve()));
    call.end();
    await within('the subscription confirmation', confirmed, 10_000);
    expect(fake.server.activeSubscriptions()).toBe(1);
    if (how === 'call') call.close(http2.constants.NGHTTP2_CANCEL);
    else await client.leave(how);
    await waitFor('the stand-in to end the subscription', () => fake.server.activeSubscriptions() === 0, 10_000);
    client.session.destroy();
    fake.server.write('after-cut-off', [{ type: 'Probe', data: {} }]); // wakes what might still wait on the log
    const next = await connectHttp2(port);
    try {
      expect(await unaryGrpcStatus(next.session, FEATURES, new Uint8Array())).toBe('0');
    } finally {
      next.session.destroy();
    }
    expect(watch.seen).toEqual([]);
  });
});

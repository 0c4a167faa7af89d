// An in-process gRPC server that speaks the EventStoreDB Streams protocol (event_store.client.streams.Streams) to the
// real @eventstore/db-client, built from the service definitions and protobuf classes that client package ships.
//
// What it does: ServerFeatures advertising Read/Append/BatchAppend, so the client appends over BatchAppend as it does
// against a real 21.10+ server (mode 'classic' leaves ServerFeatures out: the client then gets UNIMPLEMENTED and uses
// the client-streaming Append; both paths are tested); expected-revision checks (no_stream, any, stream_exists, exact)
// and event-id idempotency (the same ids at the same place answer success with the original result; a partial match is
// a wrong-expected-version, like the server's "corrupted idempotency"; for any/stream_exists the first id is looked up
// in a bounded cache of recent ids that a restart empties, like the server's committed-events cache); Read of one
// stream and of $all, forwards and backwards, with maxCount and StreamNotFound; $all reads forwards from a position are
// inclusive, backwards exclusive; subscriptions to $all and to one stream (from start, from an exclusive
// position/revision, or from end) with confirmation, history, caughtUp, then live events, honouring gRPC flow control;
// server-side filters on stream name or event type (prefixes or a regex) with checkpoint messages every
// `checkpointIntervalMultiplier * 32` scanned events; positions as KurrentDB 20+ gives them (each event its own
// committed record: commit = prepare, growing by a pseudo record size; an append answered with its last event's), and
// history written by legacy explicit transactions (events sharing a commit position); a few `$`-system events in the
// log like a fresh server has; `created` as .NET ticks since the Unix epoch; stop/restart on the same port with the
// data kept. Node states as KurrentDB 26 answers them (Streams.BatchAppend.cs, Streams.Append.cs, RpcExceptions.cs,
// NotReadyInterceptor.cs): appends refused as not ready / too busy / no leader info (over BatchAppend a per-append
// error without a code, over Append UNAVAILABLE or UNKNOWN), every call refused while the node is starting, and a
// second node sharing the data (a cluster): a follower forwards appends to its leader, answers calls that require the
// leader with NotLeader and the leader's endpoint (over BatchAppend that fails the whole call), and its reads may lag.
// Fault hooks: stop right after an append commits and before it answers, leave a committed append unanswered, end
// subscriptions cleanly, refuse subscriptions with a given error.
//
// What it does NOT imitate (see docs/eventstoredb.md): the other ServerFeatures entries (persistent subscriptions,
// projections...), Delete/Tombstone and soft-deleted streams, stream metadata ($maxCount, $tb, ACLs), authentication
// and TLS, projections and link events ($>, resolveLinkTos), persistent subscriptions, Gossip/cluster discovery and
// elections themselves (tests switch node roles), the 'fell behind' signal and the dropping of subscribers whose live
// queue overflows (here a slow subscriber just waits under flow control), max append size, BatchAppend deadlines and
// any deadline enforcement, durability (data lives in memory), the memory bound of the id cache (a count here), exact
// checkpoint positions, lagging subscriptions on a follower (only its reads lag), and .NET regex dialect differences
// (filters use JavaScript RegExp).
import { createRequire } from 'node:module';
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';

const require = createRequire(import.meta.url);
type StreamsPb = typeof import('@eventstore/db-client/generated/streams_pb.js');
type SharedPb = typeof import('@eventstore/db-client/generated/shared_pb.js');
type StreamsGrpc = typeof import('@eventstore/db-client/generated/streams_grpc_pb.js');
const pb = require('@eventstore/db-client/generated/streams_pb.js') as StreamsPb;
const shared = require('@eventstore/db-client/generated/shared_pb.js') as SharedPb;
const { StreamsService } = require('@eventstore/db-client/generated/streams_grpc_pb.js') as StreamsGrpc;
type FeaturesPb = typeof import('@eventstore/db-client/generated/serverfeatures_pb.js');
const featuresPb = require('@eventstore/db-client/generated/serverfeatures_pb.js') as FeaturesPb;
const { ServerFeaturesService } = require('@eventstore/db-client/generated/serverfeatures_grpc_pb.js') as typeof import('@eventstore/db-client/generated/serverfeatures_grpc_pb.js');
const statusPb = require('@eventstore/db-client/generated/status_pb.js') as typeof import('@eventstore/db-client/generated/status_pb.js');
// The same google-protobuf copy the generated classes use (Any/Empty instances must come from it).
const requireFromClient = createRequire(require.resolve('@eventstore/db-client/generated/streams_pb.js'));
const { Any } = requireFromClient('google-protobuf/google/protobuf/any_pb.js') as typeof import('google-protobuf/google/protobuf/any_pb.js');
const { Empty } = requireFromClient('google-protobuf/google/protobuf/empty_pb.js') as typeof import('google-protobuf/google/protobuf/empty_pb.js');

type ReadReq = InstanceType<StreamsPb['ReadReq']>;
type ReadResp = InstanceType<StreamsPb['ReadResp']>;
type AppendReq = InstanceType<StreamsPb['AppendReq']>;
type AppendResp = InstanceType<StreamsPb['AppendResp']>;
type ReadOptions = InstanceType<StreamsPb['ReadReq']['Options']>;
type ProposedMessage = InstanceType<StreamsPb['AppendReq']['ProposedMessage']>;
type BatchAppendReq = InstanceType<StreamsPb['BatchAppendReq']>;
type BatchAppendResp = InstanceType<StreamsPb['BatchAppendResp']>;

export interface StoredEvent {
  stream: string;
  revision: number;
  id: string;
  type: string;
  contentType: string;
  data: Uint8Array;
  customMetadata: Uint8Array;
  /** .NET ticks (100 ns) since the Unix epoch, as the server sends them */
  created: bigint;
  commit: bigint;
  prepare: bigint;
  /** index in the log (a lagging follower's reads stop short of it) */
  logIndex: number;
}

type Predicate = (e: StoredEvent) => boolean;
type Proposal = Omit<StoredEvent, 'stream' | 'revision' | 'created' | 'commit' | 'prepare' | 'logIndex'>;
type Expected = { kind: 'revision'; revision: number } | { kind: 'no_stream' } | { kind: 'stream_exists' } | { kind: 'any' };
type Pos = { commit: bigint; prepare: bigint };
/** `report`: the position the server answers with (see `positions`) */
type Decision = { ok: true; wrote: boolean; revision: number; report: Pos | undefined } | { ok: false; current: number };

function proposal(m: ProposedMessage | InstanceType<StreamsPb['BatchAppendReq']['ProposedMessage']>): Proposal {
  return {
    id: m.getId()!.getString(),
    type: m.getMetadataMap().get('type') ?? '',
    contentType: m.getMetadataMap().get('content-type') ?? 'application/octet-stream',
    data: m.getData_asU8(),
    customMetadata: m.getCustomMetadata_asU8(),
  };
}

function streamNameOf(id: InstanceType<SharedPb['StreamIdentifier']> | undefined): string {
  return Buffer.from(id!.getStreamName_asU8()).toString('utf8');
}

const TICKS_PER_MS = 10_000n;
/** What KurrentDB 26 answers every call with until the node is ready (NotReadyInterceptor). */
const NOT_READY_YET = { code: grpc.status.UNAVAILABLE, details: 'The node is not ready yet.' };
const DEFAULT_SEARCH_WINDOW = 32;

function posOf(e: StoredEvent) {
  return { commit: e.commit, prepare: e.prepare };
}
function cmp(a: { commit: bigint; prepare: bigint }, b: { commit: bigint; prepare: bigint }): number {
  if (a.commit !== b.commit) return a.commit < b.commit ? -1 : 1;
  return a.prepare === b.prepare ? 0 : a.prepare < b.prepare ? -1 : 1;
}

/** The data a node serves; shared by the nodes of a fake cluster. */
export class FakeStorage {
  /** the whole log in commit order */
  readonly log: StoredEvent[] = [];
  readonly streams = new Map<string, StoredEvent[]>();
  nextPosition = 1_024n;
  readonly wakers = new Set<() => void>();

  wake(): void {
    for (const w of [...this.wakers]) w();
  }
}

/** How KurrentDB refuses an append it cannot take now (ClientMessage.NotHandled reasons). */
export type NodeRefusal = 'not-ready' | 'too-busy' | 'no-leader';
/** The per-append error message over BatchAppend, and the call's status over the classic Append. */
const REFUSALS: Record<NodeRefusal, { batch: string; classic: { code: grpc.status; details: string } }> = {
  'not-ready': { batch: 'Server Is Not Ready', classic: { code: grpc.status.UNAVAILABLE, details: 'Server Is Not Ready' } },
  'too-busy': { batch: 'Server Is Busy', classic: { code: grpc.status.UNAVAILABLE, details: 'Server Is Too Busy' } },
  'no-leader': { batch: 'No leader info available in response', classic: { code: grpc.status.UNKNOWN, details: 'No leader info available in response' } },
};

export interface FakeEsdbServerOptions {
  /** 'batch' (default): ServerFeatures advertises BatchAppend and the client uses it (like a real 21.10+ server); 'classic': Append. */
  appendPath?: 'batch' | 'classic';
  /** Recent event ids remembered for the idempotency of any/stream_exists appends (emptied by a restart). Default 100 000. */
  idCacheSize?: number;
  /** Another node's data: this node joins its cluster. */
  storage?: FakeStorage;
}

type Call = { metadata: grpc.Metadata };

/**
 * Runs a handler's work so that its failure ends that call (INTERNAL, with the error's message) instead of escaping
 * into the test process as an uncaught exception or unhandled rejection. A call the client already cut off (reset,
 * cancelled, half-sent) needs no answer.
 */
function guarded(call: { cancelled: boolean; destroyed: boolean; destroy(err?: Error): void }, work: () => unknown): void {
  const fail = (err: unknown) => {
    if (call.cancelled || call.destroyed) return;
    const message = err instanceof Error ? err.message : String(err);
    call.destroy(Object.assign(new Error(`fake EventStoreDB failed: ${message}`), { code: grpc.status.INTERNAL, details: `fake EventStoreDB failed: ${message}` }));
  };
  try {
    const done = work();
    if (done instanceof Promise) done.catch(fail);
  } catch (err) {
    fail(err);
  }
}

export class FakeEsdbServer {
  readonly storage: FakeStorage;
  readonly appendPath: 'batch' | 'classic';
  private readonly idCacheSize: number;
  /** first-event ids of recent writes -> where they stand (the server's committed-events cache) */
  private readonly idCache = new Map<string, { stream: string; index: number }>();
  private server: grpc.Server | undefined;
  private port = 0;
  private readonly subscriptions = new Set<{ closed: boolean; call?: grpc.ServerWritableStream<ReadReq, ReadResp> }>();
  private refuseSubscriptions: { code: grpc.status; exception?: string; details?: string } | undefined;
  private crashAfterCommits = 0;
  private silentAfterCommits = 0;
  private refusal: { reason: NodeRefusal; remaining: number } | undefined;
  private positionless = 0;
  private starting = false;
  /** set while this node is a follower */
  private leaderNode: FakeEsdbServer | undefined;
  /** while a follower lags: how much of the log its reads see */
  private replicated: number | undefined;
  /** calls received per method, for tests */
  readonly calls = { append: 0, batchAppend: 0, read: 0, subscribe: 0, serverFeatures: 0 };
  /** events written to subscription calls (flow-control checks) */
  subscriptionEventsSent = 0;
  /** subscription calls waiting for 'drain' right now: the client has not pulled what was sent */
  private heldByFlowControl = 0;

  constructor(options: FakeEsdbServerOptions = {}) {
    this.appendPath = options.appendPath ?? 'batch';
    this.idCacheSize = options.idCacheSize ?? 100_000;
    this.storage = options.storage ?? new FakeStorage();
    if (!options.storage) {
      // A fresh server already has system events in $all; they must never reach the ledger.
      this.appendSystemEvent('$$$stats-127.0.0.1:2113', '$metadata');
      this.appendSystemEvent('$stats-127.0.0.1:2113', '$statsCollected');
    }
  }

  get log(): StoredEvent[] {
    return this.storage.log;
  }

  private get streams(): Map<string, StoredEvent[]> {
    return this.storage.streams;
  }

  private wake(): void {
    this.storage.wake();
  }

  get connectionString(): string {
    return `esdb://127.0.0.1:${this.port}?tls=false`;
  }

  /** Subscription or read calls that stopped writing until the client pulls (gRPC flow control), right now. */
  callsHeldByFlowControl(): number {
    return this.heldByFlowControl;
  }

  /** Active subscription calls on the server side (leak checks). */
  activeSubscriptions(): number {
    return this.subscriptions.size;
  }

  async start(port = 0): Promise<void> {
    const server = new grpc.Server();
    server.addService(StreamsService, {
      read: (call: grpc.ServerWritableStream<ReadReq, ReadResp>) => (this.refusedAtStart(call) ? undefined : guarded(call, () => this.read(call))),
      append: (call: grpc.ServerReadableStream<AppendReq, AppendResp>, cb: grpc.sendUnaryData<AppendResp>) =>
        this.starting ? cb(NOT_READY_YET) : this.append(call, cb),
      delete: (_call: unknown, cb: grpc.sendUnaryData<never>) => cb({ code: grpc.status.UNIMPLEMENTED, details: 'fake: delete' }),
      tombstone: (_call: unknown, cb: grpc.sendUnaryData<never>) => cb({ code: grpc.status.UNIMPLEMENTED, details: 'fake: tombstone' }),
      batchAppend: (call: grpc.ServerDuplexStream<BatchAppendReq, BatchAppendResp>) => {
        if (this.appendPath !== 'batch') return call.destroy(Object.assign(new Error('fake: classic mode'), { code: grpc.status.UNIMPLEMENTED }));
        if (!this.refusedAtStart(call)) this.batchAppend(call);
      },
    });
    // Advertising BatchAppend is what makes the client use it; without the service the client falls back to Append.
    if (this.appendPath === 'batch') server.addService(ServerFeaturesService, { getSupportedMethods: this.getSupportedMethods.bind(this) });
    this.port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    this.server = server;
  }

  /** KurrentDB 26 refuses every call with UNAVAILABLE until the node is ready (NotReadyInterceptor). */
  private refusedAtStart(call: { destroy(err?: Error): void }): boolean {
    if (!this.starting) return false;
    call.destroy(Object.assign(new Error(NOT_READY_YET.details), NOT_READY_YET));
    return true;
  }

  /** While on, the node refuses every call as a KurrentDB 26 node does before it is ready. */
  setStarting(on: boolean): void {
    this.starting = on;
  }

  /**
   * The next `count` appends (default: until called again with undefined) are refused as KurrentDB refuses a write it
   * cannot take now: over BatchAppend a per-append error status with that message, no code and empty details (the
   * client makes it an UnknownError); over the classic Append the call fails with UNAVAILABLE or UNKNOWN.
   */
  refuseAppends(reason: NodeRefusal | undefined, count = Number.POSITIVE_INFINITY): void {
    this.refusal = reason ? { reason, remaining: count } : undefined;
  }

  private takeRefusal(): NodeRefusal | undefined {
    if (!this.refusal || this.refusal.remaining <= 0) return undefined;
    this.refusal.remaining -= 1;
    return this.refusal.reason;
  }

  /**
   * Makes this node a follower of `leader` (a node on the same storage), or the leader again with undefined. A follower
   * forwards appends to its leader, and answers calls that require the leader with NotLeader and the leader's endpoint.
   * With `lagging`, its reads see only the log as it stood at this call until `catchUp()`.
   */
  followerOf(leader: FakeEsdbServer | undefined, options: { lagging?: boolean } = {}): void {
    if (leader && leader.storage !== this.storage) throw new Error('a follower shares its leader\'s storage');
    this.leaderNode = leader;
    this.replicated = leader && options.lagging ? this.log.length : undefined;
  }

  catchUp(): void {
    this.replicated = undefined;
  }

  private requiresLeader(call: Call): boolean {
    return call.metadata.get('requires-leader')[0] === 'true';
  }

  /** RpcExceptions.LeaderInfo: NOT_FOUND with the `not-leader` exception and the leader's endpoint as trailers. */
  private notLeader(): grpc.ServiceError {
    const metadata = new grpc.Metadata();
    metadata.set('exception', 'not-leader');
    metadata.set('leader-endpoint-host', '127.0.0.1');
    metadata.set('leader-endpoint-port', String(this.leaderNode!.port));
    return Object.assign(new Error('Leader info available'), { code: grpc.status.NOT_FOUND, details: 'Leader info available', metadata });
  }

  /** The node that decides appends: this one, or the leader a follower forwards to. */
  private get decider(): FakeEsdbServer {
    return this.leaderNode ?? this;
  }

  /** Abrupt stop (like a crash or a network cut): open calls fail, data stays. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    this.idCache.clear(); // memory, lost with the process
    for (const s of this.subscriptions) s.closed = true;
    this.subscriptions.clear();
    this.wake();
    server?.forceShutdown();
  }

  async restart(): Promise<void> {
    if (this.server) await this.stop();
    // The port may linger for a moment after forceShutdown; retry the bind briefly.
    for (let attempt = 0; ; attempt++) {
      try {
        await this.start(this.port);
        return;
      } catch (err) {
        if (attempt >= 50) throw err;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }

  /** Ends every open subscription call cleanly (status OK), as a server may when it shuts down gracefully. */
  endSubscriptions(): void {
    for (const s of [...this.subscriptions]) {
      s.closed = true;
      s.call?.end();
    }
    this.subscriptions.clear();
    this.wake();
  }

  /** Refuses new subscriptions with this gRPC status, ESDB `exception` trailer and details (undefined: accept again). */
  refuseSubscriptionsWith(error: { code: grpc.status; exception?: string; details?: string } | undefined): void {
    this.refuseSubscriptions = error;
  }

  /** The next `n` appends commit but are never answered (a server that stalls after the write). */
  silenceAfterNextCommits(n = 1): void {
    this.silentAfterCommits = n;
  }

  /** The next `n` appends commit, then the server stops before answering (restart it yourself). */
  crashAfterNextCommits(n = 1): void {
    this.crashAfterCommits = n;
  }

  /** The next `n` successful appends are answered without a position (the protocol's `no_position`). */
  omitPositionsInNextAnswers(n = 1): void {
    this.positionless = n;
  }

  private answerPosition(decision: Decision): Pos | undefined {
    if (!decision.ok || !decision.report) return undefined;
    if (this.positionless > 0) {
      this.positionless--;
      return undefined;
    }
    return decision.report;
  }

  /**
   * Writes JSON events directly, as another client would (works while the gRPC server is stopped). `legacyTransaction`:
   * as an explicit transaction of EventStore's old TCP API wrote them: the events share the commit position of a
   * commit record written after them, prepare positions differ (such history stays in $all after an upgrade).
   */
  write(stream: string, events: { type: string; data: unknown; id?: string }[], options: { legacyTransaction?: boolean } = {}): StoredEvent[] {
    return this.commit(
      stream,
      events.map((e) => ({
        id: e.id ?? randomUUID(),
        type: e.type,
        contentType: 'application/json',
        data: Buffer.from(JSON.stringify(e.data)),
        customMetadata: new Uint8Array(),
      })),
      options.legacyTransaction === true,
    );
  }

  appendSystemEvent(stream: string, type: string): StoredEvent {
    return this.commit(stream, [{ id: randomUUID(), type, contentType: 'application/json', data: Buffer.from('{}'), customMetadata: new Uint8Array() }])[0]!;
  }

  // ---------------------------------------------------------------- append

  /** Classic client-streaming Append: options first, then one proposed message per request. */
  private append(call: grpc.ServerReadableStream<AppendReq, AppendResp>, cb: grpc.sendUnaryData<AppendResp>): void {
    this.calls.append++;
    let options: InstanceType<StreamsPb['AppendReq']['Options']> | undefined;
    const proposed: Proposal[] = [];
    call.on('data', (req: AppendReq) => guarded(call, () => {
      if (req.hasOptions()) options = req.getOptions();
      else if (req.hasProposedMessage()) proposed.push(proposal(req.getProposedMessage()!));
    }));
    call.on('error', () => undefined); // the client cut the call off: nothing to answer
    call.on('end', () => guarded(call, () => {
      if (!options) return cb({ code: grpc.status.INVALID_ARGUMENT, details: 'append without options' });
      const refusal = this.takeRefusal();
      if (refusal) return cb(REFUSALS[refusal].classic);
      if (this.leaderNode && this.requiresLeader(call)) return cb(this.notLeader());
      const expected: Expected = options.hasRevision()
        ? { kind: 'revision', revision: Number(options.getRevision()) }
        : options.hasNoStream()
          ? { kind: 'no_stream' }
          : options.hasStreamExists()
            ? { kind: 'stream_exists' }
            : { kind: 'any' };
      const decision = this.decider.decideAppend(streamNameOf(options.getStreamIdentifier()), expected, proposed);
      if (this.crashed(decision)) return;
      const resp = new pb.AppendResp();
      if (decision.ok) {
        const ok = new pb.AppendResp.Success();
        if (decision.revision < 0) ok.setNoStream(new shared.Empty());
        else ok.setCurrentRevision(String(decision.revision));
        const at = this.answerPosition(decision);
        if (at) ok.setPosition(new pb.AppendResp.Position().setCommitPosition(String(at.commit)).setPreparePosition(String(at.prepare)));
        else ok.setNoPosition(new shared.Empty());
        return cb(null, resp.setSuccess(ok));
      }
      const w = new pb.AppendResp.WrongExpectedVersion();
      if (decision.current < 0) w.setCurrentNoStream(new shared.Empty());
      else w.setCurrentRevision(String(decision.current));
      if (expected.kind === 'revision') w.setExpectedRevision(String(expected.revision));
      else if (expected.kind === 'no_stream') w.setExpectedNoStream(new shared.Empty());
      else if (expected.kind === 'stream_exists') w.setExpectedStreamExists(new shared.Empty());
      else w.setExpectedAny(new shared.Empty());
      cb(null, resp.setWrongExpectedVersion(w));
    }));
  }

  /**
   * BatchAppend (what the client uses when ServerFeatures advertises it, as 21.10+ servers do): one long-lived bidi
   * call; each append is a correlation id whose requests carry options first and end with is_final; conflicts come
   * back as a google.rpc.Status with a packed event_store.client.WrongExpectedVersion.
   */
  private batchAppend(call: grpc.ServerDuplexStream<BatchAppendReq, BatchAppendResp>): void {
    const pending = new Map<string, { options?: InstanceType<StreamsPb['BatchAppendReq']['Options']>; proposed: Proposal[] }>();
    call.on('error', () => undefined); // the client cut the call off: nothing to answer
    call.on('end', () => call.end());
    call.on('data', (req: BatchAppendReq) => guarded(call, () => {
      const correlation = req.getCorrelationId()!;
      const key = correlation.getString();
      const entry = pending.get(key) ?? { proposed: [] };
      pending.set(key, entry);
      if (req.hasOptions()) entry.options = req.getOptions();
      for (const m of req.getProposedMessagesList()) entry.proposed.push(proposal(m));
      if (!req.getIsFinal()) return;
      pending.delete(key);
      this.calls.batchAppend++;
      const o = entry.options;
      if (!o) return call.destroy(new Error('batch append without options'));
      // 26.x: a follower asked for the leader throws LeaderInfo inside the write's callback, which completes the whole
      // call with it (Streams.BatchAppend.cs): every append pending on the call fails with NotLeader.
      if (this.leaderNode && this.requiresLeader(call)) return call.destroy(this.notLeader());
      const refusal = this.takeRefusal();
      if (refusal) {
        // NotHandled: a Status with only a message and empty details; the client cannot map it to an error class.
        const details = new Any();
        details.pack(new Empty().serializeBinary(), 'google.protobuf.Empty');
        const resp = new pb.BatchAppendResp().setCorrelationId(correlation).setStreamIdentifier(o.getStreamIdentifier());
        call.write(resp.setError(new statusPb.Status().setMessage(REFUSALS[refusal].batch).setDetails(details)));
        return;
      }
      const expected: Expected = o.hasStreamPosition()
        ? { kind: 'revision', revision: Number(o.getStreamPosition()) }
        : o.hasNoStream()
          ? { kind: 'no_stream' }
          : o.hasStreamExists()
            ? { kind: 'stream_exists' }
            : { kind: 'any' };
      const decision = this.decider.decideAppend(streamNameOf(o.getStreamIdentifier()), expected, entry.proposed);
      if (this.crashed(decision)) return;
      const resp = new pb.BatchAppendResp().setCorrelationId(correlation).setStreamIdentifier(o.getStreamIdentifier());
      if (expected.kind === 'revision') resp.setStreamPosition(String(expected.revision));
      else if (expected.kind === 'no_stream') resp.setNoStream(new Empty());
      else if (expected.kind === 'stream_exists') resp.setStreamExists(new Empty());
      else resp.setAny(new Empty());
      if (decision.ok) {
        const ok = new pb.BatchAppendResp.Success();
        if (decision.revision < 0) ok.setNoStream(new Empty());
        else ok.setCurrentRevision(String(decision.revision));
        const at = this.answerPosition(decision);
        if (at) ok.setPosition(new shared.AllStreamPosition().setCommitPosition(String(at.commit)).setPreparePosition(String(at.prepare)));
        else ok.setNoPosition(new Empty());
        resp.setSuccess(ok);
      } else {
        const w = new shared.WrongExpectedVersion();
        if (decision.current < 0) w.setCurrentNoStream(new Empty());
        else w.setCurrentStreamRevision(String(decision.current));
        if (expected.kind === 'revision') w.setExpectedStreamPosition(String(expected.revision));
        else if (expected.kind === 'no_stream') w.setExpectedNoStream(new Empty());
        else if (expected.kind === 'stream_exists') w.setExpectedStreamExists(new Empty());
        else w.setExpectedAny(new Empty());
        const details = new Any();
        details.pack(w.serializeBinary(), 'event_store.client.WrongExpectedVersion');
        resp.setError(new statusPb.Status().setCode(grpc.status.FAILED_PRECONDITION as never).setMessage('WrongExpectedVersion').setDetails(details));
      }
      call.write(resp);
    }));
  }

  private getSupportedMethods(_call: unknown, cb: grpc.sendUnaryData<InstanceType<FeaturesPb['SupportedMethods']>>): void {
    this.calls.serverFeatures++; // once per client channel: counts (re)connections
    if (this.starting) return cb(NOT_READY_YET);
    const method = (name: string) => new featuresPb.SupportedMethod().setServiceName('event_store.client.streams.Streams').setMethodName(name);
    const methods = ['Read', 'Append', 'BatchAppend'].map(method);
    cb(null, new featuresPb.SupportedMethods().setEventStoreServerVersion('fake-24.10.0').setMethodsList(methods));
  }

  /** The crash-after-commit fault: the append is durable, the reply never leaves. */
  private crashed(decision: Decision): boolean {
    if (!decision.ok || !decision.wrote) return false;
    if (this.silentAfterCommits > 0) {
      this.silentAfterCommits--;
      return true;
    }
    if (this.crashAfterCommits <= 0) return false;
    this.crashAfterCommits--;
    void this.stop();
    return true;
  }

  /** Revision checks and id idempotency, independent of the wire format. */
  private decideAppend(name: string, expected: Expected, proposed: Proposal[]): Decision {
    const existing = this.streams.get(name) ?? [];
    const current = existing.length - 1; // -1: no stream
    const ids = proposed.map((m) => m.id);
    const wrong = (): Decision => ({ ok: false, current });
    /** Already written at `from`? all ids match: idempotent; some: corrupted idempotency (a conflict); none: not a retry. */
    const idempotency = (from: number): 'all' | 'some' | 'none' => {
      let matched = 0;
      for (let i = 0; i < ids.length; i++) if (existing[from + i]?.id === ids[i]) matched++;
      return matched === 0 ? 'none' : matched === ids.length ? 'all' : 'some';
    };
    // The answer carries the last event's position (WriteEventsCompleted: CommitPosition of the write's last record).
    const report = (events: StoredEvent[]): Pos | undefined => (events.length === 0 ? undefined : posOf(events.at(-1)!));
    const already = (lastIndex: number): Decision => ({
      ok: true,
      wrote: false,
      revision: lastIndex,
      report: report(existing.slice(lastIndex - ids.length + 1, lastIndex + 1)),
    });
    const commitNew = (): Decision => {
      const written = this.commit(name, proposed);
      return { ok: true, wrote: true, revision: current + written.length, report: report(written) };
    };

    if (ids.length === 0) return { ok: true, wrote: false, revision: current, report: undefined };
    if (expected.kind === 'revision' || expected.kind === 'no_stream') {
      const at = expected.kind === 'no_stream' ? -1 : expected.revision;
      if (at === current) return commitNew();
      if (at < current && idempotency(at + 1) === 'all') return already(at + ids.length);
      return wrong();
    }
    if (expected.kind === 'stream_exists' && current < 0) return wrong();
    // any / stream_exists: a retry is recognised only while its first id is in the cache of recent ids
    const cached = this.idCache.get(ids[0]!);
    if (!cached || cached.stream !== name) return commitNew();
    return idempotency(cached.index) === 'all' ? already(cached.index + ids.length - 1) : wrong();
  }

  private remember(e: StoredEvent): void {
    this.idCache.set(e.id, { stream: e.stream, index: e.revision });
    if (this.idCache.size > this.idCacheSize) this.idCache.delete(this.idCache.keys().next().value!);
  }

  private commit(stream: string, events: Proposal[], legacyTransaction = false): StoredEvent[] {
    const store = this.storage;
    const list = store.streams.get(stream) ?? [];
    store.streams.set(stream, list);
    const created = BigInt(Date.now()) * TICKS_PER_MS;
    // Records take room in the transaction file: positions are byte offsets, not a dense sequence.
    const prepares = events.map((e) => {
      const position = store.nextPosition;
      store.nextPosition += 96n + BigInt(e.data.length + e.customMetadata.length + stream.length + e.type.length);
      return position;
    });
    const commitRecord = store.nextPosition;
    if (legacyTransaction) store.nextPosition += 40n;
    const written = events.map((e, i) => {
      const prepare = prepares[i]!;
      const commit = legacyTransaction ? commitRecord : prepare;
      const stored: StoredEvent = { ...e, stream, revision: list.length, created, commit, prepare, logIndex: store.log.length };
      list.push(stored);
      store.log.push(stored);
      this.remember(stored);
      return stored;
    });
    this.wake();
    return written;
  }

  // ---------------------------------------------------------------- read

  private async read(call: grpc.ServerWritableStream<ReadReq, ReadResp>): Promise<void> {
    const options = call.request.getOptions();
    if (!options) {
      call.destroy({ name: 'InvalidArgument', message: 'read without options', code: grpc.status.INVALID_ARGUMENT } as never);
      return;
    }
    if (this.leaderNode && this.requiresLeader(call)) {
      call.emit('error', this.notLeader());
      return;
    }
    const predicate = this.filterOf(options);
    if (options.hasSubscription()) return this.subscribe(call, options, predicate);
    this.calls.read++;
    const count = Number(BigInt(options.getCount() || '0'));
    const backwards = options.getReadDirection() === 1;
    let selected: StoredEvent[];
    // A lagging follower's reads see the log only as far as it has replicated.
    const seen = this.replicated ?? this.log.length;
    const log = seen < this.log.length ? this.log.slice(0, seen) : this.log;

    if (options.hasStream()) {
      const so = options.getStream()!;
      const name = Buffer.from(so.getStreamIdentifier()!.getStreamName_asU8()).toString('utf8');
      const all = this.streams.get(name);
      const events = all && seen < this.log.length ? all.filter((e) => e.logIndex < seen) : all;
      if (!events?.length) {
        const nf = new pb.ReadResp.StreamNotFound().setStreamIdentifier(so.getStreamIdentifier());
        call.write(new pb.ReadResp().setStreamNotFound(nf));
        call.end();
        return;
      }
      if (!backwards) {
        const from = so.hasStart() ? 0 : so.hasEnd() ? events.length : Number(so.getRevision());
        selected = events.slice(from, from + count);
      } else {
        const from = so.hasStart() ? 0 : so.hasEnd() ? events.length - 1 : Math.min(Number(so.getRevision()), events.length - 1);
        selected = events.slice(Math.max(0, from - count + 1), from + 1).reverse();
      }
    } else {
      const ao = options.getAll()!;
      const p = ao.getPosition();
      const at = p ? { commit: BigInt(p.getCommitPosition()), prepare: BigInt(p.getPreparePosition()) } : undefined;
      selected = [];
      if (!backwards) {
        const start = ao.hasEnd() ? log.length : at ? log.findIndex((e) => cmp(posOf(e), at) >= 0) : 0;
        for (let i = start < 0 ? log.length : start; i < log.length && selected.length < count; i++) {
          if (predicate(log[i]!)) selected.push(log[i]!);
        }
      } else {
        let i = ao.hasStart() ? -1 : log.length - 1;
        if (at) while (i >= 0 && cmp(posOf(log[i]!), at) >= 0) i--; // exclusive, like reading the record before it
        for (; i >= 0 && selected.length < count; i--) if (predicate(log[i]!)) selected.push(log[i]!);
      }
    }
    for (const e of selected) if (!(await this.send(call, this.eventResp(e)))) return;
    call.end();
  }

  private filterOf(options: ReadOptions): Predicate {
    if (!options.hasFilter()) return () => true;
    const f = options.getFilter()!;
    const expr = f.hasStreamIdentifier() ? f.getStreamIdentifier()! : f.getEventType()!;
    const field = f.hasStreamIdentifier() ? (e: StoredEvent) => e.stream : (e: StoredEvent) => e.type;
    const prefixes = expr.getPrefixList();
    if (prefixes.length) return (e) => prefixes.some((p) => field(e).startsWith(p));
    const regex = new RegExp(expr.getRegex());
    return (e) => regex.test(field(e));
  }

  private async subscribe(call: grpc.ServerWritableStream<ReadReq, ReadResp>, options: ReadOptions, predicate: Predicate): Promise<void> {
    this.calls.subscribe++;
    if (this.refuseSubscriptions) {
      // the server's error shape: a status code plus the `exception` trailer the client maps to its error classes
      const { code, exception, details } = this.refuseSubscriptions;
      const metadata = new grpc.Metadata();
      if (exception) metadata.set('exception', exception);
      call.emit('error', { code, details: details ?? exception ?? '', metadata });
      return;
    }
    const sub: { closed: boolean; call?: grpc.ServerWritableStream<ReadReq, ReadResp> } = { closed: false, call };
    this.subscriptions.add(sub);
    const end = () => {
      sub.closed = true;
      this.subscriptions.delete(sub);
      this.wake();
    };
    call.on('cancelled', end);
    call.on('close', end);
    call.on('error', end);

    let cursor: number;
    let match: Predicate;
    if (options.hasStream()) {
      const so = options.getStream()!;
      const name = Buffer.from(so.getStreamIdentifier()!.getStreamName_asU8()).toString('utf8');
      const after = so.hasStart() ? -1 : so.hasEnd() ? (this.streams.get(name)?.length ?? 0) - 1 : Number(so.getRevision());
      match = (e) => e.stream === name && e.revision > after;
      cursor = 0;
    } else {
      const ao = options.getAll()!;
      const p = ao.getPosition();
      const at = p ? { commit: BigInt(p.getCommitPosition()), prepare: BigInt(p.getPreparePosition()) } : undefined;
      match = predicate;
      cursor = ao.hasEnd() ? this.log.length : at ? this.log.findIndex((e) => cmp(posOf(e), at) > 0) : 0; // exclusive
      if (cursor < 0) cursor = this.log.length;
    }
    const filter = options.hasFilter() ? options.getFilter()! : undefined;
    const window = filter?.hasMax() ? filter.getMax() : DEFAULT_SEARCH_WINDOW;
    const checkpointEvery = filter ? Math.max(1, filter.getCheckpointintervalmultiplier() || 1) * window : 0;
    let scanned = 0;

    const confirmation = new pb.ReadResp.SubscriptionConfirmation().setSubscriptionId(randomUUID());
    if (!(await this.send(call, new pb.ReadResp().setConfirmation(confirmation), sub))) return end();
    let caughtUp = false;
    while (!sub.closed) {
      while (cursor < this.log.length && !sub.closed) {
        const e = this.log[cursor++]!;
        if (match(e)) {
          if (!(await this.send(call, this.eventResp(e), sub))) return end();
          this.subscriptionEventsSent++;
        }
        if (checkpointEvery && ++scanned % checkpointEvery === 0) {
          const cp = new pb.ReadResp.Checkpoint().setCommitPosition(String(e.commit)).setPreparePosition(String(e.prepare));
          if (!(await this.send(call, new pb.ReadResp().setCheckpoint(cp), sub))) return end();
        }
      }
      if (sub.closed) break;
      if (!caughtUp) {
        caughtUp = true;
        if (!(await this.send(call, new pb.ReadResp().setCaughtUp(new pb.ReadResp.CaughtUp()), sub))) return end();
        continue;
      }
      await new Promise<void>((resolve) => {
        const wake = () => {
          this.storage.wakers.delete(wake);
          resolve();
        };
        this.storage.wakers.add(wake);
        if (cursor < this.log.length || sub.closed) wake();
      });
    }
    end();
  }


  /** Writes under gRPC flow control: waits for 'drain' when the call's buffer is full. */
  private async send(call: grpc.ServerWritableStream<ReadReq, ReadResp>, msg: ReadResp, sub?: { closed: boolean }): Promise<boolean> {
    if (sub?.closed || call.cancelled || call.destroyed) return false;
    if (call.write(msg)) return true;
    this.heldByFlowControl++;
    await new Promise<void>((resolve) => {
      const done = () => {
        call.off('drain', done);
        call.off('cancelled', done);
        call.off('close', done);
        resolve();
      };
      call.on('drain', done);
      call.on('cancelled', done);
      call.on('close', done);
    });
    this.heldByFlowControl--;
    return !(sub?.closed || call.cancelled || call.destroyed);
  }

  private eventResp(e: StoredEvent): ReadResp {
    const rec = new pb.ReadResp.ReadEvent.RecordedEvent()
      .setId(new shared.UUID().setString(e.id))
      .setStreamIdentifier(new shared.StreamIdentifier().setStreamName(Buffer.from(e.stream, 'utf8')))
      .setStreamRevision(String(e.revision))
      .setPreparePosition(String(e.prepare))
      .setCommitPosition(String(e.commit))
      .setData(e.data)
      .setCustomMetadata(e.customMetadata);
    const m = rec.getMetadataMap();
    m.set('type', e.type);
    m.set('content-type', e.contentType);
    m.set('created', String(e.created));
    const read = new pb.ReadResp.ReadEvent().setEvent(rec).setCommitPosition(String(e.commit));
    return new pb.ReadResp().setEvent(read);
  }
}

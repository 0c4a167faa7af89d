// An in-process gRPC server that speaks the EventStoreDB Streams protocol (event_store.client.streams.Streams) to the
// real @eventstore/db-client, built from the service definitions and protobuf classes that client package ships.
//
// What it does: ServerFeatures advertising Read/Append/BatchAppend, so the client appends over BatchAppend as it does
// against a real 21.10+ server (mode 'classic' leaves ServerFeatures out: the client then gets UNIMPLEMENTED and uses
// the client-streaming Append; both paths are tested); expected-revision checks (no_stream, any, stream_exists, exact)
// and event-id idempotency (the same ids at the same place answer success with the original result; a partial match is
// a wrong-expected-version, like the server's "corrupted idempotency"); Read of one stream and of $all, forwards and
// backwards, with maxCount and StreamNotFound; $all reads forwards from a position are inclusive, backwards exclusive;
// subscriptions to $all and to one stream (from start, from an exclusive position/revision, or from end) with
// confirmation, history, caughtUp, then live events, honouring gRPC flow control; server-side filters on stream name
// or event type (prefixes or a regex) with checkpoint messages every `checkpointIntervalMultiplier * 32` scanned
// events; positions that grow by a pseudo record size (not dense; per event or per transaction, see `positions`); a
// few `$`-system events in the log like a fresh server has; `created` as .NET ticks since the Unix epoch; stop/restart
// on the same port with the data kept; fault hooks: stop right after an append commits and before it answers, leave a
// committed append unanswered, end subscriptions cleanly, refuse subscriptions with a given error.
//
// What it does NOT imitate (see docs/eventstoredb.md): the other ServerFeatures entries (persistent subscriptions,
// projections...), Delete/Tombstone and soft-deleted streams, stream metadata ($maxCount, $tb, ACLs), authentication
// and TLS, projections and link events ($>, resolveLinkTos), persistent subscriptions, Gossip/cluster discovery,
// NotLeader redirects, the 'fell behind' signal and the dropping of subscribers whose live queue overflows (here a slow
// subscriber just waits under flow control), max append size, BatchAppend deadlines and any deadline enforcement,
// durability (data lives in memory), the idempotency cache limits of `any`/`stream_exists` appends (here the whole
// stream is searched), exact checkpoint positions, and .NET regex dialect differences (filters use JavaScript RegExp).
// Positions exist in two variants (constructor `positions`) since which one a server version uses is not pinned down.
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
}

type Predicate = (e: StoredEvent) => boolean;
type Proposal = Omit<StoredEvent, 'stream' | 'revision' | 'created' | 'commit' | 'prepare'>;
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
const DEFAULT_SEARCH_WINDOW = 32;

function posOf(e: StoredEvent) {
  return { commit: e.commit, prepare: e.prepare };
}
function cmp(a: { commit: bigint; prepare: bigint }, b: { commit: bigint; prepare: bigint }): number {
  if (a.commit !== b.commit) return a.commit < b.commit ? -1 : 1;
  return a.prepare === b.prepare ? 0 : a.prepare < b.prepare ? -1 : 1;
}

export class FakeEsdbServer {
  /** the whole log in commit order; kept across stop/restart */
  readonly log: StoredEvent[] = [];
  private readonly streams = new Map<string, StoredEvent[]>();
  private nextPosition = 1_024n;
  private server: grpc.Server | undefined;
  private port = 0;
  private readonly wakers = new Set<() => void>();
  private readonly subscriptions = new Set<{ closed: boolean; call?: grpc.ServerWritableStream<ReadReq, ReadResp> }>();
  private refuseSubscriptions: { code: grpc.status; exception: string } | undefined;
  private crashAfterCommits = 0;
  private silentAfterCommits = 0;
  /** calls received per method, for tests */
  readonly calls = { append: 0, batchAppend: 0, read: 0, subscribe: 0 };
  /** events written to subscription calls (flow-control checks) */
  subscriptionEventsSent = 0;

  /** 'batch': ServerFeatures advertises BatchAppend and the client uses it (like a real 21.10+ server); 'classic': Append. */
  /**
   * positions 'event': each event its own commit = prepare, appends answered with the last event's position.
   * 'transaction': like a classic ESDB transaction, the events of one append share the commit position of a commit
   * record written after them (prepare positions differ), and appends are answered with (commit, first prepare), the
   * transaction's position rather than the last event's. Which one a given server version does is not pinned down here;
   * the adapter must be right under both.
   */
  constructor(
    readonly appendPath: 'batch' | 'classic' = 'batch',
    readonly positions: 'event' | 'transaction' = 'event',
  ) {
    // A fresh server already has system events in $all; they must never reach the ledger.
    this.appendSystemEvent('$$$stats-127.0.0.1:2113', '$metadata');
    this.appendSystemEvent('$stats-127.0.0.1:2113', '$statsCollected');
  }

  get connectionString(): string {
    return `esdb://127.0.0.1:${this.port}?tls=false`;
  }

  /** Active subscription calls on the server side (leak checks). */
  activeSubscriptions(): number {
    return this.subscriptions.size;
  }

  async start(port = 0): Promise<void> {
    const server = new grpc.Server();
    server.addService(StreamsService, {
      read: (call: grpc.ServerWritableStream<ReadReq, ReadResp>) => void this.read(call),
      append: (call: grpc.ServerReadableStream<AppendReq, AppendResp>, cb: grpc.sendUnaryData<AppendResp>) => this.append(call, cb),
      delete: (_call: unknown, cb: grpc.sendUnaryData<never>) => cb({ code: grpc.status.UNIMPLEMENTED, details: 'fake: delete' }),
      tombstone: (_call: unknown, cb: grpc.sendUnaryData<never>) => cb({ code: grpc.status.UNIMPLEMENTED, details: 'fake: tombstone' }),
      batchAppend: (call: grpc.ServerDuplexStream<BatchAppendReq, BatchAppendResp>) =>
        this.appendPath === 'batch' ? this.batchAppend(call) : call.destroy(Object.assign(new Error('fake: classic mode'), { code: grpc.status.UNIMPLEMENTED })),
    });
    // Advertising BatchAppend is what makes the client use it; without the service the client falls back to Append.
    if (this.appendPath === 'batch') server.addService(ServerFeaturesService, { getSupportedMethods: this.getSupportedMethods.bind(this) });
    this.port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    this.server = server;
  }

  /** Abrupt stop (like a crash or a network cut): open calls fail, data stays. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
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

  /** Refuses new subscriptions with this gRPC status and ESDB `exception` trailer (undefined: accept again). */
  refuseSubscriptionsWith(error: { code: grpc.status; exception: string } | undefined): void {
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

  /** Writes JSON events directly, as another client would (works while the gRPC server is stopped). */
  write(stream: string, events: { type: string; data: unknown; id?: string }[]): StoredEvent[] {
    return this.commit(
      stream,
      events.map((e) => ({
        id: e.id ?? randomUUID(),
        type: e.type,
        contentType: 'application/json',
        data: Buffer.from(JSON.stringify(e.data)),
        customMetadata: new Uint8Array(),
      })),
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
    call.on('data', (req: AppendReq) => {
      if (req.hasOptions()) options = req.getOptions();
      else if (req.hasProposedMessage()) proposed.push(proposal(req.getProposedMessage()!));
    });
    call.on('error', () => undefined);
    call.on('end', () => {
      if (!options) return cb({ code: grpc.status.INVALID_ARGUMENT, details: 'append without options' });
      const expected: Expected = options.hasRevision()
        ? { kind: 'revision', revision: Number(options.getRevision()) }
        : options.hasNoStream()
          ? { kind: 'no_stream' }
          : options.hasStreamExists()
            ? { kind: 'stream_exists' }
            : { kind: 'any' };
      const decision = this.decideAppend(streamNameOf(options.getStreamIdentifier()), expected, proposed);
      if (this.crashed(decision)) return;
      const resp = new pb.AppendResp();
      if (decision.ok) {
        const ok = new pb.AppendResp.Success();
        if (decision.revision < 0) ok.setNoStream(new shared.Empty());
        else ok.setCurrentRevision(String(decision.revision));
        if (decision.report) ok.setPosition(new pb.AppendResp.Position().setCommitPosition(String(decision.report.commit)).setPreparePosition(String(decision.report.prepare)));
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
    });
  }

  /**
   * BatchAppend (what the client uses when ServerFeatures advertises it, as 21.10+ servers do): one long-lived bidi
   * call; each append is a correlation id whose requests carry options first and end with is_final; conflicts come
   * back as a google.rpc.Status with a packed event_store.client.WrongExpectedVersion.
   */
  private batchAppend(call: grpc.ServerDuplexStream<BatchAppendReq, BatchAppendResp>): void {
    const pending = new Map<string, { options?: InstanceType<StreamsPb['BatchAppendReq']['Options']>; proposed: Proposal[] }>();
    call.on('error', () => undefined);
    call.on('end', () => call.end());
    call.on('data', (req: BatchAppendReq) => {
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
      const expected: Expected = o.hasStreamPosition()
        ? { kind: 'revision', revision: Number(o.getStreamPosition()) }
        : o.hasNoStream()
          ? { kind: 'no_stream' }
          : o.hasStreamExists()
            ? { kind: 'stream_exists' }
            : { kind: 'any' };
      const decision = this.decideAppend(streamNameOf(o.getStreamIdentifier()), expected, entry.proposed);
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
        if (decision.report) ok.setPosition(new shared.AllStreamPosition().setCommitPosition(String(decision.report.commit)).setPreparePosition(String(decision.report.prepare)));
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
    });
  }

  private getSupportedMethods(_call: unknown, cb: grpc.sendUnaryData<InstanceType<FeaturesPb['SupportedMethods']>>): void {
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
    const report = (events: StoredEvent[]): Pos | undefined =>
      events.length === 0 ? undefined : this.positions === 'transaction' ? { commit: events[0]!.commit, prepare: events[0]!.prepare } : posOf(events.at(-1)!);
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
    // any / stream_exists: a retry is recognised by its first id anywhere in the stream
    const at = existing.findIndex((e) => e.id === ids[0]);
    if (at < 0) return commitNew();
    return idempotency(at) === 'all' ? already(at + ids.length - 1) : wrong();
  }

  private commit(stream: string, events: Proposal[]): StoredEvent[] {
    const list = this.streams.get(stream) ?? [];
    this.streams.set(stream, list);
    const created = BigInt(Date.now()) * TICKS_PER_MS;
    // Records take room in the transaction file: positions are byte offsets, not a dense sequence.
    const prepares = events.map((e) => {
      const position = this.nextPosition;
      this.nextPosition += 96n + BigInt(e.data.length + e.customMetadata.length + stream.length + e.type.length);
      return position;
    });
    const commitRecord = this.nextPosition;
    if (this.positions === 'transaction') this.nextPosition += 40n;
    const written = events.map((e, i) => {
      const prepare = prepares[i]!;
      const commit = this.positions === 'transaction' ? commitRecord : prepare;
      const stored: StoredEvent = { ...e, stream, revision: list.length, created, commit, prepare };
      list.push(stored);
      this.log.push(stored);
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
    const predicate = this.filterOf(options);
    if (options.hasSubscription()) return this.subscribe(call, options, predicate);
    this.calls.read++;
    const count = Number(BigInt(options.getCount() || '0'));
    const backwards = options.getReadDirection() === 1;
    let selected: StoredEvent[];

    if (options.hasStream()) {
      const so = options.getStream()!;
      const name = Buffer.from(so.getStreamIdentifier()!.getStreamName_asU8()).toString('utf8');
      const events = this.streams.get(name);
      if (!events) {
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
        const start = ao.hasEnd() ? this.log.length : at ? this.log.findIndex((e) => cmp(posOf(e), at) >= 0) : 0;
        for (let i = start < 0 ? this.log.length : start; i < this.log.length && selected.length < count; i++) {
          if (predicate(this.log[i]!)) selected.push(this.log[i]!);
        }
      } else {
        let i = ao.hasStart() ? -1 : this.log.length - 1;
        if (at) while (i >= 0 && cmp(posOf(this.log[i]!), at) >= 0) i--; // exclusive, like reading the record before it
        for (; i >= 0 && selected.length < count; i--) if (predicate(this.log[i]!)) selected.push(this.log[i]!);
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
      const metadata = new grpc.Metadata();
      metadata.set('exception', this.refuseSubscriptions.exception);
      call.emit('error', { code: this.refuseSubscriptions.code, details: this.refuseSubscriptions.exception, metadata });
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
          this.wakers.delete(wake);
          resolve();
        };
        this.wakers.add(wake);
        if (cursor < this.log.length || sub.closed) wake();
      });
    }
    end();
  }

  private wake(): void {
    for (const w of [...this.wakers]) w();
  }

  /** Writes under gRPC flow control: waits for 'drain' when the call's buffer is full. */
  private async send(call: grpc.ServerWritableStream<ReadReq, ReadResp>, msg: ReadResp, sub?: { closed: boolean }): Promise<boolean> {
    if (sub?.closed || call.cancelled || call.destroyed) return false;
    if (call.write(msg)) return true;
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

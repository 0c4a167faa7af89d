// Model-based property suite of the ledger (issue 2, item 6): random histories of grants, revocations, requests,
// duplicate deliveries, upstream outcomes, crashes between any two appends, two workers racing (interleaved by the
// fast-check scheduler), clock jumps and recovery passes drive the REAL saga over the REAL event store. After every
// step invariants 1-2 hold (LedgerAuditor); at quiescence invariants 3-4 hold and balances match a model.
//
// Billing modes (issue 13): the store's facts (absorb/resell, a subscription that allows overage or not), billing
// intents, uninstall and reinstall change while generations are in flight; every generation is charged to the pool the
// rule named when it was accepted and to no other, an overage never moves a credit, and a resell task without a shopper
// is never charged.
// Credits also arrive through the platform bridge (src/bridge): grants and store -> shopper transfers recorded in an inbox and
// applied by the real handlers, the mark after the ledger append, so a crash between them re-applies the command.
//
// Runs: WEARON_PROPERTY_RUNS (default 100). Replay a failure with the printed seed, path and replayPath:
// WEARON_PROPERTY_SEED, WEARON_PROPERTY_PATH, WEARON_PROPERTY_REPLAY_PATH. Store: LEDGER_STORE=sqlite (default) | esdb | pg.
// `npm run test:property -- --runs 10000`, `npm run test:property -- --seed S --path P --replay-path R`.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { openSqliteEventStore } from '../../src/adapters/eventstore/sqlite/sqliteEventStore.ts';
import { AggregateRepository } from '../../src/app/aggregates.ts';
import { grantCredits, revokeCredits, CreditCommandRejected } from '../../src/app/credits.ts';
import { recordBillingIntent, recordStoreBilling, reinstallStore, uninstallStore } from '../../src/app/stores.ts';
import { PendingIndex } from '../../src/app/pending.ts';
import type { EventStore, RecordedEvent } from '../../src/app/ports/eventStore.ts';
import { readLog } from '../../src/app/log.ts';
import { GenerationSaga, type RequestInput } from '../../src/app/saga.ts';
import { SETTLED_RETENTION_MS, foldAccount } from '../../src/domain/account.ts';
import type { AccountEvent, GenerationEvent, GenerationRequested, IntentPool, LedgerEvent } from '../../src/domain/events.ts';
import { foldGeneration, isTerminal } from '../../src/domain/generation.ts';
import { LedgerAuditor } from '../../src/domain/invariants.ts';
import { accountIdOf, accountStream, generationStream, parseAccountId, sessionIdFromStream, storeStream, transferStream } from '../../src/domain/streams.ts';
import { handlerOf, type InboxOutcome } from '../../src/bridge/commands.ts';
import { decodeTransferEvent } from '../../src/domain/decode.ts';
import { foldTransfer } from '../support/transfers.ts';
import { silentLogger } from '../../src/logger.ts';
import { Crash, CrashingStore, type CrashMode, type Gate } from '../support/crashingStore.ts';
import { FAILURE_CODE, MemoryResultStore, ScriptedGenerator, StaticInputImages, type UpstreamOutcome } from '../support/pipelineDoubles.ts';
import { scaled } from '../support/deadlines.ts';

const RUNS = Number(process.env.WEARON_PROPERTY_RUNS ?? 100);
const SEED = process.env.WEARON_PROPERTY_SEED ? Number(process.env.WEARON_PROPERTY_SEED) : undefined;
const PATH = process.env.WEARON_PROPERTY_PATH || undefined;
/** fc.commands' own replay coordinates (the `replayPath="..."` comment of a counterexample) */
const REPLAY_PATH = process.env.WEARON_PROPERTY_REPLAY_PATH || undefined;
const STORE = process.env.LEDGER_STORE ?? 'sqlite';
/**
 * The SQLite store commits inline, on a writer thread, or 'auto' (inline until commits are slow, then the thread; here
 * 'handover' forces that switch after the first commit). Starting a thread costs ~0.3 s per store opened, so most
 * runs commit inline (same transaction code), one in ten on the thread and one in ten hand over mid-run;
 * WEARON_PROPERTY_SQLITE_WRITER forces one.
 */
type SqliteWriter = 'inline' | 'thread' | 'handover';
const WRITER = process.env.WEARON_PROPERTY_SQLITE_WRITER as SqliteWriter | undefined;
const writerArb: fc.Arbitrary<SqliteWriter> = WRITER
  ? fc.constant(WRITER)
  : fc.oneof(
      { weight: 8, arbitrary: fc.constant('inline' as const) },
      { weight: 1, arbitrary: fc.constant('thread' as const) },
      { weight: 1, arbitrary: fc.constant('handover' as const) },
    );
const writerOptions = (w: SqliteWriter) => (w === 'handover' ? { writer: 'auto' as const, slowCommitMs: 0, warmupCommits: 0 } : { writer: w });

const T0 = Date.parse('2026-03-01T12:00:00.000Z');
const LEASE_MS = 60_000;
const OPTIONS = { leaseMs: LEASE_MS, maxAttempts: 2, max429Retries: 1, signedUrlTtlSeconds: 300, leaseMarginMs: 1000 };
const WORKERS = 2;
const SESSIONS = 6;

// ---- stores -------------------------------------------------------------------------------------------------------

/** Opens (and reopens, after a crash) the store of one run. */
interface RunStore {
  open(): Promise<EventStore>;
  cleanup(): Promise<void>;
}
interface Backend {
  name: string;
  skip: string | null;
  start(): Promise<void>;
  stop(): Promise<void>;
  forRun(tag: string, writer: SqliteWriter): RunStore;
}

function sqliteBackend(): Backend {
  // tmpfs when there is one: fsync is then cheap, and the store is still a real file that survives a "crash".
  const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  let dir = '';
  return {
    name: 'sqlite',
    skip: null,
    async start() {
      dir = mkdtempSync(join(base, 'wearon-ledger-prop-'));
    },
    async stop() {
      rmSync(dir, { recursive: true, force: true });
    },
    forRun(tag, writer) {
      const file = join(dir, `${tag}.db`);
      return {
        open: async () => openSqliteEventStore({ path: file, ...writerOptions(writer) }),
        cleanup: async () => {
          for (const suffix of ['', '-wal', '-shm']) rmSync(file + suffix, { force: true });
        },
      };
    },
  };
}

async function esdbBackend(): Promise<Backend> {
  // The fake EventStoreDB server keeps its data across client reconnects, like a real one across a worker crash.
  // Runs are isolated by the run tag in every stream name.
  let fake: { connectionString: string; close(): Promise<void> } | null = null;
  let open: ((cs: string) => EventStore) | null = null;
  let skip: string | null = null;
  try {
    const fakeMod = await import('../support/fakeEsdb/index.ts');
    const esdbMod = await import('../../src/adapters/eventstore/esdb/esdbEventStore.ts');
    open = (connectionString) => esdbMod.openEsdbEventStore({ connectionString, logger: silentLogger() });
    return {
      name: 'esdb',
      get skip() {
        return skip;
      },
      async start() {
        try {
          fake = await fakeMod.startFakeEsdb();
        } catch (err) {
          skip = `fake ESDB did not start: ${(err as Error).message}`;
        }
      },
      async stop() {
        await fake?.close();
      },
      forRun: () => ({ open: async () => open!(fake!.connectionString), cleanup: async () => {} }),
    };
  } catch (err) {
    skip = `fake ESDB or the ESDB adapter could not be loaded: ${(err as Error).message}`;
    return { name: 'esdb', skip, start: async () => {}, stop: async () => {}, forRun: () => ({ open: async () => { throw new Error(skip!); }, cleanup: async () => {} }) };
  }
}

async function pgBackend(): Promise<Backend> {
  // One schema for the suite, emptied after each run (the recovery pass reads the whole log, which must be this run's
  // alone): a DELETE of a run's few rows costs a millisecond, a fresh schema's DDL and DROP a few hundred. Sessions
  // commit without waiting for the WAL flush (synchronous_commit=off via the connection's startup options): what the
  // property checks is the ledger's logic over real Postgres concurrency and visibility, which this does not change;
  // durability is the database's (the SQLite backend runs on tmpfs for the same reason).
  const { openPgEventStore } = await import('../../src/adapters/eventstore/postgres/pgEventStore.ts');
  const { dropSchema, uniqueSchema } = await import('../support/pgEventStore.ts');
  const { DATABASE_URL, postgresAvailable } = await import('../support/services.ts');
  const pg = (await import('pg')).default;
  const available = await postgresAvailable();
  const url = new URL(DATABASE_URL);
  url.searchParams.set('options', '-c synchronous_commit=off');
  const schema = uniqueSchema('prop');
  const open = () => openPgEventStore({ connectionString: url.toString(), schema, logger: silentLogger(), poolSize: 4 });
  const admin = new pg.Client({ connectionString: DATABASE_URL });
  return {
    name: 'pg',
    skip: available ? null : `PostgreSQL not reachable at ${DATABASE_URL}`,
    start: async () => {
      if (!available) return;
      await (await open()).close(); // migrates once
      await admin.connect();
    },
    stop: async () => {
      if (!available) return;
      await admin.end();
      await dropSchema(schema);
    },
    forRun: () => ({ open, cleanup: async () => void (await admin.query(`DELETE FROM ${schema}.events`)) }),
  };
}

const backend: Backend = STORE === 'esdb' ? await esdbBackend() : STORE === 'pg' ? await pgBackend() : sqliteBackend();

// ---- the world under test -----------------------------------------------------------------------------------------

let runCounter = 0;
/** What the runs exercised (printed at the end, so a run that explores nothing is visible). */
const stats: Record<string, number> = {};
const count = (key: string, n = 1) => (stats[key] = (stats[key] ?? 0) + n);

/** What the billing rule must decide for a session, from the model's store facts when it was first delivered. */
type ExpectedBilling = { refused: 'shopper_required' | 'store_uninstalled' } | { account: string; overage: 'billed' | 'fallback' | 'none' };

interface SessionModel {
  input: RequestInput;
  script: UpstreamOutcome[];
  billing: ExpectedBilling;
}

/** The store's billing facts as the model knows them (commands run one at a time, so this is what intake saw). */
interface StoreModel {
  mode: 'absorb' | 'resell' | null;
  overageAllowed: boolean;
  uninstalled: boolean;
  everUninstalled: boolean;
  /** requestId -> pool and when it was recorded (the store forgets intents after SETTLED_RETENTION_MS) */
  intents: Map<string, { pool: IntentPool; at: number }>;
}

/** A row of the bridge's inbox: it survives crashes (the platform's database); `outcome` is its mark. */
interface InboxEntry {
  id: string;
  type: 'grant' | 'transfer';
  payload: Record<string, unknown>;
  outcome?: InboxOutcome;
}

/**
 * One run: the real store behind a crash/scheduling wrapper, WORKERS sagas (each with its own repository, as separate
 * processes would have), a controlled clock, the outside-world doubles, and the model the test keeps.
 */
class Harness {
  now = T0;
  readonly accounts: string[];
  readonly generator: ScriptedGenerator;
  readonly results = new MemoryResultStore();
  readonly images = new StaticInputImages();
  store!: CrashingStore;
  workers: GenerationSaga[] = [];
  admin!: AggregateRepository;
  shutdown = new AbortController();
  crashes = 0;
  /** grant reference -> amount of the first grant issued with it (per account) */
  readonly grants = new Map<string, { account: string; amount: number }>();
  readonly revocations = new Set<string>();
  /** revocation reference -> every amount issued with it (per account) */
  readonly revocationAmounts = new Map<string, Set<number>>();
  readonly sessions = new Map<string, SessionModel>();
  readonly storeModel: StoreModel = { mode: null, overageAllowed: false, uninstalled: false, everUninstalled: false, intents: new Map() };
  get storeId(): string {
    return `${this.tag}s`;
  }
  /** the bridge's inbox, in id order; the transfer ids it carried -> the amount first asked */
  readonly inbox: InboxEntry[] = [];
  /** transfer id -> the amounts its commands asked; grant key (account/reference) of a bridged grant -> amounts asked.
   * Which one the ledger takes is the first applied (two workers may apply them in either order). */
  readonly transfers = new Map<string, number[]>();
  readonly bridgeGrants = new Map<string, { account: string; reference: string; amounts: number[] }>();
  /** the shopper pool transfers pay into */
  readonly shopper: string;
  /** operations interrupted by a crash that their caller retries (webhook grants, queue redelivery) */
  private retryAfterCrash: Array<() => Promise<unknown>> = [];
  log: string[] = [];

  constructor(
    readonly tag: string,
    private readonly runStore: RunStore,
    private readonly gate: Gate,
    private readonly waitFor: <T>(p: Promise<T>) => Promise<T>,
  ) {
    this.accounts = [`user:${this.tag}u`, `store:${this.storeId}`, accountIdOf(parseAccountId(`shopper:${this.storeId}:ann@example.com`))];
    this.shopper = `shopper:${this.tag}s.${'0'.repeat(32)}`;
    this.generator = new ScriptedGenerator({
      advancePastLease: () => (this.now += LEASE_MS + 1),
      requestShutdown: () => this.shutdown.abort(),
    });
  }

  get prefixes(): string[] {
    return [...this.accounts.map((a) => accountStream(a)), accountStream(this.shopper), generationStream(this.tag), storeStream(this.storeId), transferStream(this.tag)];
  }

  async boot(): Promise<void> {
    this.store = new CrashingStore(await this.runStore.open(), this.gate);
    const deps = { images: this.images, generator: this.generator, results: this.results, clock: () => this.now, logger: silentLogger(), options: OPTIONS };
    this.workers = Array.from(
      { length: WORKERS },
      (_, i) => new GenerationSaga({ ...deps, repo: new AggregateRepository(this.workerStore(i, this.store)), workerId: `w${i}` }),
    );
    this.admin = new AggregateRepository(this.store);
    this.shutdown = new AbortController();
  }

  /** Worker i's view of the store: its reads and appends can be stalled (see `race`). */
  private workerStore(i: number, store: CrashingStore): EventStore {
    const pause = async () => {
      const stall = this.stalls.get(i);
      if (stall && ++stall.calls === stall.at) await stall.until;
    };
    return new Proxy(store, {
      get: (target, prop) => {
        if (prop === 'readStream' || prop === 'append') {
          const method = target[prop].bind(target) as (...args: unknown[]) => Promise<unknown>;
          return async (...args: unknown[]) => (await pause(), method(...args));
        }
        const value = Reflect.get(target, prop, target) as unknown;
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
  }

  /**
   * An explicit schedule on top of the random one: worker `i` stops before its `at`-th store call (so what it read
   * before goes stale) until `until` settles.
   */
  readonly stalls = new Map<number, { at: number; calls: number; until: Promise<unknown> }>();

  /** The process died: drop every in-memory object, reopen the store, let callers retry what they had sent. */
  private async restart(): Promise<void> {
    this.crashes += 1;
    await this.store.close();
    await this.boot();
    const retries = this.retryAfterCrash;
    this.retryAfterCrash = [];
    for (const r of retries) await this.exec([r]);
  }

  /**
   * Runs operations concurrently, their store calls interleaved by the scheduler. A Crash restarts the world; any other
   * error is a failure of the code under test.
   */
  async exec(ops: Array<() => Promise<unknown>>, retryAfterCrash?: () => Promise<unknown>): Promise<PromiseSettledResult<unknown>[]> {
    const settled = await this.waitFor(Promise.allSettled(ops.map((op) => op())));
    if (this.shutdown.signal.aborted) this.shutdown = new AbortController(); // the stopped worker came back
    const crashed = settled.some((r) => r.status === 'rejected' && r.reason instanceof Crash);
    for (const r of settled) if (r.status === 'rejected' && !(r.reason instanceof Crash)) throw r.reason;
    if (crashed) {
      if (retryAfterCrash) this.retryAfterCrash.push(retryAfterCrash);
      await this.restart();
    }
    return settled;
  }

  drive(sessionId: string, worker: number) {
    return () => this.workers[worker]!.drive(sessionId, this.shutdown.signal);
  }

  /** Everything this run wrote, in global order (read from the store itself, not through the wrapper). */
  async events(): Promise<RecordedEvent[]> {
    const out: RecordedEvent[] = [];
    for await (const page of readLog(this.store.inner, { pageSize: 1000, filter: { streamPrefixes: this.prefixes } })) out.push(...page);
    return out;
  }

  audit(events: RecordedEvent[]): LedgerAuditor {
    const auditor = new LedgerAuditor();
    for (const e of events) auditor.add(e.streamId, e as unknown as LedgerEvent, Date.parse(e.metadata.occurredAt));
    return auditor;
  }

  /** Invariants 1-2 (and one intake per session) on the log as it stands. */
  async checkSafety(): Promise<void> {
    const events = await this.events();
    const { violations } = this.audit(events).report(false);
    expect(violations, this.describe()).toEqual([]);
    const requests = events.filter((e) => e.type === 'GenerationRequested').map((e) => e.streamId);
    expect(new Set(requests).size, 'a duplicate delivery created a second GenerationRequested').toBe(requests.length);
  }

  describe(): string {
    return `run ${this.tag}, ${this.crashes} crash(es), steps:\n  ${this.log.join('\n  ')}`;
  }
}

// ---- commands -----------------------------------------------------------------------------------------------------

type Model = Record<string, never>;
type Cmd = fc.AsyncCommand<Model, Harness>;

const step = (label: string, run: (h: Harness) => Promise<void>): Cmd => ({
  check: () => true,
  run: async (_m, h) => {
    h.log.push(label);
    await run(h);
    await h.checkSafety();
  },
  toString: () => label,
});

const sessionId = (h: Harness, i: number) => `${h.tag}g${i}`;

/** Opening balances of the three accounts (0 = none), so that most runs get past the charge. */
const openingArb = fc.tuple(fc.nat(6), fc.nat(6), fc.nat(6));

const grantStep = (acc: number, amount: number, ref: number) =>
    step(`grant(acc${acc}, ${amount}, ref${ref})`, async (h) => {
      const account = h.accounts[acc]!;
      const reference = `ref${ref}`;
      const key = `${account}/${reference}`;
      const first = !h.grants.has(key);
      if (first) h.grants.set(key, { account, amount });
      // A reference reused with another amount is refused (reference_conflict): a caller's bug, never applied.
      const conflicting = !first && h.grants.get(key)!.amount !== amount;
      const grant = () =>
        grantCredits(h.admin, account, { amount, reason: 'purchase', reference }, { requestId: `grant-${reference}`, workerId: 'admin', now: h.now }).catch(
          (err) => {
            if (err instanceof CreditCommandRejected && err.code === 'reference_conflict') return { conflict: true };
            throw err;
          },
        );
      const [r] = await h.exec([grant], grant);
      if (r?.status !== 'fulfilled') return;
      const v = r.value as { applied?: boolean; conflict?: boolean };
      expect(v.conflict === true, `grant ${key} (${amount}): reference_conflict exactly when the amount differs from the first`).toBe(conflicting);
      // Idempotent on the reference: only the first grant with it applies (a crash's retry may find it applied).
      if (!conflicting) expect(v.applied, `grant ${key}: applied only the first time`).toBe(first);
    });

const grantCmd = fc
  .record({ acc: fc.nat(2), amount: fc.integer({ min: 1, max: 3 }), ref: fc.nat(3) })
  .map(({ acc, amount, ref }) => grantStep(acc, amount, ref));

const revokeCmd = fc
  .record({ acc: fc.nat(2), amount: fc.integer({ min: 1, max: 2 }), ref: fc.nat(2) })
  .map(({ acc, amount, ref }) =>
    step(`revoke(acc${acc}, ${amount}, ref${ref})`, async (h) => {
      const account = h.accounts[acc]!;
      const reference = `rev${ref}`;
      const key = `${account}/${reference}`;
      const issued = h.revocationAmounts.get(key) ?? new Set<number>();
      const revoke = () =>
        revokeCredits(h.admin, account, { amount, reason: 'correction', reference }, { requestId: `revoke-${reference}`, workerId: 'admin', now: h.now }).catch(
          (err) => {
            // Refused for lack of balance: a legitimate answer, never a bug.
            if (err instanceof CreditCommandRejected && err.code === 'insufficient_credits') return { applied: false };
            // Refused because an earlier revocation with this reference applied another amount.
            if (err instanceof CreditCommandRejected && err.code === 'reference_conflict') {
              expect([...issued].some((a) => a !== amount), `revoke ${key} (${amount}): reference_conflict without an earlier other amount`).toBe(true);
              return { applied: false };
            }
            throw err;
          },
        );
      await h.exec([revoke]);
      h.revocationAmounts.set(key, issued.add(amount));
      h.revocations.add(key);
    }),
  );

const outcomeArb: fc.Arbitrary<UpstreamOutcome> = fc.oneof(
  { weight: 6, arbitrary: fc.constant('ok' as const) },
  { weight: 3, arbitrary: fc.constant('429' as const) },
  { weight: 4, arbitrary: fc.constantFrom<UpstreamOutcome>('5xx', 'moderation', 'timeout', 'slow', 'shutdown') },
);

/** The billing rule (domain/billing.ts) restated over the model, for the account a B2B task names. */
function expectedBilling(h: Harness, named: string, requestId: string, paddle: boolean): ExpectedBilling {
  const m = h.storeModel;
  const [, storeAccount, shopperAccount] = h.accounts as [string, string, string];
  if (named.startsWith('user:')) return { account: named, overage: 'none' };
  if (m.uninstalled) return { refused: 'store_uninstalled' };
  const fallback: ExpectedBilling = { account: storeAccount, overage: m.overageAllowed ? 'fallback' : 'none' };
  const known = m.intents.get(requestId);
  const intent = known && h.now - known.at <= SETTLED_RETENTION_MS ? known.pool : undefined;
  if (intent === 'shopper') return { account: shopperAccount, overage: 'none' };
  if (intent === 'overage') return { account: storeAccount, overage: 'billed' };
  if (intent === 'store') return fallback;
  if (named === shopperAccount) return { account: shopperAccount, overage: 'none' };
  if (paddle) return { account: storeAccount, overage: 'billed' };
  if (m.mode === 'resell') return { refused: 'shopper_required' };
  return m.mode === null ? { account: storeAccount, overage: 'none' } : fallback;
}

const requestStep = ({ s, acc, cost, script, chargeNow, paddle = false }: { s: number; acc: number; cost: number; script: UpstreamOutcome[]; chargeNow: boolean; paddle?: boolean }) =>
    step(`request(g${s}, acc${acc}, cost ${cost}, [${script}]${chargeNow ? ', chargeNow' : ''}${paddle && acc === 1 ? ', overage billed' : ''})`, async (h) => {
      const id = sessionId(h, s);
      let model = h.sessions.get(id);
      if (!model) {
        // First delivery; a later request of the same session is a duplicate delivery of the same message.
        const account = h.accounts[acc]!;
        const requestId = `req-${id}`;
        const paddleCharge = paddle && acc === 1 ? `txn-${id}` : undefined;
        model = {
          input: {
            sessionId: id, taskId: `task-${id}`, channel: acc === 0 ? 'b2c' : 'b2b', account,
            imageUrls: ['https://img.test/model.jpg', 'https://img.test/garment.jpg'], prompt: id, requestId,
            payloadVersion: 1, requestedAt: new Date(h.now).toISOString(), cost, ...(paddleCharge ? { paddleCharge } : {}),
          },
          script,
          billing: expectedBilling(h, account, requestId, paddleCharge !== undefined),
        };
        h.sessions.set(id, model);
        h.generator.script(id, script);
      }
      const input = model.input;
      const saga = h.workers[0]!;
      const deliver = async () => {
        await saga.request(input);
        if (chargeNow) await saga.charge(input.sessionId);
      };
      await h.exec([deliver], () => h.workers[0]!.request(input));
    });

const requestCmd = fc
  .record({
    s: fc.nat(SESSIONS - 1),
    acc: fc.nat(2),
    cost: fc.integer({ min: 1, max: 2 }),
    script: fc.array(outcomeArb, { maxLength: 3 }),
    chargeNow: fc.boolean(),
    paddle: fc.boolean(),
  })
  .map(requestStep);

// ---- billing facts changing while generations are in flight ---------------------------------------------------------

const cli = (h: Harness, what: string) => ({ requestId: `${what}-${h.log.length}`, workerId: 'bridge', now: h.now });

const billingCmd = fc.record({ mode: fc.constantFrom<'absorb' | 'resell'>('absorb', 'resell'), overage: fc.boolean() }).map(({ mode, overage }) =>
  step(`billing(${mode}, overage ${overage ? 'allowed' : 'not allowed'})`, async (h) => {
    const facts = { billingMode: mode, subscriptionTier: overage ? ('growth' as const) : null, subscriptionStatus: overage ? 'active' : null, subscriptionId: overage ? 'sub_1' : null };
    const record = () => recordStoreBilling(h.admin, h.storeId, facts, cli(h, 'billing'));
    await h.exec([record], record);
    Object.assign(h.storeModel, { mode, overageAllowed: overage });
  }),
);

const intentCmd = fc.record({ s: fc.nat(SESSIONS - 1), pool: fc.constantFrom<IntentPool>('store', 'shopper', 'overage') }).map(({ s, pool }) =>
  step(`intent(g${s}, ${pool})`, async (h) => {
    const requestId = `req-${sessionId(h, s)}`;
    const intent = { requestId, pool, shopperEmail: pool === 'shopper' ? 'ann@example.com' : null, paddleReference: pool === 'overage' ? 'sub_1' : null };
    const record = () => recordBillingIntent(h.admin, h.storeId, intent, cli(h, 'intent'));
    await h.exec([record], record);
    // a billed overage stands: a pool intent for the same request after it changes nothing (domain/store.ts)
    const known = h.storeModel.intents.get(requestId);
    if (known?.pool !== 'overage' || h.now - known.at > SETTLED_RETENTION_MS) h.storeModel.intents.set(requestId, { pool, at: h.now });
  }),
);

const uninstallCmd = fc.constantFrom('uninstall', 'reinstall').map((verb) =>
  step(`${verb}()`, async (h) => {
    const run =
      verb === 'uninstall'
        ? () => uninstallStore({ repo: h.admin, store: h.store, saga: h.workers[0]! }, h.storeId, `u${h.log.length}`, cli(h, verb))
        : () => reinstallStore(h.admin, h.storeId, `i${h.log.length}`, cli(h, verb));
    await h.exec([run], run);
    h.storeModel.uninstalled = verb === 'uninstall';
    if (verb === 'uninstall') h.storeModel.everUninstalled = true;
  }),
);

const driveCmd = fc.record({ s: fc.nat(SESSIONS - 1), w: fc.nat(WORKERS - 1) }).map(({ s, w }) =>
  step(`drive(g${s}, w${w})`, async (h) => {
    await h.exec([h.drive(sessionId(h, s), w)]);
  }),
);

/**
 * Two workers at once, on the same generation (and so the same account) or on two generations, their store calls
 * interleaved by the scheduler. With `stallAt`, w0 also stops before its stallAt-th store call until w1's drive is over:
 * the long pauses (GC, a slow disk) that random interleaving alone rarely produces.
 */
const raceStep = ({ a, other, stallAt, grant }: { a: number; other: number; stallAt: number | null; grant: number | null }) => {
    const label = `race(w0: g${a}, w1: g${other}${stallAt ? `, w0 stalls before store call ${stallAt}` : ''}${grant ? `, grant ${grant} meanwhile` : ''})`;
    return step(label, async (h) => {
      let w1Over!: () => void;
      const until = new Promise<void>((resolve) => (w1Over = resolve));
      const runW1 = () => h.drive(sessionId(h, other), 1)().finally(w1Over);
      if (stallAt) h.stalls.set(0, { at: stallAt, calls: 0, until });
      const ops: Array<() => Promise<unknown>> = [runW1, h.drive(sessionId(h, a), 0)];
      let retry: (() => Promise<unknown>) | undefined;
      if (grant) {
        // Credits arriving mid-race: one worker can find the balance short while the other deducts.
        const account = h.sessions.get(sessionId(h, a))?.input.account ?? h.accounts[0]!;
        const reference = `race${h.log.length}`;
        h.grants.set(`${account}/${reference}`, { account, amount: grant });
        retry = () => grantCredits(h.admin, account, { amount: grant, reason: 'purchase', reference }, { requestId: reference, workerId: 'admin', now: h.now });
        ops.push(retry);
      }
      try {
        await h.exec(ops, retry);
      } finally {
        h.stalls.clear();
      }
    });
};

const raceCmd = fc
  .record({
    a: fc.nat(SESSIONS - 1),
    b: fc.nat(SESSIONS - 1),
    same: fc.boolean(),
    stallAt: fc.option(fc.integer({ min: 1, max: 10 }), { freq: 2 }),
    grant: fc.option(fc.integer({ min: 1, max: 2 }), { freq: 3 }),
  })
  .map(({ a, b, same, stallAt, grant }) => raceStep({ a, other: same ? a : b, stallAt, grant }));

const advanceCmd = fc.constantFrom(1_000, 11_000, LEASE_MS + 1, 2 * 60 * 60 * 1000 + 1).map((ms) =>
  step(`advance(${ms} ms)`, async (h) => {
    h.now += ms;
  }),
);

const crashCmd = fc.record({ k: fc.integer({ min: 1, max: 4 }), mode: fc.constantFrom<CrashMode>('before', 'after') }).map(({ k, mode }) =>
  step(`crash(append +${k}, ${mode})`, async (h) => {
    h.store.armCrash(k, mode);
  }),
);

/** One recovery pass, as the worker runs it: fold the log into the pending index and drive what is due. */
async function recoveryPass(h: Harness): Promise<number> {
  let due: string[] = [];
  await h.exec([async () => (due = (await PendingIndex.fromLog(h.store)).due(h.now, true))]);
  for (const [i, id] of due.entries()) await h.exec([h.drive(id, i % WORKERS)]);
  return due.length;
}

const recoverCmd = fc.constant(step('recover()', async (h) => void (await recoveryPass(h))));

// ---- the platform bridge ---------------------------------------------------------------------------------------------

/** A bridged function commits a grant command (signup, Paddle): its reference repeats, or is none (the inbox id). */
const bridgeGrantCmd = fc
  .record({ acc: fc.nat(1), amount: fc.integer({ min: 1, max: 3 }), ref: fc.option(fc.nat(2), { freq: 3 }) })
  .map(({ acc, amount, ref }) =>
    step(`bridge grant(acc${acc}, ${amount}, ${ref === null ? 'no reference' : `paddle:purchase:b${ref}`})`, async (h) => {
      const id = String(h.inbox.length + 1);
      const account = h.accounts[acc]!;
      const reference = ref === null ? null : `paddle:purchase:b${ref}`;
      const key = `${account}/${reference ?? `inbox:${id}`}`;
      const asked = h.bridgeGrants.get(key) ?? { account, reference: reference ?? `inbox:${id}`, amounts: [] };
      asked.amounts.push(amount);
      h.bridgeGrants.set(key, asked);
      h.inbox.push({ id, type: 'grant', payload: { account, amount, reason: 'purchase', reference } });
    }),
  );

/** process_store_shopper_purchase commits a transfer store -> shopper; an order id can come again (redelivery). */
const bridgeTransferCmd = fc.record({ order: fc.nat(3), amount: fc.integer({ min: 1, max: 3 }) }).map(({ order, amount }) =>
  step(`bridge transfer(order o${order}, ${amount})`, async (h) => {
    const transferId = `${h.tag}o${order}`;
    h.transfers.set(transferId, [...(h.transfers.get(transferId) ?? []), amount]);
    h.inbox.push({ id: String(h.inbox.length + 1), type: 'transfer', payload: { from: h.accounts[1]!, to: h.shopper, amount, transferId } });
  }),
);

/** Applies one inbox command with the real handler; the mark comes after the ledger append (lost on a crash). */
function applyInbox(h: Harness, entry: InboxEntry, repo: AggregateRepository) {
  return async () => {
    const handler = handlerOf(entry.type)!;
    const payload = handler.parse(entry.payload);
    const outcome = await handler.handle(
      { repo, workerId: 'bridge', clock: () => h.now, logger: silentLogger() },
      { id: entry.id, type: entry.type, payload, createdAt: new Date(h.now).toISOString() },
    );
    entry.outcome = outcome;
  };
}

/** One consumer pass: every pending command in id order (a crash leaves the rest, and the interrupted one, pending). */
async function consumeInbox(h: Harness): Promise<void> {
  for (const entry of h.inbox.filter((e) => !e.outcome)) {
    const [r] = await h.exec([applyInbox(h, entry, h.admin)]);
    count(r?.status === 'fulfilled' ? `inbox:${entry.type}:${entry.outcome!.outcome}` : `inbox:${entry.type}:crashed`);
  }
}

const consumeCmd = fc.constant(step('consume inbox', consumeInbox));

/** Two workers each take one pending command (rows locked apart) and apply them at once, interleaved by the scheduler. */
const consumeRace = step('consume inbox: two workers at once', async (h) => {
    const [a, b] = h.inbox.filter((e) => !e.outcome);
    if (!a || !b) return;
    const repos = [0, 1].map(() => new AggregateRepository(h.store));
    await h.exec([applyInbox(h, a, repos[0]!), applyInbox(h, b, repos[1]!)]);
  });
const consumeRaceCmd = fc.constant(consumeRace);

const commandArbs = [
  grantCmd, grantCmd, revokeCmd, requestCmd, requestCmd, requestCmd, driveCmd, driveCmd, raceCmd, raceCmd, advanceCmd, crashCmd, recoverCmd,
  billingCmd, intentCmd, uninstallCmd,
  bridgeGrantCmd, bridgeTransferCmd, bridgeTransferCmd, consumeCmd, consumeRaceCmd,
];

// ---- quiescence ---------------------------------------------------------------------------------------------------

async function quiesce(h: Harness): Promise<void> {
  h.store.disarm();
  h.log.push('-- quiescence: inbox drained, recovery passes until nothing is pending');
  await consumeInbox(h);
  for (let pass = 0; ; pass++) {
    if (pass > 60) {
      const log = (await h.events()).map((e) => `${e.streamId}@${e.revision} ${e.type} ${JSON.stringify(e.data)}`);
      throw new Error(`recovery did not converge\n${h.describe()}\nlog:\n  ${log.join('\n  ')}`);
    }
    let pending = 0;
    await h.exec([async () => (pending = (await PendingIndex.fromLog(h.store)).size)]);
    if (pending === 0) break;
    await recoveryPass(h);
    h.now += LEASE_MS + 1; // past every lease and every retry's notBefore
  }
}

/** Invariants 3-4 and the model, on a quiescent ledger. */
async function checkQuiescent(h: Harness): Promise<void> {
  const events = await h.events();
  const ctx = h.describe();
  count('crashes', h.crashes);
  for (const e of events) {
    const d = e.data as { code?: string; reason?: string };
    count(
      e.type === 'GenerationFailed' || e.type === 'GenerationRejected'
        ? `${e.type === 'GenerationFailed' ? 'failed' : 'rejected'}:${d.code}`
        : e.type === 'CreditRefunded'
          ? `refunded:${d.reason}`
          : e.type,
    );
  }
  expect(h.audit(events).report(true).violations, ctx).toEqual([]);

  const byStream = new Map<string, RecordedEvent[]>();
  for (const e of events) byStream.set(e.streamId, [...(byStream.get(e.streamId) ?? []), e]);

  // Every accepted request ended terminal; nothing else became a generation; one intake each.
  const generationStreams = [...byStream.keys()].filter((s) => sessionIdFromStream(s) !== null);
  expect(generationStreams.sort(), ctx).toEqual([...h.sessions.keys()].map(generationStream).sort());
  const expectedBalance = new Map(h.accounts.map((a) => [a, 0]));
  // Every account event of a generation, wherever it is: one pool per generation, and the one the rule named.
  const chargesOf = new Map<string, RecordedEvent[]>();
  for (const e of events) {
    const g = (e.data as { generationId?: string }).generationId;
    if (g && e.streamId.startsWith('credit-account-')) chargesOf.set(g, [...(chargesOf.get(g) ?? []), e]);
  }
  for (const [id, model] of h.sessions) {
    const stream = byStream.get(generationStream(id)) ?? [];
    expect(stream.filter((e) => e.type === 'GenerationRequested'), `${id}: one intake\n${ctx}`).toHaveLength(1);
    const state = foldGeneration(stream.map((e) => e as unknown as GenerationEvent));
    expect(isTerminal(state), `${id} is ${state.status} after recovery\n${ctx}`).toBe(true);
    const request = stream.find((e) => e.type === 'GenerationRequested')!.data as GenerationRequested['data'];
    const charges = chargesOf.get(id) ?? [];
    const pools = new Set(charges.map((e) => e.streamId));
    expect(pools.size, `${id} charged in ${[...pools]}\n${ctx}`).toBeLessThanOrEqual(1);
    const overage = charges.some((e) => e.type === 'OverageCharged');
    count(overage ? 'billing:overage' : `billing:${'refused' in model.billing ? model.billing.refused : model.billing.account.split(':')[0]}`);
    if ('refused' in model.billing) {
      // Refused at intake: nothing charged anywhere, rejected with the reason.
      expect(charges, `${id} refused (${model.billing.refused}) but charged\n${ctx}`).toEqual([]);
      expect(state.status, ctx).toBe('rejected');
      expect(stream.find((e) => e.type === 'GenerationRejected')!.data, ctx).toMatchObject({ code: model.billing.refused });
    } else {
      expect(request.account, `${id}: the pool the rule named\n${ctx}`).toBe(model.billing.account);
      if (pools.size) expect([...pools], ctx).toEqual([accountStream(model.billing.account)]);
      if (overage) expect(model.billing.overage, `${id}: an overage the rule did not allow\n${ctx}`).not.toBe('none');
      if (model.billing.overage === 'billed' && charges.length) expect(overage, `${id}: a billed overage charged the pool\n${ctx}`).toBe(true);
    }
    const produced = h.generator.produced.get(id) ?? [];
    if (state.status === 'completed') {
      expect(produced.some((o) => o === 'ok' || o === 'slow'), `${id} completed without a successful upstream call\n${ctx}`).toBe(true);
      expect(h.results.objects.size, ctx).toBeGreaterThan(0);
      // An overage moves no credit: the pool keeps its balance.
      if (!overage) expectedBalance.set(request.account, expectedBalance.get(request.account)! - model.input.cost);
    }
    if (state.status === 'failed') {
      const failed = stream.find((e) => e.type === 'GenerationFailed')!.data as { code: string };
      const allowed = new Set(['worker_lost', ...produced.map((o) => FAILURE_CODE[o]).filter(Boolean)]);
      if (h.storeModel.everUninstalled) allowed.add('store_uninstalled');
      expect(allowed.has(failed.code), `${id} failed with ${failed.code}, upstream produced [${produced}]\n${ctx}`).toBe(true);
    }
  }

  // The bridge: every command marked; a transfer is completed (both legs, the amount first asked) or rejected (no leg),
  // and each of its commands says so (applied / rejected); the legs themselves are the auditor's (invariant 1).
  expect(h.inbox.filter((e) => !e.outcome).map((e) => e.id), `inbox commands left pending\n${ctx}`).toEqual([]);
  expectedBalance.set(h.shopper, 0);
  for (const [transferId, asked] of h.transfers) {
    const t = foldTransfer((byStream.get(transferStream(transferId)) ?? []).map((e) => decodeTransferEvent(e)));
    expect(['completed', 'rejected'], `transfer ${transferId} is ${t.status}\n${ctx}`).toContain(t.status);
    const amount = t.request!.amount;
    expect(asked, `transfer ${transferId} requested with an amount no command asked\n${ctx}`).toContain(amount);
    for (const e of h.inbox.filter((x) => x.type === 'transfer' && x.payload.transferId === transferId)) {
      const expectedOutcome = e.payload.amount !== amount || t.status === 'rejected' ? 'rejected' : 'applied';
      expect(e.outcome!.outcome, `inbox ${e.id} (transfer ${transferId} ${String(e.payload.amount)}, ${t.status})\n${ctx}`).toBe(expectedOutcome);
    }
    count(`transfer:${t.status}`);
    if (t.status === 'completed') {
      expectedBalance.set(h.accounts[1]!, expectedBalance.get(h.accounts[1]!)! - amount);
      expectedBalance.set(h.shopper, expectedBalance.get(h.shopper)! + amount);
    }
  }
  const applied = new Map<string, number>();
  for (const [key, { account, reference, amounts }] of h.bridgeGrants) {
    const grant = (byStream.get(accountStream(account)) ?? []).find((e) => e.type === 'CreditsGranted' && (e.data as { reference: string }).reference === reference);
    const amount = (grant?.data as { amount: number } | undefined)?.amount;
    expect(amounts, `bridged grant ${key} applied as ${amount}\n${ctx}`).toContain(amount);
    applied.set(key, amount!);
    expectedBalance.set(account, expectedBalance.get(account)! + amount!);
  }
  for (const e of h.inbox.filter((x) => x.type === 'grant')) {
    const key = `${String(e.payload.account)}/${String(e.payload.reference ?? `inbox:${e.id}`)}`;
    const expectedOutcome = applied.get(key) === e.payload.amount ? 'applied' : 'rejected';
    expect(e.outcome!.outcome, `inbox ${e.id} (grant ${key})\n${ctx}`).toBe(expectedOutcome);
  }

  // Balances: the model's grants, the revocations the ledger accepted, minus what completed generations cost, moved
  // by completed transfers.
  for (const { account, amount } of h.grants.values()) expectedBalance.set(account, expectedBalance.get(account)! + amount);
  for (const account of [...h.accounts, h.shopper]) {
    const stream = byStream.get(accountStream(account)) ?? [];
    const typed = stream.map((e) => ({ event: e as unknown as AccountEvent, at: Date.parse(e.metadata.occurredAt) }));
    const grants = typed.filter((t) => t.event.type === 'CreditsGranted').map((t) => (t.event.data as { reference: string }).reference);
    expect(new Set(grants).size, `${account}: a grant reference applied twice\n${ctx}`).toBe(grants.length);
    const revoked = typed.filter((t) => t.event.type === 'CreditsRevoked').map((t) => t.event.data as { amount: number; reference: string });
    expect(new Set(revoked.map((r) => r.reference)).size, ctx).toBe(revoked.length);
    for (const r of revoked) expect(h.revocations.has(`${account}/${r.reference}`), ctx).toBe(true);
    const state = foldAccount(typed);
    expect(state.open, `${account}: holds left open\n${ctx}`).toEqual({});
    expect(state.overage, `${account}: overage charges left unsettled\n${ctx}`).toEqual({});
    const expected = expectedBalance.get(account)! - revoked.reduce((a, r) => a + r.amount, 0);
    expect(state.balance, `${account}: balance\n${ctx}`).toBe(expected);
    const deductions = typed.filter((t) => t.event.type === 'CreditDeducted').map((t) => (t.event.data as { generationId: string }).generationId);
    expect(new Set(deductions).size, `${account}: a generation charged twice\n${ctx}`).toBe(deductions.length);
  }
}

// ---- the property -------------------------------------------------------------------------------------------------

await backend.start();
if (backend.skip && process.env.CI === 'true') throw new Error(`ledger property on ${backend.name} cannot run under CI=true: ${backend.skip}`);
if (backend.skip) console.warn(`SKIP ledger property on ${backend.name}: ${backend.skip}`);

/** One run: boot, opening balances, the commands, then quiescence and its checks. */
async function runOnce(s: fc.Scheduler, writer: SqliteWriter, opening: number[], cmds: Iterable<Cmd>): Promise<Harness> {
  const tag = `r${++runCounter}x`;
  const runStore = backend.forRun(tag, writer);
  count(`writer:${backend.name === 'sqlite' ? writer : backend.name}`);
  const gate: Gate = (label, work) => s.schedule(Promise.resolve(), label).then(work);
  const h = new Harness(tag, runStore, gate, (p) => s.waitFor(p));
  try {
    await h.boot();
    for (const [acc, amount] of opening.entries()) if (amount > 0) await grantStep(acc, amount, 9).run({}, h);
    count('commands', [...cmds].length);
    await fc.asyncModelRun(() => ({ model: {} as Model, real: h }), cmds);
    await quiesce(h);
    await checkQuiescent(h);
    return h;
  } finally {
    await h.store?.close().catch(() => {});
    await runStore.cleanup();
  }
}

/** Runs of the focused properties; their time limits follow (a run can take seconds on a loaded machine, several over
 * the network stores). */
const RUN_BUDGET_MS = backend.name === 'sqlite' ? 2_000 : 8_000;
const limit = (runs: number) => Math.max(120_000, runs * RUN_BUDGET_MS);
const TRANSFER_CRASH_RUNS = Math.max(24, Math.min(Math.round(RUNS / 4), 200));
const RACE_RUNS = Math.max(50, Math.min(RUNS, 300));
const STALE_RUNS = Math.max(30, Math.min(RUNS, 200));
const CONFLICT_RUNS = Math.max(20, Math.min(Math.round(RUNS / 10), 100));

const replay = { ...(SEED !== undefined ? { seed: SEED } : {}), ...(PATH ? { path: PATH } : {}), endOnFailure: false };

describe.skipIf(backend.skip !== null)(`ledger model-based property (store: ${backend.name})`, () => {
  afterAll(() => backend.stop());

  it(`keeps invariants 1-4 under crashes, duplicates, races and recovery (${RUNS} runs)`, async () => {
    let runs = 0;
    const commands = fc.commands(commandArbs, { maxCommands: 30, size: '+1', ...(REPLAY_PATH ? { replayPath: REPLAY_PATH } : {}) });
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), writerArb, openingArb, commands, async (s, writer, opening, cmds) => {
        runs += 1;
        await runOnce(s, writer, opening, cmds);
      }),
      { numRuns: RUNS, ...replay },
    );
    console.log(`ledger property (${backend.name}): ${runs} runs; events and crashes seen: ${JSON.stringify(stats)}`);
    expect(runs).toBeGreaterThanOrEqual(RUNS);
  }, Math.max(limit(RUNS), RUNS * 3_000));

  // The stale read the account's recentlySettled guards against: worker 0 reads the generation as requested, stalls,
  // and resumes after worker 1 has charged, run and settled it. Its deduction must be a no-op, never a second charge.
  it('a worker whose read of the generation went stale does not charge it again', async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), writerArb, fc.integer({ min: 1, max: 6 }), fc.constantFrom<UpstreamOutcome[]>([], ['5xx']), async (s, writer, stallAt, script) => {
        await runOnce(s, writer, [2, 0], [
          requestStep({ s: 0, acc: 0, cost: 1, script, chargeNow: false }),
          raceStep({ a: 0, other: 0, stallAt, grant: null }),
        ]);
      }),
      { numRuns: STALE_RUNS, ...replay },
    );
  }, scaled(limit(STALE_RUNS)));

  // A Shopify transfer through the inbox with the process dying before or after each of its appends (request, paying
  // leg, receiving leg, completed): the command stays unmarked, is applied again, and ends with both legs or neither.
  it('finishes a bridged transfer crashed before or after any of its appends, without minting or losing a credit', async () => {
    const before = stats['inbox:transfer:crashed'] ?? 0;
    await fc.assert(
      fc.asyncProperty(
        fc.scheduler(),
        writerArb,
        fc.integer({ min: 1, max: 4 }),
        fc.constantFrom<CrashMode>('before', 'after'),
        fc.integer({ min: 1, max: 3 }),
        async (s, writer, k, mode, amount) => {
          const crash = step(`crash(append +${k}, ${mode})`, async (h) => h.store.armCrash(k, mode));
          const transfer = step(`bridge transfer(order o0, ${amount})`, async (h) => {
            const transferId = `${h.tag}o0`;
            h.transfers.set(transferId, [amount]);
            h.inbox.push({ id: '1', type: 'transfer', payload: { from: h.accounts[1]!, to: h.shopper, amount, transferId } });
          });
          const h = await runOnce(s, writer, [0, 3], [transfer, crash, step('consume inbox', consumeInbox), step('consume inbox', consumeInbox)]);
          expect(h.crashes, h.describe()).toBe(1);
        },
      ),
      { numRuns: TRANSFER_CRASH_RUNS, ...replay },
    );
    expect((stats['inbox:transfer:crashed'] ?? 0) - before, 'no transfer was interrupted').toBeGreaterThan(0);
  }, scaled(limit(TRANSFER_CRASH_RUNS)));

  // Two workers apply two bridged grants with one reference and different amounts at once (a 2000-run
  // counterexample): one applies, the other must be refused (reference_conflict), never reported applied while the
  // ledger holds the first amount (its event once had the same id, so the store took it for a retry).
  it('refuses, never swallows, a concurrent grant that reuses a reference with another amount', async () => {
    const grantB2 = (amount: number) =>
      step(`bridge grant(acc0, ${amount}, paddle:purchase:b2)`, async (h) => {
        const account = h.accounts[0]!;
        const key = `${account}/paddle:purchase:b2`;
        const asked = h.bridgeGrants.get(key) ?? { account, reference: 'paddle:purchase:b2', amounts: [] };
        asked.amounts.push(amount);
        h.bridgeGrants.set(key, asked);
        h.inbox.push({ id: String(h.inbox.length + 1), type: 'grant', payload: { account, amount, reason: 'purchase', reference: 'paddle:purchase:b2' } });
      });
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), writerArb, async (s, writer) => {
        const h = await runOnce(s, writer, [0, 0], [grantB2(1), grantB2(2), consumeRace]);
        expect(h.inbox.map((e) => e.outcome?.outcome).sort(), h.describe()).toEqual(['applied', 'rejected']);
      }),
      { numRuns: CONFLICT_RUNS, ...replay },
    );
  }, scaled(limit(CONFLICT_RUNS)));

  // The race ledger.md singles out: one worker finds the balance short and rejects while the other, after credits
  // arrived, deducts; the hold must come back by a refund. Random command sequences rarely line this up, so this
  // property fixes the commands and lets the scheduler (and the stall point) vary; it also checks that the interleaving
  // is actually reached.
  it('refunds the hold of a worker that deducted while another rejected for lack of credit', async () => {
    const before = stats['refunded:generation_rejected'] ?? 0;
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), writerArb, fc.option(fc.integer({ min: 1, max: 6 })), async (s, writer, stallAt) => {
        await runOnce(s, writer, [0, 0], [
          requestStep({ s: 0, acc: 0, cost: 1, script: [], chargeNow: false }),
          raceStep({ a: 0, other: 0, stallAt, grant: 1 }),
        ]);
      }),
      { numRuns: RACE_RUNS, ...replay },
    );
    const reached = (stats['refunded:generation_rejected'] ?? 0) - before;
    console.log(`deduction racing a rejection (${backend.name}): reached in ${reached} run(s)`);
    // Over the network store the timing of unscheduled I/O decides more of the order; the reach check is for SQLite.
    if (backend.name === 'sqlite') expect(reached, 'no schedule produced a deduction racing a rejection').toBeGreaterThan(0);
  }, scaled(limit(RACE_RUNS)));
});

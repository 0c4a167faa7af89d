// The generation saga (ledger.md "The saga"): one process manager whose every step is idempotent and resumable.
// `drive(sessionId)` reads where a generation stands, asks the domain for the next step (nextStep) and performs it,
// until the generation is settled, waiting (a retry not yet due), or held by another worker's live lease. Any worker
// may drive any generation at any time; optimistic concurrency on both streams decides every race, and deterministic
// event ids (domain/stepIds.ts) make a retried append recognisable. Running an attempt is runGeneration's job; metrics
// are observed from what is appended (sagaMetrics.ts).
import { decideAccount, type AccountCommand, type AccountState } from '../domain/account.ts';
import { decideBilling } from '../domain/billing.ts';
import type { Channel, GenerationEvent, GenerationRequested, LedgerEvent } from '../domain/events.ts';
import { decideGeneration, type GenerationCommand, type GenerationState, type TerminalStatus } from '../domain/generation.ts';
import { chargeRejection, nextStep, settleCommand } from '../domain/saga.ts';
import { accountEventId, accountStep, generationEventId } from '../domain/stepIds.ts';
import { intentOf, type StoreState } from '../domain/store.ts';
import { accountStream, generationStream, parseAccountId, storeOfAccount, storeStream } from '../domain/streams.ts';
import type { Logger } from '../logger.ts';
import { ACCOUNT, GENERATION, STORE, commandMeta, type AggregateRepository, type AggregateType } from './aggregates.ts';
import type { ImageGenerator, InputImages, ResultStore } from './ports/pipeline.ts';
import { runGeneration } from './runGeneration.ts';
import type { AppendContext, SagaObserver } from './sagaMetrics.ts';

export interface SagaOptions {
  leaseMs: number;
  maxAttempts: number;
  max429Retries: number;
  signedUrlTtlSeconds: number;
  /** a run stops this long before its lease ends, so no worker works past its lease */
  leaseMarginMs?: number;
}

export interface SagaDeps {
  repo: AggregateRepository;
  images: InputImages;
  generator: ImageGenerator;
  results: ResultStore;
  workerId: string;
  clock: () => number;
  logger: Logger;
  /** sees every appended event (metrics) */
  observer?: SagaObserver;
  /**
   * Applies credit commands still waiting outside the ledger (the platform bridge's inbox) and says whether any was
   * applied: asked once before a generation is refused for lack of credits, so a signup bonus recorded a moment ago
   * is not beaten by the user's first generation; and once at intake of a B2B task whose billing intent is not in
   * the ledger yet (domain/billing.ts).
   */
  pendingCredits?: () => Promise<boolean>;
  options: SagaOptions;
}

export type DriveOutcome =
  | { kind: 'settled'; status: TerminalStatus }
  | { kind: 'waiting'; until: number }
  | { kind: 'leased'; until: number }
  | { kind: 'released' }
  | { kind: 'missing' };

/**
 * What a task asks for. `account` is the account the task names; for B2B the saga decides the paying pool from the
 * store's billing facts (domain/billing.ts). `paddleCharge`: the overage charge the producer says it billed.
 */
export type RequestInput = Omit<GenerationRequested['data'], 'acceptedAt' | 'overage' | 'refusal'> & { paddleCharge?: string | undefined };

/** What a queued generation of an uninstalled store ends with (GenerationFailed). */
export const STORE_UNINSTALLED_FAILURE = {
  code: 'store_uninstalled',
  userMessage: 'The store no longer offers try-on. Your credit has been refunded.',
} as const;

const cancelCommand = (message: string): GenerationCommand => ({
  type: 'Cancel',
  code: STORE_UNINSTALLED_FAILURE.code,
  message,
  userMessage: STORE_UNINSTALLED_FAILURE.userMessage,
});

const MAX_STEPS = 32;
const NOT_RUN = 'none';

export class GenerationSaga {
  constructor(private readonly deps: SagaDeps) {}

  /** Appends what `decide` decides on the revision read (retrying on conflict), and shows the observer what was appended. */
  private async append<S, E extends LedgerEvent, R>(
    aggregate: AggregateType<S, E>,
    stream: string,
    decide: (state: S) => { events: E[]; id: (event: E) => string; result: R },
    cause: { requestId: string; causationId: string },
    observed: AppendContext,
  ) {
    let decided: E[] = [];
    const r = await this.deps.repo.handle(
      aggregate,
      stream,
      ({ state }) => {
        const d = decide(state);
        decided = d.events;
        return { events: d.events, ids: d.events.map(d.id), result: d.result };
      },
      commandMeta({ ...cause, workerId: this.deps.workerId, at: this.deps.clock() }),
    );
    if (r.appended) for (const e of decided) this.deps.observer?.appended(e, observed);
    return r;
  }

  private onGeneration(sessionId: string, requestId: string, command: GenerationCommand, observed: AppendContext) {
    const stream = generationStream(sessionId);
    const decide = (state: GenerationState) => {
      const decision = decideGeneration(state, command);
      const id = (e: GenerationEvent) => generationEventId(stream, command, state, e);
      return { events: decision.ok ? decision.events : [], id, result: decision };
    };
    return this.append(GENERATION, stream, decide, { requestId, causationId: `${command.type}:${sessionId}` }, observed);
  }

  private onAccount(account: string, requestId: string, command: AccountCommand, observed: AppendContext) {
    const stream = accountStream(account);
    const decide = (state: AccountState) => {
      const decision = decideAccount(state, command);
      // A deduction that finds its hold already taken appends nothing, yet the generation is charged.
      const held = command.type === 'Deduct' && (command.generationId in state.open || command.generationId in state.overage);
      return { events: decision.ok ? decision.events : [], id: () => accountEventId(stream, command), result: { decision, held } };
    };
    return this.append(ACCOUNT, stream, decide, { requestId, causationId: `${command.type}:${accountStep(command)}` }, observed);
  }

  /** The billing facts of the store a B2B account belongs to; null for B2C. */
  private async storeOf(account: string): Promise<{ storeId: string; state: StoreState } | null> {
    const storeId = storeOfAccount(parseAccountId(account));
    if (storeId === null) return null;
    return { storeId, state: (await this.deps.repo.load(STORE, storeStream(storeId))).state };
  }

  /**
   * Intake: records the request once, with the pool that pays (B2B: decided here from the store's facts, so a later
   * mode change never moves it). A duplicate delivery finds the stream and changes nothing.
   */
  async request(input: RequestInput): Promise<{ created: boolean }> {
    const { paddleCharge, ...task } = input;
    let store = await this.storeOf(task.account);
    // With the bridge, the platform records the pool of a request (its intent) just before it pushes the task: when a
    // task does not name its pool itself and the intent is not here yet, the inbox is applied once before deciding.
    const namesItsPool = parseAccountId(task.account).kind === 'shopper' || paddleCharge !== undefined;
    if (store && !namesItsPool && !intentOf(store.state, task.requestId, this.deps.clock()) && this.deps.pendingCredits && (await this.deps.pendingCredits())) {
      store = await this.storeOf(task.account);
    }
    const billing = store ? decideBilling(store.state, { named: parseAccountId(task.account), requestId: task.requestId, paddleCharge, now: this.deps.clock() }) : null;
    const data: GenerationRequested['data'] = {
      ...task,
      ...(billing ? { account: billing.account } : {}),
      ...(billing?.overage ? { overage: billing.overage } : {}),
      ...(billing?.refusal ? { refusal: billing.refusal } : {}),
      acceptedAt: new Date(this.deps.clock()).toISOString(),
    };
    const r = await this.onGeneration(input.sessionId, input.requestId, { type: 'Request', data }, { channel: input.channel, provider: NOT_RUN });
    return { created: r.appended };
  }

  /** An invalid task that still names a session: record it as rejected so the web app sees it fail. */
  async rejectInvalid(sessionId: string, requestId: string, message: string, place: { channel?: Channel; account?: string }) {
    const r = await this.onGeneration(
      sessionId,
      requestId,
      { type: 'Reject', code: 'invalid_request', message, ...place },
      { channel: place.channel ?? 'unknown', provider: NOT_RUN },
    );
    return { recorded: r.appended };
  }

  /** Moves the generation forward until it is settled, waiting, or held by another live lease. */
  async drive(sessionId: string, shutdown?: AbortSignal): Promise<DriveOutcome> {
    const stream = generationStream(sessionId);
    for (let i = 0; i < MAX_STEPS; i++) {
      const { state } = await this.deps.repo.load(GENERATION, stream);
      const now = this.deps.clock();
      const step = nextStep(state, now);
      if (step.kind === 'missing') return { kind: 'missing' };
      if (step.kind === 'settle') {
        await this.settle(sessionId, state, step.status);
        return { kind: 'settled', status: step.status };
      }
      const req = state.request!;
      if (step.kind === 'charge') {
        await this.chargeRequested(sessionId, req);
        continue;
      }
      // Shutting down: nothing new starts here; recovery picks the generation up again.
      if (shutdown?.aborted) return { kind: 'released' };
      if (step.kind === 'wait') {
        // A rate-limit retry of an uninstalled store's generation is not waited for: it ends now.
        if ((await this.cancelIfUninstalled(sessionId)) !== 'retry_scheduled') continue;
        return { kind: 'waiting', until: step.until };
      }
      if (step.kind === 'leased') return { kind: 'leased', until: step.until };
      if ((await this.claimAndRun(sessionId, req, step.command, now, shutdown)) === 'released') return { kind: 'released' };
    }
    throw new Error(`generation ${sessionId}: no progress after ${MAX_STEPS} steps`);
  }

  /**
   * Ends a queued generation whose store is uninstalled, without running anything: a requested one is rejected, a
   * charged or retry-waiting one fails, and its hold is returned (overage: refund due). A running one is left to its
   * attempt (the platform leaves `processing` sessions alone too). Returns where it stands.
   */
  async cancelIfUninstalled(sessionId: string): Promise<GenerationState['status']> {
    const stream = generationStream(sessionId);
    for (let i = 0; i < 3; i++) {
      const { state } = await this.deps.repo.load(GENERATION, stream);
      const req = state.request;
      if (!req) return state.status;
      const step = nextStep(state, this.deps.clock());
      if (step.kind === 'settle') {
        await this.settle(sessionId, state, step.status);
        return step.status;
      }
      if (step.kind === 'charge') await this.chargeRequested(sessionId, req);
      else if (state.status === 'charged' || state.status === 'retry_scheduled') {
        const uninstalled = await this.uninstalledRefusal(req.account);
        if (!uninstalled) return state.status;
        await this.onGeneration(sessionId, req.requestId, cancelCommand(uninstalled.message), { channel: req.channel, provider: NOT_RUN });
      } else return state.status;
    }
    return (await this.deps.repo.load(GENERATION, stream)).state.status;
  }

  /** The charge step alone, when it is due, and where the generation stands after it (HTTP intake answers 402 at once). */
  async charge(sessionId: string): Promise<GenerationState> {
    const stream = generationStream(sessionId);
    const first = await this.deps.repo.load(GENERATION, stream);
    if (nextStep(first.state, this.deps.clock()).kind === 'charge') await this.chargeRequested(sessionId, first.state.request!);
    const { state } = await this.deps.repo.load(GENERATION, stream);
    return { ...state };
  }

  /** Requested -> Charged (hold or overage taken, or found already taken) or Rejected. */
  private async chargeRequested(sessionId: string, req: GenerationRequested['data']): Promise<void> {
    const observed = { channel: req.channel, provider: NOT_RUN };
    const refusal = req.refusal ?? (await this.uninstalledRefusal(req.account));
    if (refusal) {
      await this.onGeneration(sessionId, req.requestId, { type: 'Reject', code: refusal.code, message: refusal.message }, observed);
      return;
    }
    const deductOnce = () =>
      this.onAccount(
        req.account,
        req.requestId,
        {
          type: 'Deduct',
          generationId: sessionId,
          amount: req.cost,
          requestId: req.requestId,
          acceptedAt: req.acceptedAt,
          now: this.deps.clock(),
          ...(req.overage ? { overage: req.overage } : {}),
        },
        observed,
      );
    let deduct = await deductOnce();
    const short = (d: typeof deduct) => !d.result.decision.ok && d.result.decision.code === 'insufficient_credits';
    if (short(deduct) && this.deps.pendingCredits && (await this.deps.pendingCredits())) deduct = await deductOnce();
    const decision = deduct.result.decision;
    if (!decision.ok) {
      await this.onGeneration(sessionId, req.requestId, { type: 'Reject', code: chargeRejection(decision.code), message: decision.message }, observed);
      return;
    }
    // No event and no hold: the generation was settled by another worker after our read; the next step sees it.
    if (!deduct.appended && !deduct.result.held) return;
    await this.onGeneration(sessionId, req.requestId, { type: 'MarkCharged', amount: req.cost }, observed);
  }

  /** Set when the account's store was uninstalled after intake: nothing more is charged for it. */
  private async uninstalledRefusal(account: string) {
    const store = await this.storeOf(account);
    if (!store?.state.uninstalledAt) return null;
    const message = `store ${store.storeId} was uninstalled at ${store.state.uninstalledAt}: no generation is charged for it`;
    return { code: 'store_uninstalled' as const, message };
  }

  /** Terminal -> hold captured (completed) or returned (failed, rejected). No-op when nothing is held. */
  private async settle(sessionId: string, state: GenerationState, status: TerminalStatus): Promise<void> {
    const req = state.request;
    if (!req) return; // rejected before it was ever requested: nothing was charged
    await this.onAccount(req.account, req.requestId, settleCommand(sessionId, status), { channel: req.channel, provider: NOT_RUN });
  }

  /** Charged, due or lease expired -> Started by us (then run), or Failed(worker_lost) with no attempts left. */
  private async claimAndRun(
    sessionId: string,
    req: GenerationRequested['data'],
    claim: 'Claim' | 'Recover',
    now: number,
    shutdown?: AbortSignal,
  ): Promise<'done' | 'released'> {
    const { workerId, options } = this.deps;
    // A queued generation of an uninstalled store does not run: it fails, and settle returns its hold.
    if (claim === 'Claim') {
      const uninstalled = await this.uninstalledRefusal(req.account);
      if (uninstalled) {
        await this.onGeneration(sessionId, req.requestId, cancelCommand(uninstalled.message), { channel: req.channel, provider: NOT_RUN });
        return 'done';
      }
    }
    const r = await this.onGeneration(
      sessionId,
      req.requestId,
      { type: claim, workerId, now, leaseMs: options.leaseMs, maxAttempts: options.maxAttempts },
      { channel: req.channel, provider: NOT_RUN },
    );
    const started = r.appended && r.result.ok ? r.result.events[0] : undefined;
    if (started?.type !== 'GenerationStarted' || started.data.workerId !== workerId) return 'done';
    if (claim === 'Recover') this.deps.logger.warn({ session_id: sessionId, attempt: started.data.attempt }, 'generation_recovered');
    return this.runAttempt(sessionId, req, started.data.attempt, Date.parse(started.data.leaseUntil), shutdown);
  }

  /** Started (by us) -> Completed, RetryScheduled, Failed, or Released on shutdown. */
  private async runAttempt(
    sessionId: string,
    req: GenerationRequested['data'],
    attempt: number,
    leaseUntil: number,
    shutdown?: AbortSignal,
  ): Promise<'done' | 'released'> {
    const { deps } = this;
    const log = deps.logger.child({ request_id: req.requestId, session_id: sessionId, channel: req.channel, attempt });
    deps.observer?.running(1);
    log.info('generation_processing');
    let outcome;
    try {
      outcome = await runGeneration(
        { ...deps, log, signedUrlTtlSeconds: deps.options.signedUrlTtlSeconds, max429Retries: deps.options.max429Retries },
        { sessionId, request: req, attempt, leaseUntil, leaseMarginMs: deps.options.leaseMarginMs ?? 5000, shutdown },
      );
    } finally {
      deps.observer?.running(-1);
    }
    const r = await this.onGeneration(sessionId, req.requestId, outcome.command, { channel: req.channel, provider: outcome.provider });
    if (!r.result.ok) {
      log.warn({ reason: r.result.message }, 'generation_outcome_discarded');
      return 'done';
    }
    const event = r.result.events[0];
    if (!r.appended || !event) return 'done';
    if (event.type === 'GenerationCompleted') log.info({ timings: event.data.timings, provider: outcome.provider }, 'generation_completed');
    else if (event.type === 'RetryScheduled') log.warn({ not_before: event.data.notBefore }, 'generation_retry_scheduled');
    else if (event.type === 'GenerationFailed') log.warn({ code: event.data.code, error: event.data.message }, 'generation_failed');
    else if (event.type === 'GenerationReleased') {
      log.info('generation_released');
      return 'released';
    }
    return 'done';
  }
}

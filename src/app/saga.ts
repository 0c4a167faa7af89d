// The generation saga (ledger.md "The saga"): one process manager whose every step is idempotent and resumable.
// `drive(sessionId)` reads where a generation stands and moves it forward until it is settled, waiting (a retry not
// yet due), or held by another worker's live lease. Any worker may drive any generation at any time; optimistic
// concurrency on both streams decides every race, and deterministic event ids make a retried append recognisable.
import { decideAccount, type AccountDecision } from '../domain/account.ts';
import type { Channel, GenerationCompleted, GenerationRequested } from '../domain/events.ts';
import {
  decideGeneration,
  isClaimable,
  isLeaseExpired,
  isTerminal,
  type GenerationCommand,
  type GenerationDecision,
  type GenerationState,
  type TerminalStatus,
} from '../domain/generation.ts';
import { resultPath } from '../domain/resultPath.ts';
import { accountStream, deterministicEventId, generationStream, parseAccountId } from '../domain/streams.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { ACCOUNT, GENERATION, type AggregateRepository } from './aggregates.ts';
import type { EventMeta } from './ports/eventStore.ts';
import {
  PipelineError,
  USER_MESSAGES,
  type ImageGenerator,
  type InputImages,
  type ResultStore,
} from './ports/pipeline.ts';

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
  metrics?: Metrics;
  options: SagaOptions;
}

export type DriveOutcome =
  | { kind: 'settled'; status: TerminalStatus }
  | { kind: 'waiting'; until: number }
  | { kind: 'leased'; until: number }
  | { kind: 'released' }
  | { kind: 'missing' };

export type RequestInput = Omit<GenerationRequested['data'], 'acceptedAt'>;

const MAX_STEPS = 32;

/** Event id of a saga step: deterministic per stream, step and attempt (and worker for claims). */
const stepId = (stream: string, step: string, attempt = 0) => deterministicEventId(stream, step, attempt);

function generationEventId(stream: string, c: GenerationCommand, state: GenerationState): string {
  switch (c.type) {
    case 'Request':
      return stepId(stream, 'requested');
    case 'MarkCharged':
      return stepId(stream, 'charged');
    case 'Reject':
      return stepId(stream, 'rejected');
    case 'Claim':
    case 'Recover':
      // Two workers claiming the same attempt must produce different ids, or one would "replay" the other's claim.
      return stepId(stream, `started:${c.workerId}`, state.attempt + 1);
    case 'Complete':
      return stepId(stream, 'completed', c.attempt);
    case 'ScheduleRetry':
      return stepId(stream, 'retry', c.attempt);
    case 'Release':
      return stepId(stream, `released:${c.workerId}`, c.attempt);
    case 'Fail':
      return stepId(stream, 'failed', c.attempt);
  }
}

export class GenerationSaga {
  constructor(private readonly d: SagaDeps) {}

  private meta(requestId: string, causation: string): EventMeta {
    return {
      requestId,
      causationId: causation,
      correlationId: requestId,
      workerId: this.d.workerId,
      occurredAt: new Date(this.d.clock()).toISOString(),
    };
  }

  /** Appends a generation decision with the revision read, retrying on conflict. */
  private async onGeneration(sessionId: string, requestId: string, command: GenerationCommand) {
    const stream = generationStream(sessionId);
    return this.d.repo.handle(
      GENERATION,
      stream,
      ({ state, revision }) => {
        const decision: GenerationDecision = decideGeneration(state, command);
        const events = decision.ok ? decision.events : [];
        // A Claim may decide GenerationFailed(worker_lost) instead of a start: give it the failure step's id.
        const ids = events.map((e) =>
          e.type === 'GenerationFailed' && (command.type === 'Claim' || command.type === 'Recover')
            ? stepId(stream, 'lost', state.attempt)
            : generationEventId(stream, command, state),
        );
        return { events, ids, result: { decision, stateBefore: state.status, revision } };
      },
      this.meta(requestId, `${command.type}:${sessionId}`),
    );
  }

  private async onAccount(account: string, requestId: string, step: string, decide: Parameters<typeof decideAccount>[1]) {
    const stream = accountStream(account);
    return this.d.repo.handle(
      ACCOUNT,
      stream,
      ({ state }) => {
        const decision: AccountDecision = decideAccount(state, decide);
        const events = decision.ok ? decision.events : [];
        return { events, ids: events.map(() => stepId(stream, step)), result: { decision, held: decide.type === 'Deduct' && decide.generationId in state.open } };
      },
      this.meta(requestId, `${decide.type}:${step}`),
    );
  }

  /** Intake: records the request once. A duplicate delivery finds the stream and changes nothing. */
  async request(input: RequestInput): Promise<{ created: boolean }> {
    const data: GenerationRequested['data'] = { ...input, acceptedAt: new Date(this.d.clock()).toISOString() };
    const r = await this.onGeneration(input.sessionId, input.requestId, { type: 'Request', data });
    return { created: r.appended };
  }

  /** An invalid task that still names a session: record it as rejected so the web app sees it fail. */
  async rejectInvalid(sessionId: string, requestId: string, message: string, place: { channel?: Channel; account?: string }) {
    const r = await this.onGeneration(sessionId, requestId, { type: 'Reject', code: 'invalid_request', message, ...place });
    if (r.appended) this.count('rejected', place.channel ?? 'unknown', 'none', 'invalid_request');
    return { recorded: r.appended };
  }

  /** Moves the generation forward until it is settled, waiting, or held by another live lease. */
  async drive(sessionId: string, signal?: AbortSignal): Promise<DriveOutcome> {
    const stream = generationStream(sessionId);
    for (let step = 0; step < MAX_STEPS; step++) {
      const { state } = await this.d.repo.load(GENERATION, stream);
      const now = this.d.clock();
      const req = state.request;
      if (state.status === 'none') return { kind: 'missing' };
      if (isTerminal(state)) {
        await this.settle(sessionId, state);
        return { kind: 'settled', status: state.status };
      }
      if (!req) return { kind: 'missing' };
      if (state.status === 'requested') {
        await this.charge(sessionId, req);
        continue;
      }
      if (signal?.aborted) return { kind: 'released' };
      if (state.status === 'retry_scheduled' && !isClaimable(state, now)) return { kind: 'waiting', until: Date.parse(state.notBefore!) };
      if (state.status === 'started' && !isLeaseExpired(state, now)) return { kind: 'leased', until: Date.parse(state.leaseUntil!) };

      const claim: GenerationCommand =
        state.status === 'started'
          ? { type: 'Recover', workerId: this.d.workerId, now, leaseMs: this.d.options.leaseMs, maxAttempts: this.d.options.maxAttempts }
          : { type: 'Claim', workerId: this.d.workerId, now, leaseMs: this.d.options.leaseMs, maxAttempts: this.d.options.maxAttempts };
      const r = await this.onGeneration(sessionId, req.requestId, claim);
      const started = r.appended && r.result.decision.ok ? r.result.decision.events[0] : undefined;
      if (started?.type === 'GenerationStarted' && started.data.workerId === this.d.workerId) {
        if (claim.type === 'Recover') this.d.logger.warn({ session_id: sessionId, attempt: started.data.attempt }, 'generation_recovered');
        const ran = await this.run(sessionId, req, started.data.attempt, Date.parse(started.data.leaseUntil), signal);
        if (ran === 'released') return { kind: 'released' };
      } else if (started?.type === 'GenerationFailed') {
        this.count('failed', req.channel, 'none', 'worker_lost');
      }
    }
    throw new Error(`generation ${sessionId}: no progress after ${MAX_STEPS} steps`);
  }

  /** Runs the charge step now if it is due (HTTP intake answers 402 at once) and returns where the generation stands. */
  async chargeNow(sessionId: string): Promise<GenerationState> {
    const stream = generationStream(sessionId);
    const first = await this.d.repo.load(GENERATION, stream);
    if (first.state.status === 'requested' && first.state.request) await this.charge(sessionId, first.state.request);
    const { state } = await this.d.repo.load(GENERATION, stream);
    return { ...state };
  }

  /** Requested -> Charged (hold taken, or found already taken) or Rejected. */
  private async charge(sessionId: string, req: GenerationRequested['data']): Promise<void> {
    const deduct = await this.onAccount(req.account, req.requestId, `deduct:${sessionId}`, {
      type: 'Deduct',
      generationId: sessionId,
      amount: req.cost,
      requestId: req.requestId,
      acceptedAt: req.acceptedAt,
      now: this.d.clock(),
    });
    const decision = deduct.result.decision;
    if (!decision.ok) {
      const code = decision.code === 'charge_window_expired' ? 'charge_window_expired' : 'insufficient_credits';
      const r = await this.onGeneration(sessionId, req.requestId, { type: 'Reject', code, message: decision.message });
      if (r.appended) this.count('rejected', req.channel, 'none', code);
      return;
    }
    if (deduct.appended) this.d.metrics?.credits.inc({ movement: 'deducted' }, req.cost);
    // No event and no hold: the generation was settled by another worker after our read; the next step sees it.
    if (!deduct.appended && !deduct.result.held) return;
    await this.onGeneration(sessionId, req.requestId, { type: 'MarkCharged', amount: req.cost });
  }

  /** Terminal -> hold captured (completed) or returned (failed, rejected). No-op when nothing is held. */
  private async settle(sessionId: string, state: GenerationState): Promise<void> {
    const req = state.request;
    if (!req) return;
    const completed = state.status === 'completed';
    const r = await this.onAccount(
      req.account,
      req.requestId,
      `${completed ? 'capture' : 'refund'}:${sessionId}`,
      completed ? { type: 'Capture', generationId: sessionId } : { type: 'Refund', generationId: sessionId, reason: `generation_${state.status}` },
    );
    if (r.appended) this.d.metrics?.credits.inc({ movement: completed ? 'captured' : 'refunded' }, req.cost);
  }

  /** Started (by us) -> Completed, RetryScheduled, Failed, or Released on shutdown. */
  private async run(
    sessionId: string,
    req: GenerationRequested['data'],
    attempt: number,
    leaseUntil: number,
    shutdown?: AbortSignal,
  ): Promise<'done' | 'released'> {
    const log = this.d.logger.child({ request_id: req.requestId, session_id: sessionId, channel: req.channel, attempt });
    const m = this.d.metrics;
    const margin = this.d.options.leaseMarginMs ?? 5000;
    const leaseSignal = AbortSignal.timeout(Math.max(1, leaseUntil - this.d.clock() - margin));
    const signal = shutdown ? AbortSignal.any([leaseSignal, shutdown]) : leaseSignal;
    const ctx = { requestId: req.requestId, signal };
    m?.inFlight.inc();
    log.info('generation_processing');
    let outcome: GenerationCommand;
    let provider = this.d.generator.provider;
    try {
      const prepared = await this.d.images.prepare(req.imageUrls, ctx);
      const t0 = performance.now();
      const image = await this.d.generator.generate({ images: prepared.images, prompt: req.prompt }, ctx);
      const generateMs = performance.now() - t0;
      provider = image.provider;
      const path = resultPath(req.channel, parseAccountId(req.account), sessionId);
      const t1 = performance.now();
      await this.d.results.put(path, image.bytes, image.contentType, ctx);
      const resultUrl = await this.d.results.signedUrl(path, this.d.options.signedUrlTtlSeconds, ctx);
      const uploadMs = performance.now() - t1;
      const totalMs = Math.max(0, this.d.clock() - Date.parse(req.requestedAt));
      const data: GenerationCompleted['data'] = {
        resultPath: path,
        resultUrl,
        contentType: image.contentType,
        provider: image.provider,
        usage: image.usage,
        costUsd: image.costUsd,
        timings: {
          downloadMs: Math.round(prepared.downloadMs),
          resizeMs: Math.round(prepared.resizeMs),
          generateMs: Math.round(generateMs),
          uploadMs: Math.round(uploadMs),
          totalMs: Math.round(totalMs),
        },
      };
      outcome = { type: 'Complete', attempt, data };
    } catch (err) {
      if (shutdown?.aborted && !leaseSignal.aborted) {
        outcome = { type: 'Release', attempt, workerId: this.d.workerId, reason: 'worker_shutdown' };
      } else if (err instanceof PipelineError && err.code === 'rate_limited') {
        outcome = {
          type: 'ScheduleRetry',
          attempt,
          now: this.d.clock(),
          retryAfterMs: Math.max(10_000, err.options.retryAfterMs ?? 10_000),
          reason: err.message,
          max429Retries: this.d.options.max429Retries,
        };
      } else if (err instanceof PipelineError) {
        outcome = { type: 'Fail', attempt, code: err.code, message: err.message, userMessage: err.userMessage };
      } else if (leaseSignal.aborted) {
        outcome = { type: 'Fail', attempt, code: 'upstream_timeout', message: 'the run reached the end of its lease', userMessage: USER_MESSAGES.upstream_timeout };
      } else {
        log.error({ err }, 'generation_internal_error');
        outcome = { type: 'Fail', attempt, code: 'internal_error', message: String((err as Error)?.message ?? err), userMessage: USER_MESSAGES.internal_error };
      }
    } finally {
      m?.inFlight.dec();
    }
    const r = await this.onGeneration(sessionId, req.requestId, outcome);
    if (!r.result.decision.ok) {
      log.warn({ reason: r.result.decision.message }, 'generation_outcome_discarded');
      return 'done';
    }
    const event = r.result.decision.events[0];
    if (!r.appended || !event) return 'done';
    switch (event.type) {
      case 'GenerationCompleted': {
        const t = event.data.timings;
        m?.stageSeconds.observe({ stage: 'download' }, t.downloadMs / 1000);
        m?.stageSeconds.observe({ stage: 'resize' }, t.resizeMs / 1000);
        m?.stageSeconds.observe({ stage: 'generate' }, t.generateMs / 1000);
        m?.stageSeconds.observe({ stage: 'upload' }, t.uploadMs / 1000);
        m?.stageSeconds.observe({ stage: 'queue_to_done' }, t.totalMs / 1000);
        if (event.data.costUsd) m?.costUsd.inc({ provider }, event.data.costUsd);
        this.count('completed', req.channel, provider, 'none');
        log.info({ timings: t, provider }, 'generation_completed');
        break;
      }
      case 'RetryScheduled':
        this.count('retry_scheduled', req.channel, provider, 'rate_limited');
        log.warn({ not_before: event.data.notBefore }, 'generation_retry_scheduled');
        break;
      case 'GenerationFailed':
        this.count('failed', req.channel, provider, event.data.code);
        log.warn({ code: event.data.code, error: event.data.message }, 'generation_failed');
        break;
      case 'GenerationReleased':
        log.info('generation_released');
        return 'released';
    }
    return 'done';
  }

  private count(outcome: string, channel: string, provider: string, errorCode: string) {
    this.d.metrics?.generations.inc({ outcome, channel, provider, error_code: errorCode });
  }
}

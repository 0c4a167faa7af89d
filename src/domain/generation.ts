// The generation decider: one try-on request's lifecycle (ledger.md, "The saga"). Pure.
import type {
  GenerationCompleted,
  GenerationEvent,
  GenerationRequested,
  RejectionCode,
} from './events.ts';
import { assertNever } from './exhaustive.ts';

export type GenerationStatus =
  | 'none'
  | 'requested'
  | 'charged'
  | 'started'
  | 'retry_scheduled'
  | 'completed'
  | 'failed'
  | 'rejected';

/** A terminal generation accepts no further event. */
export const TERMINAL_STATUSES = ['completed', 'failed', 'rejected'] as const satisfies readonly GenerationStatus[];
export type TerminalStatus = (typeof TERMINAL_STATUSES)[number];
export const isTerminalStatus = (status: GenerationStatus): status is TerminalStatus =>
  (TERMINAL_STATUSES as readonly GenerationStatus[]).includes(status);

/** What the web app shows (`generation_sessions.status`) for each ledger status (ledger.md, session-status). */
export type SessionStatus = 'queued' | 'processing' | 'completed' | 'failed';
export const SESSION_STATUS: Record<GenerationStatus, SessionStatus> = {
  none: 'queued',
  requested: 'queued',
  charged: 'queued',
  retry_scheduled: 'queued',
  started: 'processing',
  completed: 'completed',
  failed: 'failed',
  rejected: 'failed',
};
/** The web-app statuses a session ends in. */
export const TERMINAL_SESSION_STATUSES: readonly SessionStatus[] = [...new Set(TERMINAL_STATUSES.map((s) => SESSION_STATUS[s]))];

/** The lifecycle (ledger.md, "The saga"): the status a generation is in after each event. */
export function statusAfter(e: GenerationEvent): Exclude<GenerationStatus, 'none'> {
  switch (e.type) {
    case 'GenerationRequested':
      return 'requested';
    case 'GenerationCharged':
    case 'GenerationReleased': // given back unfinished (shutdown): claimable again, as after the charge
      return 'charged';
    case 'GenerationStarted':
      return 'started';
    case 'RetryScheduled':
      return 'retry_scheduled';
    case 'GenerationCompleted':
      return 'completed';
    case 'GenerationFailed':
      return 'failed';
    case 'GenerationRejected':
      return 'rejected';
    default:
      return assertNever(e, 'generation event');
  }
}

export interface GenerationState {
  status: GenerationStatus;
  request: GenerationRequested['data'] | null;
  /** claims so far (GenerationStarted count) */
  attempt: number;
  /** RetryScheduled count (upstream 429s) */
  rateLimitRetries: number;
  workerId: string | null;
  leaseUntil: string | null;
  notBefore: string | null;
  charged: boolean;
}

/** The shape version of GenerationState (see ACCOUNT_STATE_VERSION). */
export const GENERATION_STATE_VERSION = 1;

export const initialGeneration = (): GenerationState => ({
  status: 'none',
  request: null,
  attempt: 0,
  rateLimitRetries: 0,
  workerId: null,
  leaseUntil: null,
  notBefore: null,
  charged: false,
});

export type GenerationCommand =
  | { type: 'Request'; data: GenerationRequested['data'] }
  | { type: 'MarkCharged'; amount: number }
  | { type: 'Reject'; code: RejectionCode; message: string; channel?: 'b2b' | 'b2c'; account?: string }
  | { type: 'Claim'; workerId: string; now: number; leaseMs: number; maxAttempts: number }
  | { type: 'Complete'; attempt: number; data: GenerationCompleted['data'] }
  | { type: 'ScheduleRetry'; attempt: number; now: number; retryAfterMs: number; reason: string; max429Retries: number }
  | { type: 'Fail'; attempt: number; code: string; message: string; userMessage: string }
  | { type: 'Release'; attempt: number; workerId: string; reason: string }
  | { type: 'Recover'; workerId: string; now: number; leaseMs: number; maxAttempts: number }
  /** A queued (charged, not running) generation that must not run any more, e.g. its store was uninstalled. */
  | { type: 'Cancel'; code: string; message: string; userMessage: string };

export type GenerationRejectionCode = 'not_allowed' | 'not_due' | 'lease_active' | 'stale_attempt';
export type GenerationDecision =
  | { ok: true; events: GenerationEvent[] }
  | { ok: false; code: GenerationRejectionCode; message: string };

const accept = (...events: GenerationEvent[]): GenerationDecision => ({ ok: true, events });
const refuse = (code: GenerationRejectionCode, message: string): GenerationDecision => ({ ok: false, code, message });

export const isTerminal = (s: GenerationState): s is GenerationState & { status: TerminalStatus } => isTerminalStatus(s.status);

/** Whether a worker may start (or restart) it now. */
export function isClaimable(s: GenerationState, now: number): boolean {
  return s.status === 'charged' || (s.status === 'retry_scheduled' && now >= Date.parse(s.notBefore!));
}

export function isLeaseExpired(s: GenerationState, now: number): boolean {
  return s.status === 'started' && now >= Date.parse(s.leaseUntil!);
}

const WORKER_LOST_MESSAGE = 'The generation did not complete in time. Your credit has been refunded.';

function start(s: GenerationState, workerId: string, now: number, leaseMs: number): GenerationDecision {
  return accept({
    type: 'GenerationStarted',
    data: { attempt: s.attempt + 1, workerId, leaseUntil: new Date(now + leaseMs).toISOString() },
  });
}

export function decideGeneration(s: GenerationState, c: GenerationCommand): GenerationDecision {
  // A terminal generation accepts nothing; a duplicate request for any existing one is a no-op.
  if (c.type === 'Request') return s.status === 'none' ? accept({ type: 'GenerationRequested', data: c.data }) : accept();
  if (isTerminal(s)) return accept();
  switch (c.type) {
    case 'MarkCharged':
      if (s.status !== 'requested') return s.charged ? accept() : refuse('not_allowed', `cannot charge a ${s.status} generation`);
      return accept({ type: 'GenerationCharged', data: { amount: c.amount } });
    case 'Reject':
      if (s.status !== 'requested' && !(s.status === 'none' && c.code === 'invalid_request')) {
        return refuse('not_allowed', `cannot reject a ${s.status} generation`);
      }
      return accept({
        type: 'GenerationRejected',
        data: { code: c.code, message: c.message, ...(c.channel ? { channel: c.channel } : {}), ...(c.account ? { account: c.account } : {}) },
      });
    case 'Claim':
      if (!isClaimable(s, c.now)) {
        return refuse(s.status === 'retry_scheduled' ? 'not_due' : 'not_allowed', `cannot claim a ${s.status} generation`);
      }
      if (s.attempt >= c.maxAttempts) {
        return accept({
          type: 'GenerationFailed',
          data: { code: 'worker_lost', message: `no attempts left after ${s.attempt}`, userMessage: WORKER_LOST_MESSAGE },
        });
      }
      return start(s, c.workerId, c.now, c.leaseMs);
    case 'Recover':
      if (s.status !== 'started') return refuse('not_allowed', `nothing to recover in a ${s.status} generation`);
      if (!isLeaseExpired(s, c.now)) return refuse('lease_active', `lease held by ${s.workerId} until ${s.leaseUntil}`);
      if (s.attempt >= c.maxAttempts) {
        return accept({
          type: 'GenerationFailed',
          data: { code: 'worker_lost', message: `lease expired on attempt ${s.attempt} of ${c.maxAttempts}`, userMessage: WORKER_LOST_MESSAGE },
        });
      }
      return start(s, c.workerId, c.now, c.leaseMs);
    case 'Cancel':
      if (s.status !== 'charged' && s.status !== 'retry_scheduled') return refuse('not_allowed', `cannot cancel a ${s.status} generation`);
      return accept({ type: 'GenerationFailed', data: { code: c.code, message: c.message, userMessage: c.userMessage } });
    case 'Complete':
    case 'ScheduleRetry':
    case 'Release':
    case 'Fail': {
      // Only the attempt that holds the generation reports its outcome; a recovered attempt's result is discarded.
      if (s.status !== 'started' || s.attempt !== c.attempt) {
        return refuse('stale_attempt', `attempt ${c.attempt} no longer holds the generation (${s.status}, attempt ${s.attempt})`);
      }
      if (c.type === 'Complete') return accept({ type: 'GenerationCompleted', data: c.data });
      if (c.type === 'Fail') return accept({ type: 'GenerationFailed', data: { code: c.code, message: c.message, userMessage: c.userMessage } });
      if (c.type === 'Release') return accept({ type: 'GenerationReleased', data: { attempt: c.attempt, workerId: c.workerId, reason: c.reason } });
      if (s.rateLimitRetries >= c.max429Retries) {
        return accept({
          type: 'GenerationFailed',
          data: {
            code: 'rate_limited',
            message: `upstream rate limited after ${s.rateLimitRetries} retries: ${c.reason}`,
            userMessage: 'The image service is busy. Your credit has been refunded; please try again in a few minutes.',
          },
        });
      }
      return accept({
        type: 'RetryScheduled',
        data: { attempt: s.attempt, notBefore: new Date(c.now + c.retryAfterMs).toISOString(), reason: c.reason },
      });
    }
  }
}

/** Takes ownership of `s` (updated in place), like evolveAccount. */
export function evolveGeneration(s: GenerationState, e: GenerationEvent): GenerationState {
  s.status = statusAfter(e);
  switch (e.type) {
    case 'GenerationRequested':
      s.request = e.data;
      break;
    case 'GenerationCharged':
      s.charged = true;
      break;
    case 'GenerationStarted':
      s.attempt = e.data.attempt;
      s.workerId = e.data.workerId;
      s.leaseUntil = e.data.leaseUntil;
      break;
    case 'RetryScheduled':
      s.rateLimitRetries += 1;
      s.notBefore = e.data.notBefore;
      s.leaseUntil = null;
      break;
    case 'GenerationReleased':
      s.leaseUntil = null;
      break;
    case 'GenerationCompleted':
    case 'GenerationFailed':
    case 'GenerationRejected':
      break;
    default:
      assertNever(e, 'generation event');
  }
  return s;
}

export function foldGeneration(events: Iterable<GenerationEvent>, from: GenerationState = initialGeneration()): GenerationState {
  let s = from;
  for (const e of events) s = evolveGeneration(s, e);
  return s;
}

// The two projections as pure reducers over recorded events. The same code runs live (per batch, over the rows the
// batch touches), in a rebuild, and in the pure fold used by tests and `wearon verify`.
import { comparePositions, type RecordedEvent } from '../app/ports/eventStore.ts';
import { decodeRecorded, type LedgerRecord } from '../app/recorded.ts';
import type { GenerationEvent, GenerationRejected } from '../domain/events.ts';
import { accountMovement, change } from '../domain/movement.ts';
import { accountIdOf, parseAccountId, type AccountRef } from '../domain/streams.ts';
import { SESSION_STATUS, TERMINAL_SESSION_STATUSES, statusAfter } from '../domain/generation.ts';
import { assertNever } from '../domain/exhaustive.ts';
import type { Row, TableSpec } from './readModel.ts';
import { ACCOUNTS, LEDGER_ENTRIES, PUBLISH_ACCOUNTS, PUBLISH_SESSIONS, SESSIONS } from './schema.ts';

export type ProjectionName = 'session-status' | 'credit-balances';
export const PROJECTION_NAMES: readonly ProjectionName[] = ['session-status', 'credit-balances'];

export interface Projection {
  name: ProjectionName;
  /** the state table, one row per key */
  state: TableSpec;
  /** append-only rows keyed by event id (ledger entries), if any */
  entries?: TableSpec;
  /** statements copying state rows into the platform tables (schema.ts tokens) */
  publish: readonly string[];
  keyOf(r: LedgerRecord): string | null;
  /** Pure: the next state row (a new object when changed, `prev` when the event changes nothing); may emit entries. */
  reduce(prev: Row | undefined, r: LedgerRecord, entries: Row[]): Row | undefined;
}

const iso = (t: string) => new Date(t).toISOString();
const notApplied = (prev: Row, r: LedgerRecord) =>
  comparePositions(r.recorded.position, { commit: BigInt(prev.last_commit as number), prepare: BigInt(prev.last_prepare as number) }) <= 0;
const pos = (r: LedgerRecord) => ({ last_commit: Number(r.recorded.position.commit), last_prepare: Number(r.recorded.position.prepare) });

/** User-facing texts for outcomes the event does not word itself. */
export const REJECTION_MESSAGES: Record<string, string> = {
  insufficient_credits: 'Insufficient credits to create generation',
  invalid_request: 'Invalid generation request',
  charge_window_expired: 'Generation request expired before it could be charged',
};
export const RETRY_MESSAGE = 'Rate limited, retrying...';
const TERMINAL: ReadonlySet<string> = new Set(TERMINAL_SESSION_STATUSES);

export const sessionStatus: Projection = {
  name: 'session-status',
  state: SESSIONS,
  publish: PUBLISH_SESSIONS,
  keyOf: (r) => (r.stream === 'generation' ? r.sessionId : null),
  reduce(prev, r) {
    if (r.stream !== 'generation') return prev;
    const { event, sessionId } = r;
    const occurredAt = r.recorded.metadata.occurredAt;
    if (event.type === 'GenerationRequested') {
      // A duplicate request never resets a session (it only advances the row's position, as every applied event does).
      if (prev) return notApplied(prev, r) ? prev : { ...prev, ...pos(r) };
      const d = event.data;
      return {
        session_id: sessionId,
        channel: d.channel,
        ...ownerColumns(parseAccountId(d.account)),
        request_id: d.requestId ?? null,
        model_image_url: d.imageUrls[0] ?? '',
        outfit_image_url: d.imageUrls[1] ?? null,
        prompt: d.prompt,
        cost: d.cost,
        requested_at: iso(d.requestedAt),
        ...statusFields(SESSION_STATUS[statusAfter(event)]),
        ...pos(r),
      };
    }
    if (!prev && event.type === 'GenerationRejected') return rejectedUnrequested(r, event);
    // Events of an unknown session (no Requested seen) or after a terminal one change nothing.
    if (!prev || notApplied(prev, r) || TERMINAL.has(prev.status as string)) return prev;
    return { ...prev, ...statusFields(SESSION_STATUS[statusAfter(event)]), ...outcomeColumns(event, occurredAt), ...pos(r) };
  },
};

/** The columns an event sets besides the status (statusFields resets them all first). */
function outcomeColumns(e: GenerationEvent, occurredAt: string): Row {
  switch (e.type) {
    case 'GenerationRequested':
    case 'GenerationCharged':
    case 'GenerationStarted':
    case 'GenerationReleased':
      return {};
    case 'RetryScheduled':
      return { error_code: 'rate_limited', error_message: RETRY_MESSAGE };
    case 'GenerationCompleted': {
      const d = e.data;
      return {
        generated_image_url: d.resultUrl ?? d.resultPath,
        input_tokens: d.usage?.inputTokens ?? null,
        output_tokens: d.usage?.outputTokens ?? null,
        estimated_cost_usd: d.costUsd == null ? null : Math.round(d.costUsd * 1e6) / 1e6,
        processing_time_ms: Math.round(d.timings.totalMs),
        completed_at: iso(occurredAt),
      };
    }
    case 'GenerationFailed':
      return { error_code: e.data.code, error_message: e.data.userMessage, completed_at: iso(occurredAt) };
    case 'GenerationRejected':
      return { error_code: e.data.code, error_message: rejectionMessage(e.data.code), completed_at: iso(occurredAt) };
    default:
      return assertNever(e, 'generation event');
  }
}

const rejectionMessage = (code: string) => REJECTION_MESSAGES[code] ?? 'Generation request rejected';

/** The row's owner: user or store id, and the shopper hash of a resell account. */
function ownerColumns(ref: AccountRef): { account: string; owner_id: string; shopper_hash: string | null } {
  const [ownerId, shopperHash] = ref.kind === 'shopper' ? ref.id.split('.') : [ref.id, null];
  return { account: accountIdOf(ref), owner_id: ownerId!, shopper_hash: shopperHash ?? null };
}

/**
 * An invalid request rejected before any GenerationRequested carries channel and account so the session can still be
 * marked failed (the web app inserted its row); image URLs and prompt are unknown, stored as ''.
 */
function rejectedUnrequested(r: LedgerRecord & { stream: 'generation' }, rejected: GenerationRejected): Row | undefined {
  const d = rejected.data;
  if (!d.channel || !d.account) return undefined;
  const occurredAt = r.recorded.metadata.occurredAt;
  return {
    session_id: r.sessionId,
    channel: d.channel,
    ...ownerColumns(parseAccountId(d.account)),
    request_id: null,
    model_image_url: '',
    outfit_image_url: null,
    prompt: '',
    cost: 0,
    requested_at: iso(occurredAt),
    ...statusFields(SESSION_STATUS[statusAfter(rejected)]),
    ...outcomeColumns(rejected, occurredAt),
    ...pos(r),
  };
}

/** Every status-dependent column, reset: a later step never inherits a stale message or result (BUG-13). */
function statusFields(status: string): Row {
  return {
    status,
    error_code: null,
    error_message: null,
    generated_image_url: null,
    input_tokens: null,
    output_tokens: null,
    estimated_cost_usd: null,
    processing_time_ms: null,
    completed_at: null,
  };
}

export const creditBalances: Projection = {
  name: 'credit-balances',
  state: ACCOUNTS,
  entries: LEDGER_ENTRIES,
  publish: PUBLISH_ACCOUNTS,
  keyOf: (r) => (r.stream === 'account' ? accountIdOf(r.account) : null),
  reduce(prev, r, entries) {
    if (r.stream !== 'account' || (prev && notApplied(prev, r))) return prev;
    const e = r.recorded;
    const m = accountMovement(r.event);
    const balance = ((prev?.balance as number | undefined) ?? 0) + change(m, 'balance');
    const held = ((prev?.held as number | undefined) ?? 0) + change(m, 'held');
    const ref = r.account;
    const owner = ownerColumns(ref);
    const occurredAt = iso(e.metadata.occurredAt);
    entries.push({
      event_id: e.id,
      global_commit: Number(e.position.commit),
      global_prepare: Number(e.position.prepare),
      account: owner.account,
      account_kind: ref.kind,
      owner_id: owner.owner_id,
      event_type: r.event.type,
      amount: change(m, 'balance'),
      credits: m.credits,
      balance_after: balance,
      held_after: held,
      generation_id: m.generationId,
      reference: m.reference ?? m.requestId, // a hold's reference is the request that took it
      reason: m.reason,
      occurred_at: occurredAt,
    });
    return {
      account: owner.account,
      kind: ref.kind,
      owner_id: owner.owner_id,
      shopper_hash: owner.shopper_hash,
      balance,
      // the platform's total_earned / total_purchased and total_spent (domain/movement.ts)
      granted: ((prev?.granted as number | undefined) ?? 0) + change(m, 'earned'),
      spent: ((prev?.spent as number | undefined) ?? 0) + change(m, 'spent'),
      held,
      updated_at: occurredAt,
      ...pos(r),
    };
  },
};

export const PROJECTIONS: Record<ProjectionName, Projection> = {
  'session-status': sessionStatus,
  'credit-balances': creditBalances,
};

export function projectionByName(name: string): Projection {
  const p = PROJECTIONS[name as ProjectionName];
  if (!p) throw new Error(`unknown projection ${JSON.stringify(name)}; known: ${PROJECTION_NAMES.join(', ')}`);
  return p;
}

export interface FoldResult {
  rows: Map<string, Row>;
  entries: Row[];
}

/** The pure fold: events (in log order) -> the rows a projection must hold. */
export function fold(p: Projection, events: Iterable<RecordedEvent>, into: FoldResult = { rows: new Map(), entries: [] }): FoldResult {
  for (const e of events) {
    const r = decodeRecorded(e);
    const key = r && p.keyOf(r);
    if (!r || key === null) continue;
    const prev = into.rows.get(key);
    const next = p.reduce(prev, r, into.entries);
    if (next && next !== prev) into.rows.set(key, next);
  }
  return into;
}

// session-status: one row per generation session (projected_sessions), published into the web app's
// generation_sessions (b2c) and store_generation_sessions (b2b). The status comes from the domain's lifecycle.
import type { LedgerRecord } from '../app/recorded.ts';
import type { GenerationEvent, GenerationRejected } from '../domain/events.ts';
import { assertNever } from '../domain/exhaustive.ts';
import { SESSION_STATUS, TERMINAL_SESSION_STATUSES, statusAfter } from '../domain/generation.ts';
import { GENERATION_STREAM_PREFIX, parseAccountId } from '../domain/streams.ts';
import { byKey, compare, columnNames, type Drift, type Loose } from './drift.ts';
import { atOrBefore, iso, notApplied, ownerColumns, pos, type Projection } from './projection.ts';
import type { Row } from './readModel.ts';
import { PUBLISH_SESSIONS, SESSIONS } from './schema.ts';

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
  reads: { streamPrefixes: [GENERATION_STREAM_PREFIX] },
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
        ...statusColumns(event, occurredAt),
        ...pos(r),
      };
    }
    if (!prev && event.type === 'GenerationRejected') return rejectedUnrequested(r, event);
    // Events of an unknown session (no Requested seen) or after a terminal one change nothing.
    if (!prev || notApplied(prev, r) || TERMINAL.has(prev.status as string)) return prev;
    return { ...prev, ...statusColumns(event, occurredAt), ...pos(r) };
  },
  async seed(tx, shadow, from) {
    // Session rows are a function of their last event: copy them and re-apply what follows `from`. Terminal rows accept
    // no later event, so they stay as they are.
    await tx.exec(`INSERT INTO ${shadow.state.name} SELECT * FROM ${SESSIONS.name}`, null);
    await tx.exec(
      `UPDATE ${shadow.state.name} SET last_commit = ${from.commit}, last_prepare = ${from.prepare}
       WHERE status NOT IN (${[...TERMINAL].map((s) => `'${s}'`).join(', ')}) AND NOT ${atOrBefore(from, 'last_commit', 'last_prepare')}`,
      null,
    );
  },
  async verify(expected, readModel) {
    const drifts: Drift[] = [];
    const who = (k: string) => ({ session: k });
    const rows = new Map([...expected.rows].map(([k, v]) => [k.toLowerCase(), v]));
    compare(drifts, 'session-status', SESSIONS.name, rows, byKey(await readModel.readAll(SESSIONS), 'session_id'), columnNames(SESSIONS), who, true);
    // The platform tables: only the columns the ledger decides, for every session it knows.
    const platform = (r: Loose) => ({ ...r, prompt_system: r.prompt, created_at: r.requested_at, credits_used: r.cost });
    const columns = ['status', 'error_message', 'generated_image_url', 'processing_time_ms', 'completed_at', 'input_tokens', 'output_tokens', 'estimated_cost_usd'];
    for (const [table, channel, owner] of [['generation_sessions', 'b2c', 'user_id'], ['store_generation_sessions', 'b2b', 'store_id']] as const) {
      const exp = new Map([...rows].filter(([, r]) => r.channel === channel).map(([k, r]) => [k, { ...platform(r), [owner]: r.owner_id }]));
      const act = byKey(await readModel.query(`SELECT * FROM ${table}`), 'id');
      compare(drifts, 'session-status', table, exp, act, [...columns, owner], who, false);
    }
    return drifts;
  },
};

/**
 * Every status-dependent column after `e`: all reset first, so a later step never inherits a stale message or result
 * (BUG-13), then what the event itself says. (Built in place: a spread per event is the costliest step of a replay.)
 */
function statusColumns(e: GenerationEvent, occurredAt: string): Row {
  const row: Row = {
    status: SESSION_STATUS[statusAfter(e)],
    error_code: null,
    error_message: null,
    generated_image_url: null,
    input_tokens: null,
    output_tokens: null,
    estimated_cost_usd: null,
    processing_time_ms: null,
    completed_at: null,
  };
  switch (e.type) {
    case 'GenerationRequested':
    case 'GenerationCharged':
    case 'GenerationStarted':
    case 'GenerationReleased':
      break;
    case 'RetryScheduled':
      row.error_code = 'rate_limited';
      row.error_message = RETRY_MESSAGE;
      break;
    case 'GenerationCompleted': {
      const d = e.data;
      row.generated_image_url = d.resultUrl ?? d.resultPath;
      row.input_tokens = d.usage?.inputTokens ?? null;
      row.output_tokens = d.usage?.outputTokens ?? null;
      row.estimated_cost_usd = d.costUsd == null ? null : Math.round(d.costUsd * 1e6) / 1e6;
      row.processing_time_ms = Math.round(d.timings.totalMs);
      row.completed_at = iso(occurredAt);
      break;
    }
    case 'GenerationFailed':
      row.error_code = e.data.code;
      row.error_message = e.data.userMessage;
      row.completed_at = iso(occurredAt);
      break;
    case 'GenerationRejected':
      row.error_code = e.data.code;
      row.error_message = rejectionMessage(e.data.code);
      row.completed_at = iso(occurredAt);
      break;
    default:
      assertNever(e, 'generation event');
  }
  return row;
}

const rejectionMessage = (code: string) => REJECTION_MESSAGES[code] ?? 'Generation request rejected';

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
    ...statusColumns(rejected, occurredAt),
    ...pos(r),
  };
}

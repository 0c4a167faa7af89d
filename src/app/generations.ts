// One generation over HTTP: accepting it (request and charge at once) and where it stands (GET /v1/generations/:id).
// Events are decoded and folded by the domain's rules.
import { decodeGenerationEvent } from '../domain/decode.ts';
import type { GenerationRejected } from '../domain/events.ts';
import { SESSION_STATUS, foldGeneration } from '../domain/generation.ts';
import { generationStream } from '../domain/streams.ts';
import type { EventStore } from './ports/eventStore.ts';
import type { ResultStore } from './ports/pipeline.ts';
import type { GenerationSaga, RequestInput } from './saga.ts';

export async function generationView(
  store: EventStore,
  results: ResultStore,
  sessionId: string,
  ctx: { requestId: string; signedUrlTtlSeconds: number },
) {
  const recorded = await store.readStream(generationStream(sessionId), { maxCount: 1000 });
  if (recorded.length === 0) return null;
  const events = recorded.map(decodeGenerationEvent);
  const state = foldGeneration(events);
  const last = recorded[recorded.length - 1]!;
  const completed = events.find((e) => e.type === 'GenerationCompleted')?.data;
  const failed = events.find((e) => e.type === 'GenerationFailed' || e.type === 'GenerationRejected');
  return {
    session_id: sessionId,
    status: SESSION_STATUS[state.status],
    ledger_status: state.status,
    channel: state.request?.channel ?? null,
    account: state.request?.account ?? null,
    requested_at: state.request?.requestedAt ?? null,
    updated_at: last.metadata.occurredAt,
    attempt: state.attempt,
    result_url: completed ? await results.signedUrl(completed.resultPath, ctx.signedUrlTtlSeconds, { requestId: ctx.requestId }) : null,
    content_type: completed?.contentType ?? null,
    provider: completed?.provider ?? null,
    cost: { credits: state.request?.cost ?? null, estimated_usd: completed?.costUsd ?? null, usage: completed?.usage ?? null },
    processing_time_ms: completed?.timings.totalMs ?? null,
    error: failed
      ? { code: failed.data.code, message: failed.type === 'GenerationFailed' ? failed.data.userMessage : failed.data.message }
      : null,
    timeline: recorded.map((e, i) => ({ revision: e.revision, type: events[i]!.type, at: e.metadata.occurredAt, worker_id: e.metadata.workerId })),
  };
}

/**
 * HTTP intake: records the request, runs the charge step at once, and says where the generation stands and, when it
 * was rejected, why (a lack of credits is answered 402 right away).
 */
export async function acceptGeneration(saga: GenerationSaga, store: EventStore, input: RequestInput) {
  const { created } = await saga.request(input);
  const state = await saga.charge(input.sessionId);
  const rejection = state.status === 'rejected' ? await rejectionOf(store, input.sessionId) : null;
  return { created, status: state.status, rejection };
}

/** The rejection a generation ended with, if its last event is one. */
async function rejectionOf(store: EventStore, sessionId: string): Promise<GenerationRejected['data'] | null> {
  const [last] = await store.readStream(generationStream(sessionId), { direction: 'backwards', maxCount: 1 });
  const event = last && decodeGenerationEvent(last);
  return event?.type === 'GenerationRejected' ? event.data : null;
}

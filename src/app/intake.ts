// Intake: turns a task payload (Redis or HTTP, one contract) into GenerationRequested. A task leaves the Redis
// processing list only after its request is durable in the ledger; bad payloads go to the dead-letter list with the
// reason, and, when they still name a session, are recorded as GenerationRejected(invalid_request).
import { accountOfTask, parseTaskPayload, type GenerationTaskPayload } from '../contract.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { rawDigest, type TaskQueue, type QueuedTask } from './ports/queue.ts';
import type { GenerationSaga, RequestInput } from './saga.ts';

/** A producer clock more than this far ahead is not trusted as the queue-entry time. */
const MAX_CLOCK_SKEW_MS = 5 * 60 * 1000;

export function requestFromTask(task: GenerationTaskPayload, cost: number, now: number): RequestInput {
  const created = Date.parse(task.created_at);
  const requestedAt = Number.isFinite(created) && created <= now + MAX_CLOCK_SKEW_MS ? new Date(created) : new Date(now);
  return {
    sessionId: task.session_id,
    taskId: task.task_id,
    channel: task.channel,
    account: accountOfTask(task),
    imageUrls: task.image_urls,
    prompt: task.prompt,
    requestId: task.request_id,
    payloadVersion: task.version,
    requestedAt: requestedAt.toISOString(),
    cost,
    ...(task.overage_charge_id ? { paddleCharge: task.overage_charge_id } : {}),
  };
}

export type IntakeResult =
  | { kind: 'accepted'; sessionId: string; created: boolean }
  | { kind: 'dead_lettered'; reason: string; sessionId?: string };

export interface IntakeDeps {
  saga: GenerationSaga;
  cost: number;
  clock: () => number;
  logger: Logger;
  metrics?: Metrics;
}

/** Records one raw queue element. Throws only when the ledger is unavailable (the task then stays unacknowledged). */
export async function recordQueuedTask(queue: TaskQueue, item: QueuedTask, d: IntakeDeps): Promise<IntakeResult> {
  d.metrics?.tasksTaken.inc({ source: 'redis' });
  const parsed = parseTaskPayload(item.raw);
  if (!parsed.ok) {
    const p = parsed.partial;
    const log = d.logger.child({ request_id: p?.request_id ?? 'unknown', session_id: p?.session_id, channel: p?.channel });
    if (p) {
      await d.saga.rejectInvalid(p.session_id, p.request_id ?? 'unknown', parsed.reason, {
        channel: p.channel,
        ...(p.account ? { account: p.account } : {}),
      });
    }
    await queue.deadLetter(item, parsed.reason);
    d.metrics?.deadLettered.inc({ reason: parsed.reason.startsWith('invalid JSON') ? 'invalid_json' : 'invalid_payload' });
    // Never the raw text (a resell payload holds the shopper's email): its size, digest (the dead-letter record carries
    // the same) and top-level keys say enough to find and tell it apart.
    log.warn({ reason: parsed.reason, ...rawDigest(item.raw), keys: topLevelKeys(item.raw) }, 'task_dead_lettered');
    return { kind: 'dead_lettered', reason: parsed.reason, ...(p ? { sessionId: p.session_id } : {}) };
  }
  const task = parsed.task;
  const { created } = await d.saga.request(requestFromTask(task, d.cost, d.clock()));
  await queue.ack(item);
  d.logger.info(
    { request_id: task.request_id, session_id: task.session_id, channel: task.channel, duplicate: !created },
    created ? 'task_received' : 'task_duplicate',
  );
  return { kind: 'accepted', sessionId: task.session_id, created };
}

/** The first keys of a JSON object payload (names only, cut short), or undefined. */
function topLevelKeys(raw: string): string[] | undefined {
  try {
    const json: unknown = JSON.parse(raw);
    if (typeof json !== 'object' || json === null || Array.isArray(json)) return undefined;
    return Object.keys(json).slice(0, 20).map((k) => k.slice(0, 64));
  } catch {
    return undefined;
  }
}

// The platform's queue producer as original-system.md §1 describes it (written from those facts, not copied): a
// camelCase `GenerationTaskPayload` turned snake_case key by key, JSON-serialised (undefined members omitted) and
// LPUSHed onto one list. Kept apart from src/contract.ts on purpose: the fixture must stay the platform's, so a change
// to the project's contract cannot silently change what the "platform" sends.
import type { Redis } from 'ioredis';

/** The platform's queue key (`REDIS_QUEUE_KEY`); tests pass their own unique key instead. */
export const PLATFORM_QUEUE_KEY = 'wearon:tasks:generation';
export const TASK_PAYLOAD_VERSION = 1;

/** The producer's default prompt: every B2C task, and B2B tasks without a merchant prompt (original-system.md §5.5). */
export const PRODUCER_DEFAULT_PROMPT = [
  'Virtual try-on: Using the provided images:',
  '- First image: Model (person to dress)',
  '- Second image (if provided): Outfit/clothes',
  '- Additional images (if provided): Accessories',
  '',
  'Generate a single portrait photo of the model wearing all provided items.',
  '',
  'Requirements:',
  "- Preserve the model's exact face, skin tone, hair, body",
  '- Natural clothing fit with realistic draping',
  '- Place accessories correctly (watch→wrist, necklace→neck, hat→head)',
  '- Professional fashion photography, natural lighting',
  '- Output ONE portrait (3:4 ratio)',
].join('\n');

/** Field order is the producer's: it decides the order of keys in the pushed JSON. */
export interface PlatformTaskPayload {
  taskId: string;
  channel: 'b2b' | 'b2c';
  storeId?: string;
  userId?: string;
  sessionId: string;
  imageUrls: string[];
  prompt: string;
  requestId: string;
  version: number;
  createdAt: string;
}

/** `imageUrls` -> `image_urls`; an acronym run is split before a Capital+lowercase (`HTTPServer` -> `http_server`). */
function snakeKey(key: string): string {
  return key
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1_$2')
    .toLowerCase();
}

/** Recursive over arrays and non-null, non-array, non-Date objects; values untouched. */
export function producerSnakeCase(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(producerSnakeCase);
  if (value === null || typeof value !== 'object' || value instanceof Date) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[snakeKey(k)] = producerSnakeCase(v);
  return out;
}

/** The exact text LPUSHed for a payload. */
export function serializePlatformTask(payload: PlatformTaskPayload): string {
  return JSON.stringify(producerSnakeCase(payload));
}

/** `pushGenerationTask`: one LPUSH; any Redis failure becomes `Error('Redis queue unavailable')`. Returns the text. */
export async function pushGenerationTask(redis: Redis, queueKey: string, payload: PlatformTaskPayload): Promise<string> {
  const json = serializePlatformTask(payload);
  try {
    await redis.lpush(queueKey, json);
  } catch {
    throw new Error('Redis queue unavailable');
  }
  return json;
}

// The Redis task payload: the contract between the Next.js producer (LPUSH) and this worker. Exported as
// `wearon-worker/contract` so the producer validates with the same schema before it pushes.
// Compatible with the original producer (snake_case, optional keys omitted, `version: 1`), stricter where the original
// silently accepted work that could only fail later (unknown version, ambiguous owner, bounds the upstream imposes).
import { randomBytes, randomUUID } from 'node:crypto';
import { z } from 'zod';
import { InvalidAccountError, MAX_EMAIL_CHARS, accountIdOf, isEmail, parseAccountId } from './domain/streams.ts';

/** Payload versions this worker understands. A producer that bumps the version must wait for a worker that knows it. */
export const SUPPORTED_PAYLOAD_VERSIONS = [1] as const;
export const CURRENT_PAYLOAD_VERSION = 1;
/** Bounds of the upstream images.edit API (BUG-26): more images or a longer prompt is a deterministic 400. */
export const MAX_IMAGES = 16;
export const MAX_PROMPT_CHARS = 32_000;
export const MAX_URL_CHARS = 8192;

/**
 * Session ids name a ledger stream and a storage path (`generated/{user}/{session}.jpg`): a plain token, no `/` or
 * `.`, so a payload cannot steer where the result is written. The producer's UUIDs always match.
 */
const SESSION_ID = /^[A-Za-z0-9_-]{1,128}$/;
/**
 * `user_id` and `store_id` are the platform's ids: Postgres `uuid` columns (users, stores, and the credit and session
 * tables the projections write). Anything else would be charged and then refused by those columns, so it is refused
 * here. Lowercase canonical form, as Postgres prints a uuid: `ABC…` and `abc…` would otherwise be two ledger accounts.
 */
export const PLATFORM_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const PLATFORM_ID_MESSAGE = 'must be a UUID in lowercase canonical form (the platform id)';

const httpUrl = z
  .string()
  .max(MAX_URL_CHARS, `URL longer than ${MAX_URL_CHARS} characters`)
  .refine((s) => {
    try {
      const u = new URL(s);
      return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '';
    } catch {
      return false;
    }
  }, 'must be an absolute http(s) URL');

/** Absent, `null` (a Python producer's model_dump) and `""` all mean "not given". */
const absentToUndefined = (v: unknown) => (v === null || v === '' ? undefined : v);
const optionalId = z.preprocess(absentToUndefined, z.string().regex(PLATFORM_ID, PLATFORM_ID_MESSAGE).optional());

export const generationTaskPayloadSchema = z
  .object({
    task_id: z.string().min(1).max(200),
    channel: z.enum(['b2b', 'b2c']),
    store_id: optionalId,
    user_id: optionalId,
    /** B2B resell mode: the generation is charged to this shopper's account at the store. */
    shopper_email: z.preprocess(
      absentToUndefined,
      z.string().trim().max(MAX_EMAIL_CHARS).refine(isEmail, 'must be an email address').optional(),
    ),
    /**
     * B2B absorb overage: the Paddle charge the producer billed for this generation (its `overage` row's charge id).
     * The generation then runs as an overage: no pool is charged, a failure records a refund due.
     */
    overage_charge_id: z.preprocess(absentToUndefined, z.string().trim().min(1).max(256).optional()),
    session_id: z.string().regex(SESSION_ID, 'must be 1-128 of [A-Za-z0-9_-] (a UUID)'),
    image_urls: z
      .array(httpUrl)
      .min(1, 'at least one image is required')
      .max(MAX_IMAGES, `at most ${MAX_IMAGES} images (upstream limit)`),
    /** Empty is allowed: the worker substitutes its default prompt. */
    prompt: z.string().max(MAX_PROMPT_CHARS, `at most ${MAX_PROMPT_CHARS} characters (upstream limit)`),
    /** Correlates logs only. Client-controlled for B2B (BUG-25), so never used for deduplication: session_id is. */
    request_id: z.string().min(1).max(256),
    /** Lax like the original (`"1"` is 1); absent or null means 1. */
    version: z.preprocess(
      (v) => (v === undefined || v === null ? CURRENT_PAYLOAD_VERSION : typeof v === 'string' && v.trim() !== '' ? Number(v) : v),
      z.number().int('must be an integer'),
    ),
    created_at: z
      .string()
      .max(64)
      .refine((s) => !Number.isNaN(Date.parse(s)), 'must be an ISO-8601 timestamp'),
  })
  // Unknown keys are ignored (stripped), as the original's Pydantic model did.
  .strip()
  .superRefine((p, ctx) => {
    if (!(SUPPORTED_PAYLOAD_VERSIONS as readonly number[]).includes(p.version)) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['version'],
        message: `unsupported payload version ${p.version}; this worker understands ${SUPPORTED_PAYLOAD_VERSIONS.join(', ')}`,
      });
    }
    // Exactly one owner, matching the channel: a payload naming both ids is ambiguous about who pays, so it is refused
    // (the original let it through; the producer never sends both).
    if (p.channel === 'b2b') {
      if (!p.store_id) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['store_id'], message: 'required for channel b2b' });
      if (p.user_id) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['user_id'], message: 'not allowed for channel b2b' });
      // A resell generation is paid by the shopper, an overage by the store's subscription: never both.
      if (p.shopper_email && p.overage_charge_id) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['overage_charge_id'], message: 'not allowed with shopper_email (resell is never an overage)' });
      }
    } else {
      if (!p.user_id) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['user_id'], message: 'required for channel b2c' });
      if (p.store_id) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['store_id'], message: 'not allowed for channel b2c' });
      if (p.shopper_email)
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['shopper_email'], message: 'only for channel b2b (resell)' });
      if (p.overage_charge_id)
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['overage_charge_id'], message: 'only for channel b2b (absorb overage)' });
    }
  });

export type GenerationTaskPayload = z.infer<typeof generationTaskPayloadSchema>;
/** What the producer may write (before defaults): `version` may be omitted. */
export type GenerationTaskPayloadInput = z.input<typeof generationTaskPayloadSchema>;

/** What is still known about a refused payload, enough to record GenerationRejected(invalid_request). */
export interface PartialTask {
  session_id: string;
  channel: 'b2b' | 'b2c';
  task_id?: string;
  request_id?: string;
  user_id?: string;
  store_id?: string;
  /** The paying account when the ids allow it (same form as `accountOfTask`). */
  account?: string;
}

export type ParseTaskResult =
  | { ok: true; task: GenerationTaskPayload }
  | { ok: false; reason: string; partial?: PartialTask };

/** `field: message; field: message`, short enough for a log line and the dead-letter record (at most 20 issues). */
export function describeIssues(error: z.ZodError, max = 20): string {
  const shown = error.issues.slice(0, max).map((i) => `${i.path.length ? i.path.join('.') : '(payload)'}: ${i.message}`).join('; ');
  return error.issues.length > max ? `${shown}; and ${error.issues.length - max} more` : shown;
}

/** Parses the raw text of one queue element. Never throws. */
export function parseTaskPayload(raw: string): ParseTaskResult {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (e) {
    return { ok: false, reason: `invalid JSON: ${(e as Error).message}` };
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return { ok: false, reason: `payload must be a JSON object, got ${Array.isArray(json) ? 'array' : json === null ? 'null' : typeof json}` };
  }
  const parsed = generationTaskPayloadSchema.safeParse(json);
  if (parsed.success) return { ok: true, task: parsed.data };
  const reason = `invalid payload: ${describeIssues(parsed.error)}`;
  const partial = partialOf(json as Record<string, unknown>);
  return partial ? { ok: false, reason, partial } : { ok: false, reason };
}

function partialOf(obj: Record<string, unknown>): PartialTask | undefined {
  const { session_id, channel } = obj;
  if (typeof session_id !== 'string' || !SESSION_ID.test(session_id)) return undefined;
  if (channel !== 'b2b' && channel !== 'b2c') return undefined;
  const partial: PartialTask = { session_id, channel };
  const str = (k: string, max: number) => {
    const v = obj[k];
    return typeof v === 'string' && v !== '' && v.length <= max ? v : undefined;
  };
  const taskId = str('task_id', 200);
  const requestId = str('request_id', 256);
  const userId = str('user_id', 128);
  const storeId = str('store_id', 128);
  if (taskId) partial.task_id = taskId;
  if (requestId) partial.request_id = requestId;
  if (userId && PLATFORM_ID.test(userId)) partial.user_id = userId;
  if (storeId && PLATFORM_ID.test(storeId)) partial.store_id = storeId;
  try {
    partial.account = accountOfTask({
      channel,
      user_id: channel === 'b2c' ? partial.user_id : undefined,
      store_id: channel === 'b2b' ? partial.store_id : undefined,
      shopper_email: channel === 'b2b' ? str('shopper_email', 320) : undefined,
    });
  } catch {
    // no usable owner: the rejection is recorded without an account
  }
  return partial;
}

/**
 * The account that pays for the task: `user:<id>` (B2C), `store:<id>` (B2B absorb) or, for B2B resell,
 * `shopper:<storeId>.<emailHash>`: the canonical form of `shopper:<storeId>:<email>` from `parseAccountId`, so the plain
 * email never reaches the ledger. Throws InvalidAccountError when the ids do not name an account.
 */
export function accountOfTask(task: Pick<GenerationTaskPayload, 'channel' | 'user_id' | 'store_id' | 'shopper_email'>): string {
  if (task.channel === 'b2c') {
    if (!task.user_id) throw new InvalidAccountError('b2c task without user_id');
    return accountIdOf(parseAccountId(`user:${task.user_id}`));
  }
  if (!task.store_id) throw new InvalidAccountError('b2b task without store_id');
  if (task.shopper_email) return accountIdOf(parseAccountId(`shopper:${task.store_id}:${task.shopper_email}`));
  return accountIdOf(parseAccountId(`store:${task.store_id}`));
}

// ---------------------------------------------------------------------------------------------------------------
// Producer side: build and serialise payloads exactly as the platform does (used by `wearon enqueue` and tests).

/** The producer's camelCase shape (`GenerationTaskPayload` in the platform), before `toSnakeCase`. */
export interface ProducerTask {
  taskId: string;
  channel: 'b2b' | 'b2c';
  storeId?: string;
  userId?: string;
  shopperEmail?: string;
  overageChargeId?: string;
  sessionId: string;
  imageUrls: string[];
  prompt: string;
  requestId: string;
  version: number;
  createdAt: string;
}

/** The platform's key transform: `imageUrls` -> `image_urls`, `HTTPServer` -> `http_server`. Values untouched. */
export function snakeCaseKey(key: string): string {
  return key
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/([A-Z])([A-Z][a-z])/g, '$1_$2')
    .toLowerCase();
}

/** Recursive over plain objects and arrays; `undefined` members are omitted by JSON.stringify, as in the platform. */
export function toSnakeCasePayload(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(toSnakeCasePayload);
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [snakeCaseKey(k), toSnakeCasePayload(v)]));
  }
  return value;
}

/** A UUID v7 (48-bit ms timestamp, random rest), the format of the platform's session ids. */
export function uuidv7(now = Date.now()): string {
  const b = randomBytes(16);
  b.writeUIntBE(now, 0, 6);
  b[6] = (b[6]! & 0x0f) | 0x70;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export interface BuildTaskOptions {
  /** Exactly one of userId (B2C) or storeId (B2B). */
  userId?: string;
  storeId?: string;
  shopperEmail?: string;
  /** B2B absorb: the Paddle charge already billed for this generation (an overage). */
  overageChargeId?: string;
  imageUrls: string[];
  /** Blank means the worker's default prompt. */
  prompt?: string;
  sessionId?: string;
  requestId?: string;
  now?: Date;
}

/** Builds one producer-shaped payload (camelCase) with fresh ids, like the platform does before LPUSH. */
export function buildProducerTask(o: BuildTaskOptions): ProducerTask {
  if (Boolean(o.userId) === Boolean(o.storeId)) throw new Error('exactly one of userId (b2c) or storeId (b2b) is required');
  if (o.shopperEmail && !o.storeId) throw new Error('shopperEmail is for b2b (storeId) only');
  if (o.overageChargeId && (!o.storeId || o.shopperEmail)) throw new Error('overageChargeId is for b2b absorb (storeId, no shopperEmail) only');
  const now = o.now ?? new Date();
  return {
    taskId: randomUUID(),
    channel: o.storeId ? 'b2b' : 'b2c',
    ...(o.storeId ? { storeId: o.storeId } : { userId: o.userId! }),
    ...(o.shopperEmail ? { shopperEmail: o.shopperEmail } : {}),
    ...(o.overageChargeId ? { overageChargeId: o.overageChargeId } : {}),
    sessionId: o.sessionId ?? uuidv7(now.getTime()),
    imageUrls: [...o.imageUrls],
    prompt: o.prompt ?? '',
    requestId: o.requestId ?? `req_${randomUUID()}`,
    version: CURRENT_PAYLOAD_VERSION,
    createdAt: now.toISOString(),
  };
}

/** The exact text the producer LPUSHes: snake_case JSON. */
export function serializeProducerTask(task: ProducerTask): string {
  return JSON.stringify(toSnakeCasePayload(task));
}

// One schema for every environment variable. Defaults make `npm start` work on a fresh clone, offline.
import { z } from 'zod';
import { DEAD_LETTER_RETENTION } from './app/ports/queue.ts';

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no', ''])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const optionalUrl = z
  .string()
  .optional()
  .transform((v) => (v && v.trim() !== '' ? v.trim() : undefined));
const optionalString = optionalUrl;
const int = (def: number, min = 0, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max).default(def);
const list = z
  .string()
  .optional()
  .transform((v) => (v ?? '').split(',').map((s) => s.trim()).filter(Boolean));

/**
 * HTTP deadlines (ms). A client gets `headers` to send its request line and headers and `request` for the whole request
 * with its body (slow-body clients: answered 408, then cut); a socket with no traffic for `idle` is closed (longer than
 * the slowest handler, /estimate-body); an idle keep-alive connection is closed after `keepAlive` (above the usual
 * 60 s of load balancers and nginx, so they close first).
 */
export const HTTP_TIMEOUT_DEFAULTS = { headersMs: 10_000, requestMs: 30_000, idleMs: 120_000, keepAliveMs: 72_000 } as const;

export const configSchema = z.object({
  NODE_ENV: z.string().default('development'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Where the embedded ledger, read models and local images live. */
  DATA_DIR: z.string().default('./data'),
  HOST: z.string().default('0.0.0.0'),
  PORT: int(8000, 0, 65535),
  /** Public base URL used in signed result links (local storage). */
  PUBLIC_BASE_URL: optionalUrl,
  /** Identifies this process in leases, queue processing lists and event metadata. */
  WORKER_ID: optionalString,
  HTTP_HEADERS_TIMEOUT_MS: int(HTTP_TIMEOUT_DEFAULTS.headersMs, 100),
  HTTP_REQUEST_TIMEOUT_MS: int(HTTP_TIMEOUT_DEFAULTS.requestMs, 100),
  HTTP_IDLE_TIMEOUT_MS: int(HTTP_TIMEOUT_DEFAULTS.idleMs, 100),
  HTTP_KEEP_ALIVE_TIMEOUT_MS: int(HTTP_TIMEOUT_DEFAULTS.keepAliveMs, 100),

  // --- intake ---
  REDIS_URL: optionalUrl,
  QUEUE_KEY: z.string().default('wearon:tasks:generation'),
  /** Dead-letter retention: the newest N records; each raw payload kept exactly up to this many bytes, then cut. */
  DEAD_LETTER_MAX_ENTRIES: int(DEAD_LETTER_RETENTION.maxEntries, 1),
  DEAD_LETTER_MAX_RAW_BYTES: int(DEAD_LETTER_RETENTION.maxRawBytes, 1024),
  /** `/v1` bearer token; without one, `/v1` answers loopback clients only. */
  API_TOKEN: optionalString,

  // --- ledger ---
  /**
   * The ledger's event store: `postgres://…` (Postgres, e.g. Supabase) or `esdb://…` (EventStoreDB / KurrentDB);
   * without it the embedded SQLite ledger is used.
   */
  EVENTSTORE_URL: optionalUrl,
  /** Postgres event store only: the schema of its tables (migrated at start or by `wearon migrate`). */
  EVENTSTORE_SCHEMA: z.string().regex(/^[a-z_][a-z0-9_]{0,47}$/, 'lower-case letters, digits and _').default('wearon_events'),
  /**
   * Where embedded ledger commits run: `inline` (lowest latency for one append at a time; the fsync runs on the event
   * loop), `thread` (a writer thread: fsync never blocks the event loop), or `auto`: inline while commits are fast,
   * the thread for good once the disk makes them slow.
   */
  LEDGER_WRITER: z.enum(['auto', 'thread', 'inline']).default('auto'),
  /** Credits one generation costs. */
  GENERATION_COST: int(1, 1, 1000),

  // --- read models ---
  /** Supabase Postgres for projections and checkpoints; without it, read models live in the SQLite file. */
  DATABASE_URL: optionalUrl,
  PROJECTIONS_ENABLED: bool.default('true'),
  /** `serve` runs its projectors in a worker thread of their own, out of the pipeline's event loop (fresher status). */
  PROJECTIONS_THREAD: bool.default('true'),
  PROJECTION_BATCH_SIZE: int(500, 1, 100_000),
  /** The worker applies the platform bridge's inbox (wearon.credit_inbox in DATABASE_URL; docs/platform-adoption.md). */
  BRIDGE_INBOX: bool.default('true'),
  /** Poll interval of the inbox, the fallback when no NOTIFY arrives. */
  BRIDGE_POLL_MS: int(1000, 50, 60_000),

  // --- generation ---
  OPENAI_API_KEY: optionalString,
  OPENAI_BASE_URL: optionalUrl,
  OPENAI_MODEL: z.string().default('gpt-image-1.5'),
  OPENAI_QUALITY: z.enum(['low', 'medium', 'high', 'auto']).default('medium'),
  OPENAI_SIZE: z.string().default('1024x1536'),
  OPENAI_TIMEOUT_MS: int(180_000, 1000),
  /** In-adapter retries for 5xx and network errors (exponential backoff). */
  OPENAI_MAX_RETRIES: int(2, 0, 10),
  /** How many times a 429 becomes RetryScheduled before the generation fails with a refund. */
  OPENAI_MAX_429_RETRIES: int(1, 0, 10),
  OPENAI_RATE_LIMIT_PER_MIN: int(300, 1),
  /** The Redis key of that budget: workers that share the key share the budget (one key per OpenAI organisation). */
  OPENAI_RATE_LIMIT_KEY: z.string().min(1).default('wearon:ratelimit:openai'),
  WORKER_CONCURRENCY: int(5, 1, 256),
  /** How long a started generation may run before another worker may recover it. */
  LEASE_MS: int(300_000, 1000),
  /** Attempts (claims) before a lost generation fails with worker_lost. */
  MAX_ATTEMPTS: int(3, 1, 20),
  SHUTDOWN_GRACE_MS: int(30_000, 0),
  /** How often the worker re-verifies the whole ledger (metrics for the verify alert); 0 turns it off. */
  VERIFY_INTERVAL_MS: int(3_600_000, 0),
  RECOVERY_INTERVAL_MS: int(30_000, 100),

  // --- images ---
  IMAGE_FETCH_ALLOW_HOSTS: list,
  IMAGE_FETCH_TIMEOUT_MS: int(30_000, 100),
  IMAGE_MAX_BYTES: int(10 * 1024 * 1024, 1024),
  IMAGE_MAX_PIXELS: int(40_000_000, 1),
  /** Nice steps the image threads (libvips) run below the process, so HTTP and the ledger preempt them on a busy CPU. */
  IMAGE_THREAD_NICE: int(10, 0, 19),

  // --- storage ---
  SUPABASE_URL: optionalUrl,
  SUPABASE_SERVICE_ROLE_KEY: optionalString,
  STORAGE_BUCKET: z.string().default('virtual-tryon-images'),
  SIGNED_URL_TTL_SECONDS: int(21_600, 1),
  /** HMAC key for local signed URLs; generated per data dir when absent. */
  URL_SIGNING_SECRET: optionalString,

  // --- size recommendation ---
  POSE_MODEL: z.enum(['lite', 'full', 'heavy']).default('full'),
  POSE_ENABLED: bool.default('true'),
  POSE_QUEUE_MAX: int(16, 1),
  POSE_TIMEOUT_MS: int(10_000, 100),
  /** Pose worker threads (one model each, ~100 MB each); 0 = one per CPU, at most 2. */
  POSE_WORKERS: int(0, 0, 16),
});

export type Config = z.infer<typeof configSchema>;

/** Which event store EVENTSTORE_URL selects: by its scheme, the embedded SQLite store without one. */
export function eventStoreKind(config: Pick<Config, 'EVENTSTORE_URL'>): 'postgres' | 'esdb' | 'sqlite' {
  if (!config.EVENTSTORE_URL) return 'sqlite';
  return /^postgres(ql)?:\/\//i.test(config.EVENTSTORE_URL) ? 'postgres' : 'esdb';
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = configSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  const c = parsed.data;
  if (c.HTTP_HEADERS_TIMEOUT_MS > c.HTTP_REQUEST_TIMEOUT_MS) {
    throw new ConfigError('HTTP_HEADERS_TIMEOUT_MS must not exceed HTTP_REQUEST_TIMEOUT_MS (the headers are part of the request)');
  }
  if (Boolean(c.SUPABASE_URL) !== Boolean(c.SUPABASE_SERVICE_ROLE_KEY)) {
    throw new ConfigError('SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY must be set together');
  }
  return c;
}

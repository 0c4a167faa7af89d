// The reliable Redis intake (TaskQueue port). Keeps the original's contract (producer LPUSH, consumer takes from the
// right: FIFO) and replaces its at-most-once BRPOP (BUG-6) with BLMOVE into a per-worker processing list, removed only
// by `ack` (after GenerationRequested is durable) or `deadLetter`. Lists of workers whose heartbeat expired are moved
// back onto the queue, so a crash at any point re-delivers: at-least-once, deduplicated by session id in the ledger.
//
// Keys (queue = QUEUE_KEY, default `wearon:tasks:generation`):
//   {queue}                         the producer's list
//   {queue}:processing:{workerId}   tasks this worker has taken and not yet acked/dead-lettered
//   {queue}:worker:{workerId}       heartbeat (string with PX TTL); its absence marks the processing list orphaned
//   {queue}:dead                    dead letters: JSON {reason, raw, raw_bytes, raw_sha256, raw_truncated?, worker_id,
//                                   failed_at}, newest on the left; at most DEAD_LETTER_MAX_ENTRIES, each raw cut to
//                                   DEAD_LETTER_MAX_RAW_BYTES
//
// Concurrency: `take()` calls from one process (WORKER_CONCURRENCY loops) are serialised on ONE dedicated blocking
// connection, each within its own deadline. Why not one connection per caller: the connection count stays 2 per
// process whatever the concurrency (managed Redis plans cap connections), and serialising costs one round trip per
// task, far below the seconds a generation takes. It also makes "which elements of my processing list have I handed
// out" exact, which lets `redriveOrphans` reclaim elements a lost BLMOVE reply left behind (see reclaimStrays).
import { createHash } from 'node:crypto';
import os from 'node:os';
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from '../../logger.ts';
import { CannotRedriveError, DEAD_LETTER_RETENTION, rawDigest, type DeadLetter, type QueueDepth, type QueuedTask, type TaskQueue } from '../../app/ports/queue.ts';

export const DEFAULT_QUEUE_KEY = 'wearon:tasks:generation';
/** A reason longer than this is cut (a payload with thousands of bad fields has a long one). */
const MAX_REASON_CHARS = 2000;
export const DEFAULT_HEARTBEAT_TTL_MS = 30_000;
export const DEFAULT_COMMAND_TIMEOUT_MS = 5_000;

export interface QueueKeys {
  queue: string;
  processing: string;
  heartbeat: string;
  dead: string;
  /** prefix of every worker's processing list; the worker id follows */
  processingPrefix: string;
  heartbeatPrefix: string;
}

export function queueKeys(queueKey: string, workerId: string): QueueKeys {
  const processingPrefix = `${queueKey}:processing:`;
  const heartbeatPrefix = `${queueKey}:worker:`;
  return {
    queue: queueKey,
    processing: processingPrefix + workerId,
    heartbeat: heartbeatPrefix + workerId,
    dead: `${queueKey}:dead`,
    processingPrefix,
    heartbeatPrefix,
  };
}

export interface CreateRedisOptions {
  /** connection name shown by CLIENT LIST */
  name?: string;
  /** a connection dedicated to blocking commands: no per-command timeout (it would cut BLMOVE short) */
  blocking?: boolean;
  commandTimeoutMs?: number;
}

/**
 * ioredis with the choices this service needs:
 * - TLS for `rediss://` (Upstash in production), whatever the host name (the producer only did it for upstash.io).
 * - Reconnect forever with capped backoff: a Redis outage must not kill the worker; /health reports it.
 * - `maxRetriesPerRequest: 2`: a command waiting through reconnects fails after two attempts instead of hanging, so
 *   callers (intake loop, rate limiter) see the error, log it and back off.
 * - `enableOfflineQueue: true`: commands issued during a short reconnect are queued rather than failing at once;
 *   `commandTimeout` bounds how long they can wait, so nothing hangs.
 * - Blocking connection: no `commandTimeout` (BLMOVE legitimately waits), but `blockingTimeout` as a client-side
 *   safety net that ends a BLMOVE on a silently dead socket shortly after its server-side timeout.
 */
export function createRedis(url: string, logger: Logger, options: CreateRedisOptions = {}): Redis {
  const timeout = options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
  const opts: RedisOptions = {
    connectionName: options.name ?? 'wearon',
    connectTimeout: 10_000,
    keepAlive: 30_000,
    maxRetriesPerRequest: 2,
    enableOfflineQueue: true,
    enableReadyCheck: true,
    retryStrategy: (times) => Math.min(times * 200, 5_000),
    ...(url.startsWith('rediss://') ? { tls: {} } : {}),
    ...(options.blocking ? { blockingTimeout: timeout, blockingTimeoutGrace: 1_000 } : { commandTimeout: timeout }),
  };
  const redis = new Redis(url, opts);
  // Without a listener ioredis prints every connection error to stderr; one warn line per error instead.
  let lastLogged = 0;
  redis.on('error', (err: Error) => {
    const now = Date.now();
    if (now - lastLogged < 5_000) return;
    lastLogged = now;
    logger.warn({ err: { message: err.message }, connection: opts.connectionName }, 'redis connection error');
  });
  return redis;
}

// Moves every element of a processing list back to the RIGHT end of the queue (taken next), oldest ending rightmost,
// unless the owner's heartbeat exists. ARGV[1] = 'force' skips the heartbeat check (own list at close).
const REDRIVE_LUA = `
if ARGV[1] ~= 'force' and redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
local n = 0
while true do
  local v = redis.call('LMOVE', KEYS[1], KEYS[3], 'LEFT', 'RIGHT')
  if not v then break end
  n = n + 1
end
return n`;

// Removes one element from the processing list and records it as a dead letter, in one step, trimming the dead list to
// ARGV[3] records (the oldest go). When the element is no longer there another worker re-drove it and will handle it:
// no record then (avoids duplicate dead letters). Returns {removed, records dropped by the trim}.
const DEAD_LETTER_LUA = `
local removed = redis.call('LREM', KEYS[1], 1, ARGV[1])
local dropped = 0
if removed == 1 then
  redis.call('LPUSH', KEYS[2], ARGV[2])
  local keep = tonumber(ARGV[3])
  dropped = redis.call('LLEN', KEYS[2]) - keep
  if dropped > 0 then redis.call('LTRIM', KEYS[2], 0, keep - 1) else dropped = 0 end
end
return {removed, dropped}`;

// Moves one stray element (oldest copy) of the own processing list back to the right end of the queue.
const RECLAIM_LUA = `
local removed = redis.call('LREM', KEYS[1], -1, ARGV[1])
if removed == 1 then redis.call('RPUSH', KEYS[2], ARGV[1]) end
return removed`;

// Re-drives one dead letter, found by the sha1 of its stored text (its id): removes it and LPUSHes its raw text onto
// the queue, as the producer would. 1 moved, 0 not there (already re-driven), -1 not a dead-letter record, -2 its raw
// text was truncated when it was dead-lettered (a record written under a retention limit marks it raw_truncated).
const REDRIVE_DEAD_LETTER_LUA = `
for _, el in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  if redis.sha1hex(el) == ARGV[1] then
    local ok, rec = pcall(cjson.decode, el)
    if not ok or type(rec) ~= 'table' or type(rec.raw) ~= 'string' then return -1 end
    if rec.raw_truncated then return -2 end
    redis.call('LREM', KEYS[1], 1, el)
    redis.call('LPUSH', KEYS[2], rec.raw)
    return 1
  end
end
return 0`;

/** A stored dead-letter element as the port shows it; text that is not a record still shows (reason says so). */
function toDeadLetter(stored: string): DeadLetter {
  const id = createHash('sha1').update(stored).digest('hex');
  try {
    const r = JSON.parse(stored) as Partial<DeadLetterRecord> & { raw_truncated?: boolean };
    if (typeof r === 'object' && r !== null && typeof r.raw === 'string') {
      return { id, reason: String(r.reason ?? ''), raw: r.raw, worker_id: r.worker_id ?? null, failed_at: r.failed_at ?? null, truncated: r.raw_truncated === true };
    }
  } catch {
    // shown as is below
  }
  return { id, reason: 'not a dead-letter record (pushed by hand?)', raw: stored, worker_id: null, failed_at: null, truncated: false };
}

export interface DeadLetterRecord {
  reason: string;
  /** the exact pushed text, or its first DEAD_LETTER_MAX_RAW_BYTES bytes when `raw_truncated` */
  raw: string;
  /** size and digest of the whole pushed text (the dead-letter log line carries the same) */
  raw_bytes: number;
  raw_sha256: string;
  raw_truncated?: true;
  worker_id: string;
  failed_at: string;
}

/** The record of one dead letter, its raw text cut to `maxRawBytes` (on a character boundary). */
export function deadLetterRecord(raw: string, reason: string, workerId: string, maxRawBytes: number, now = new Date()): DeadLetterRecord {
  const digest = rawDigest(raw);
  const cut = digest.raw_bytes > maxRawBytes;
  return {
    reason: reason.length > MAX_REASON_CHARS ? `${reason.slice(0, MAX_REASON_CHARS)}…` : reason,
    // stream: true holds back a multi-byte character cut in half instead of emitting U+FFFD
    raw: cut ? new TextDecoder().decode(Buffer.from(raw).subarray(0, maxRawBytes), { stream: true }) : raw,
    ...digest,
    ...(cut ? { raw_truncated: true as const } : {}),
    worker_id: workerId,
    failed_at: now.toISOString(),
  };
}

export interface RedisTaskQueueOptions {
  /** connection for ordinary commands */
  redis: Redis;
  /** dedicated connection for BLMOVE (never shared: a blocking call ties it up) */
  blocking: Redis;
  workerId: string;
  logger: Logger;
  /** QUEUE_KEY; tests pass a unique prefix so they never touch the real keys */
  queueKey?: string;
  heartbeatTtlMs?: number;
  /**
   * Refresh the heartbeat every TTL/3 from the first take on (default true), so a busy or idle loop never lets it lapse.
   * `heartbeat()` can still be called explicitly.
   */
  autoHeartbeat?: boolean;
  /** close() quits the command connection (true when created by `connect`); the blocking one always ends at close */
  ownsConnections?: boolean;
  /** dead-letter retention: records kept (newest), bytes of raw payload kept per record */
  deadLetterMaxEntries?: number;
  deadLetterMaxRawBytes?: number;
}

export class RedisTaskQueue implements TaskQueue {
  readonly keys: QueueKeys;
  readonly workerId: string;
  private readonly redis: Redis;
  private readonly blocking: Redis;
  private readonly logger: Logger;
  private readonly heartbeatTtlMs: number;
  private readonly ownsConnections: boolean;
  /** serialises BLMOVE and stray reclaiming (see header) */
  private lock: Promise<unknown> = Promise.resolve();
  /** raw text -> how many copies this process has handed out and not yet acked or dead-lettered */
  private readonly handedOut = new Map<string, number>();
  private lastHeartbeat = 0;
  private closed = false;
  private readonly autoHeartbeat: boolean;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private readonly deadLetterMaxEntries: number;
  private readonly deadLetterMaxRawBytes: number;

  constructor(o: RedisTaskQueueOptions) {
    this.redis = o.redis;
    this.blocking = o.blocking;
    this.workerId = o.workerId;
    this.logger = o.logger;
    this.heartbeatTtlMs = o.heartbeatTtlMs ?? DEFAULT_HEARTBEAT_TTL_MS;
    this.ownsConnections = o.ownsConnections ?? false;
    this.autoHeartbeat = o.autoHeartbeat ?? true;
    this.deadLetterMaxEntries = o.deadLetterMaxEntries ?? DEAD_LETTER_RETENTION.maxEntries;
    this.deadLetterMaxRawBytes = o.deadLetterMaxRawBytes ?? DEAD_LETTER_RETENTION.maxRawBytes;
    this.keys = queueKeys(o.queueKey ?? DEFAULT_QUEUE_KEY, o.workerId);
  }

  /** Opens the two connections this queue needs and owns them. */
  static connect(
    url: string,
    o: Pick<RedisTaskQueueOptions, 'workerId' | 'logger' | 'queueKey' | 'heartbeatTtlMs' | 'autoHeartbeat' | 'deadLetterMaxEntries' | 'deadLetterMaxRawBytes'> & {
      commandTimeoutMs?: number;
    },
  ): RedisTaskQueue {
    const t = o.commandTimeoutMs === undefined ? {} : { commandTimeoutMs: o.commandTimeoutMs };
    return new RedisTaskQueue({
      ...o,
      redis: createRedis(url, o.logger, { name: `wearon-queue-${o.workerId}`, ...t }),
      blocking: createRedis(url, o.logger, { name: `wearon-take-${o.workerId}`, blocking: true, ...t }),
      ownsConnections: true,
    });
  }

  private serialised<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn, fn);
    this.lock = run.catch(() => undefined);
    return run;
  }

  async take(timeoutMs: number): Promise<QueuedTask | null> {
    if (this.closed) return null;
    const deadline = Date.now() + Math.max(0, timeoutMs);
    return this.serialised(async () => {
      if (this.closed) return null;
      // A processing list must never exist without a live heartbeat, or another worker would re-drive it at once.
      if (Date.now() - this.lastHeartbeat > this.heartbeatTtlMs / 3) await this.heartbeat();
      this.startHeartbeatTimer();
      const remainingMs = deadline - Date.now();
      let raw: string | null;
      try {
        raw =
          remainingMs < 10
            ? await this.redis.lmove(this.keys.queue, this.keys.processing, 'RIGHT', 'LEFT')
            : await this.blocking.blmove(this.keys.queue, this.keys.processing, 'RIGHT', 'LEFT', (remainingMs / 1000).toFixed(3));
      } catch (err) {
        if (this.closed) return null; // close() cut the blocking call; anything it moved is re-driven at close
        throw err;
      }
      if (raw === null) return null;
      this.handedOut.set(raw, (this.handedOut.get(raw) ?? 0) + 1);
      return { raw };
    });
  }

  private settle(raw: string): void {
    const n = this.handedOut.get(raw) ?? 0;
    if (n <= 1) this.handedOut.delete(raw);
    else this.handedOut.set(raw, n - 1);
  }

  async ack(task: QueuedTask): Promise<void> {
    const removed = await this.redis.lrem(this.keys.processing, 1, task.raw);
    this.settle(task.raw);
    if (removed === 0) this.logger.warn({ worker_id: this.workerId }, 'ack: task no longer in processing list (re-driven elsewhere)');
  }

  async deadLetter(task: QueuedTask, reason: string): Promise<void> {
    const record = deadLetterRecord(task.raw, reason, this.workerId, this.deadLetterMaxRawBytes);
    const [removed, dropped] = (await this.redis.eval(
      DEAD_LETTER_LUA, 2, this.keys.processing, this.keys.dead, task.raw, JSON.stringify(record), String(this.deadLetterMaxEntries),
    )) as [number, number];
    this.settle(task.raw);
    if (removed === 0) this.logger.warn({ worker_id: this.workerId, reason }, 'dead letter: task no longer in processing list (re-driven elsewhere)');
    if (dropped > 0) this.logger.warn({ dropped, kept: this.deadLetterMaxEntries }, 'dead_letters_trimmed');
  }

  private startHeartbeatTimer(): void {
    if (!this.autoHeartbeat || this.heartbeatTimer || this.closed) return;
    this.heartbeatTimer = setInterval(() => {
      this.heartbeat().catch((err: Error) =>
        this.logger.warn({ err: { message: err.message }, worker_id: this.workerId }, 'queue: heartbeat failed'),
      );
    }, Math.max(100, Math.floor(this.heartbeatTtlMs / 3)));
    this.heartbeatTimer.unref();
  }

  async heartbeat(): Promise<void> {
    if (this.closed) return;
    const value = JSON.stringify({ worker_id: this.workerId, pid: process.pid, host: os.hostname(), at: new Date().toISOString() });
    await this.redis.set(this.keys.heartbeat, value, 'PX', this.heartbeatTtlMs);
    this.lastHeartbeat = Date.now();
  }

  /** Every worker's processing list (SCAN, never KEYS). */
  async processingLists(): Promise<string[]> {
    const pattern = `${globEscape(this.keys.processingPrefix)}*`;
    const keys = new Set<string>();
    let cursor = '0';
    do {
      const [next, batch] = await this.redis.scan(cursor, 'MATCH', pattern, 'COUNT', 200);
      for (const k of batch) keys.add(k);
      cursor = next;
    } while (cursor !== '0');
    return [...keys];
  }

  /**
   * Re-drives the processing lists of workers whose heartbeat expired (each list atomically, re-checking the heartbeat
   * inside the script), then this worker's own strays. Returns how many tasks went back onto the queue.
   */
  async redriveOrphans(): Promise<number> {
    if (this.closed) return 0;
    let moved = 0;
    for (const key of await this.processingLists()) {
      if (key === this.keys.processing) continue;
      const worker = key.slice(this.keys.processingPrefix.length);
      const n = Number(await this.redis.eval(REDRIVE_LUA, 3, key, this.keys.heartbeatPrefix + worker, this.keys.queue, ''));
      if (n > 0) {
        moved += n;
        this.logger.warn({ dead_worker_id: worker, tasks: n }, 'queue: re-drove processing list of a worker whose heartbeat expired');
      }
    }
    return moved + (await this.reclaimStrays());
  }

  /**
   * Elements in the own processing list that this process never handed out: a BLMOVE whose reply was lost (timeout on
   * a dead socket, reconnect and resend) or a previous incarnation with the same WORKER_ID. Runs under the take lock,
   * so no BLMOVE is in flight and the handed-out count is exact.
   */
  private reclaimStrays(): Promise<number> {
    return this.serialised(async () => {
      if (this.closed) return 0;
      const present = await this.redis.lrange(this.keys.processing, 0, -1);
      const budget = new Map(this.handedOut);
      let moved = 0;
      for (const raw of present) {
        const n = budget.get(raw) ?? 0;
        if (n > 0) {
          budget.set(raw, n - 1);
          continue;
        }
        moved += Number(await this.redis.eval(RECLAIM_LUA, 2, this.keys.processing, this.keys.queue, raw));
      }
      if (moved > 0) this.logger.warn({ worker_id: this.workerId, tasks: moved }, 'queue: reclaimed stray tasks from own processing list');
      return moved;
    });
  }

  async depth(): Promise<QueueDepth> {
    const lists = await this.processingLists();
    const p = this.redis.pipeline().llen(this.keys.queue).llen(this.keys.dead);
    for (const k of lists) p.llen(k);
    const results = (await p.exec()) ?? [];
    const nums = results.map(([err, v]) => {
      if (err) throw err;
      return Number(v);
    });
    return { waiting: nums[0] ?? 0, deadLetter: nums[1] ?? 0, processing: nums.slice(2).reduce((a, b) => a + b, 0) };
  }

  async push(raw: string): Promise<void> {
    await this.redis.lpush(this.keys.queue, raw);
  }

  /** Dead letters, newest first, parsed (`limit` records). */
  async deadLetters(limit = 100): Promise<DeadLetterRecord[]> {
    const items = await this.redis.lrange(this.keys.dead, 0, Math.max(0, limit - 1));
    return items.map((s) => JSON.parse(s) as DeadLetterRecord);
  }

  async listDeadLetters(page: { offset: number; limit: number }): Promise<{ total: number; items: DeadLetter[] }> {
    const replies = (await this.redis
      .multi()
      .llen(this.keys.dead)
      .lrange(this.keys.dead, page.offset, page.offset + Math.max(1, page.limit) - 1)
      .exec()) ?? [];
    for (const [err] of replies) if (err) throw err;
    return { total: Number(replies[0]?.[1] ?? 0), items: ((replies[1]?.[1] ?? []) as string[]).map(toDeadLetter) };
  }

  async redriveDeadLetter(id: string): Promise<boolean> {
    const r = Number(await this.redis.eval(REDRIVE_DEAD_LETTER_LUA, 2, this.keys.dead, this.keys.queue, id.toLowerCase()));
    if (r === -1) throw new CannotRedriveError(`dead letter ${id} has no raw task text to re-drive`);
    if (r === -2) throw new CannotRedriveError(`dead letter ${id} kept only the start of its payload (truncated): have the producer push it again`);
    if (r === 1) this.logger.info({ dead_letter: id }, 'queue: re-drove a dead letter onto the queue');
    return r === 1;
  }

  /**
   * Stops intake and leaves nothing behind: cuts a pending BLMOVE, puts every task still in this worker's processing
   * list back on the queue (call after in-flight work was acked or released), deletes the heartbeat, quits.
   * The blocking connection is always disconnected (the only way to cut a BLMOVE short); the command connection is
   * quit only when this queue owns it.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeatTimer);
    this.blocking.disconnect();
    await this.lock.catch(() => undefined);
    try {
      const n = Number(await this.redis.eval(REDRIVE_LUA, 3, this.keys.processing, this.keys.heartbeat, this.keys.queue, 'force'));
      await this.redis.del(this.keys.heartbeat);
      if (n > 0) this.logger.info({ worker_id: this.workerId, tasks: n }, 'queue: returned unacked tasks to the queue at close');
    } catch (err) {
      // the heartbeat expires on its own and another worker re-drives the list
      this.logger.warn({ err: { message: (err as Error).message } }, 'queue: could not return unacked tasks at close');
    }
    if (this.ownsConnections) await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

function globEscape(s: string): string {
  return s.replace(/[\\*?[\]]/g, '\\$&');
}

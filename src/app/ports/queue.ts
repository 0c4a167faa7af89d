// The reliable task queue the producer pushes to (Redis list `wearon:tasks:generation`).
import { createHash } from 'node:crypto';

/**
 * Dead-letter retention (defaults of DEAD_LETTER_MAX_ENTRIES and DEAD_LETTER_MAX_RAW_BYTES): the newest 1000 records,
 * each raw payload kept exactly up to 64 KiB (a real task is about 1 KB), so the list stays below about 65 MiB whatever
 * is pushed. The probe held 37 MiB in 12 records of an unbounded list.
 */
export const DEAD_LETTER_RETENTION = { maxEntries: 1000, maxRawBytes: 64 * 1024 } as const;

/** Names a raw payload without showing it: the log line of a dead letter and its record carry the same digest. */
export function rawDigest(raw: string): { raw_bytes: number; raw_sha256: string } {
  return { raw_bytes: Buffer.byteLength(raw), raw_sha256: createHash('sha256').update(raw).digest('hex') };
}

export interface QueuedTask {
  /** the exact text the producer pushed */
  raw: string;
}

export interface QueueDepth {
  waiting: number;
  processing: number;
  deadLetter: number;
}

/** A task the intake refused, as kept in the dead-letter list. */
export interface DeadLetter {
  /** stable id of this record (sha1 of its stored text), for re-driving it */
  id: string;
  reason: string;
  /** the exact text the producer pushed */
  raw: string;
  worker_id: string | null;
  failed_at: string | null;
  /** only the first bytes of the payload were kept (retention limit): it cannot be re-driven */
  truncated: boolean;
}

/** The dead letter holds no complete task text to re-drive (pushed by hand, or its payload was truncated). */
export class CannotRedriveError extends Error {
  override readonly name = 'CannotRedriveError';
}

export interface TaskQueue {
  /**
   * Atomically moves the oldest task into this worker's processing list (BLMOVE), waiting up to `timeoutMs`.
   * The task stays there until `ack` or `deadLetter`, so a crash re-drives it. Beats this worker's heartbeat first when
   * it is due, so a processing list never exists without one.
   */
  take(timeoutMs: number): Promise<QueuedTask | null>;
  /** Removes the task from this worker's processing list: call only after its GenerationRequested is durable. */
  ack(task: QueuedTask): Promise<void>;
  /**
   * Moves the task to the dead-letter list with the reason and raw text, in one atomic step. The list's retention is
   * bounded (entries and bytes per entry; see the adapter).
   */
  deadLetter(task: QueuedTask, reason: string): Promise<void>;
  /** Pushes the processing lists of workers whose heartbeat expired back onto the queue; returns how many tasks moved. */
  redriveOrphans(): Promise<number>;
  /** Keeps this worker's heartbeat alive; called periodically. */
  heartbeat(): Promise<void>;
  depth(): Promise<QueueDepth>;
  /** Pushes a task (the producer's LPUSH); used by `wearon enqueue` and tests. */
  push(raw: string): Promise<void>;
  /** Dead letters, newest first, and how many there are. */
  listDeadLetters(page: { offset: number; limit: number }): Promise<{ total: number; items: DeadLetter[] }>;
  /** Moves one dead letter's raw text back onto the queue, atomically; false when it is no longer there (throws CannotRedriveError). */
  redriveDeadLetter(id: string): Promise<boolean>;
  close(): Promise<void>;
}

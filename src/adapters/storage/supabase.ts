// ResultStore on Supabase Storage through @supabase/supabase-js with the service-role key.
// Upload with `upsert: true` (a re-run overwrites instead of failing on the existing object: BUG-3) and the real
// content type; signed URL with the configured TTL (6 h by default, like the original). Every HTTP call has a
// timeout (through the client's fetch) and failed calls that may succeed on a retry (network, 5xx, 429) are
// retried a bounded number of times; both operations are idempotent.
import { createClient, type SupabaseClient } from '@supabase/supabase-js';
import WebSocket from 'ws';
import type { Logger } from '../../logger.ts';
import { PipelineError, type CallContext, type ResultStore } from '../../app/ports/pipeline.ts';
import { assertStoragePath } from './local.ts';

export interface SupabaseResultStoreOptions {
  url: string;
  serviceRoleKey: string;
  bucket: string;
  /** Per HTTP request. */
  timeoutMs?: number;
  /** Extra attempts after a retryable failure. */
  maxRetries?: number;
  backoffBaseMs?: number;
  logger?: Logger;
}

/** A fetch that gives up after `timeoutMs` (and still honours the caller's signal). */
export function fetchWithTimeout(timeoutMs: number): typeof fetch {
  return (input, init) => {
    const timer = AbortSignal.timeout(timeoutMs);
    const signal = init?.signal ? AbortSignal.any([init.signal, timer]) : timer;
    return fetch(input, { ...init, signal });
  };
}

export function createSupabaseClient(url: string, serviceRoleKey: string, timeoutMs = 15_000): SupabaseClient {
  return createClient(url, serviceRoleKey, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    // supabase-js throws at createClient on Node 20 without a WebSocket implementation, even if realtime is unused.
    realtime: { transport: WebSocket as unknown as typeof globalThis.WebSocket },
    global: { fetch: fetchWithTimeout(timeoutMs) },
  });
}

interface StorageErrorLike {
  name?: string;
  message?: string;
  status?: number;
  statusCode?: string;
}

/** Network errors (no status), timeouts, 5xx and 429 may succeed on a retry; other 4xx will not. */
function retryable(err: StorageErrorLike): boolean {
  const status = typeof err.status === 'number' ? err.status : undefined;
  return status === undefined || status >= 500 || status === 429 || status === 408;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function createSupabaseResultStore(opts: SupabaseResultStoreOptions): ResultStore {
  const client = createSupabaseClient(opts.url, opts.serviceRoleKey, opts.timeoutMs ?? 15_000);
  const bucket = () => client.storage.from(opts.bucket);
  const maxRetries = opts.maxRetries ?? 2;
  const base = opts.backoffBaseMs ?? 250;

  async function withRetry<T>(op: string, storagePath: string, ctx: CallContext, call: () => Promise<{ data: T | null; error: unknown }>): Promise<T> {
    try {
      assertStoragePath(storagePath);
    } catch (err) {
      throw new PipelineError('storage_failed', (err as Error).message, { cause: err });
    }
    for (let attempt = 0; ; attempt++) {
      ctx.signal?.throwIfAborted();
      let error: StorageErrorLike;
      try {
        const r = await call();
        if (!r.error && r.data) return r.data;
        error = (r.error ?? { message: 'empty response' }) as StorageErrorLike;
      } catch (err) {
        error = err as StorageErrorLike; // fetch rejections that the client did not wrap
      }
      const canRetry = retryable(error) && attempt < maxRetries;
      opts.logger?.warn(
        { request_id: ctx.requestId, op, path: storagePath, attempt, status: error.status, error: error.message, retry: canRetry },
        'storage_error',
      );
      if (!canRetry) {
        throw new PipelineError('storage_failed', `supabase storage ${op} failed${error.status ? ` (HTTP ${error.status})` : ''}`, { cause: error });
      }
      await sleep(base * 2 ** attempt);
    }
  }

  return {
    kind: 'supabase',
    async put(storagePath, bytes, contentType, ctx) {
      await withRetry('upload', storagePath, ctx, () => bucket().upload(storagePath, bytes, { contentType, upsert: true, cacheControl: '3600' }));
    },
    async signedUrl(storagePath, ttlSeconds, ctx) {
      const data = await withRetry('sign', storagePath, ctx, () => bucket().createSignedUrl(storagePath, ttlSeconds));
      if (!data.signedUrl) throw new PipelineError('storage_failed', 'supabase storage returned no signed URL');
      return data.signedUrl;
    },
  };
}

// `wearon enqueue` against a real Redis (db 15), with a unique QUEUE_KEY so the real queue is never touched.
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildEnqueuePayloads, enqueueCommand } from '../../src/cli/commands/enqueue.ts';
import { UsageError } from '../../src/cli/command.ts';
import { loadConfig } from '../../src/config.ts';
import { parseTaskPayload } from '../../src/contract.ts';
import { silentLogger } from '../../src/logger.ts';
import { REDIS_URL, redisAvailable } from '../support/services.ts';

const ok = await redisAvailable();
// The platform's ids are UUIDs: the contract refuses others.
const USER = '0b9e8c1d-2f3a-4b5c-8d7e-6f5a4b3c2d1e';
const STORE = '7d1f3c2a-5b7e-4c1d-9a0b-2e4f6a8c0d11';

describe('buildEnqueuePayloads', () => {
  it('builds valid, distinct producer payloads', () => {
    const raws = buildEnqueuePayloads({ userId: USER, imageUrls: ['https://a.example/m.jpg', 'https://a.example/o.jpg'], count: 3 });
    const tasks = raws.map((r) => parseTaskPayload(r)).map((r) => (r.ok ? r.task : null));
    expect(tasks.every((t) => t?.channel === 'b2c' && t.user_id === USER && t.version === 1)).toBe(true);
    expect(new Set(tasks.map((t) => t!.session_id)).size).toBe(3);
    expect(new Set(tasks.map((t) => t!.task_id)).size).toBe(3);
  });

  it('repeats a given session id (duplicate deliveries)', () => {
    const raws = buildEnqueuePayloads({ storeId: STORE, imageUrls: ['https://a.example/m.jpg'], sessionId: 'sess-1', count: 2 });
    expect(raws.map((r) => JSON.parse(r).session_id)).toEqual(['sess-1', 'sess-1']);
  });

  it('refuses what the worker would refuse', () => {
    expect(() => buildEnqueuePayloads({ imageUrls: ['https://a/1.jpg'] })).toThrow(UsageError);
    expect(() => buildEnqueuePayloads({ userId: USER, imageUrls: [] })).toThrow(UsageError);
    expect(() => buildEnqueuePayloads({ userId: USER, imageUrls: ['file:///etc/passwd'] })).toThrow(/http\(s\)/);
    expect(() => buildEnqueuePayloads({ userId: USER, shopperEmail: 'a@b.c', imageUrls: ['https://a/1.jpg'] })).toThrow(UsageError);
  });
});

describe.skipIf(!ok)('wearon enqueue (real Redis)', () => {
  let admin: Redis;
  beforeAll(() => {
    admin = new Redis(REDIS_URL);
  });
  const queueKey = `test:${randomUUID()}:wearon:tasks:generation`;
  afterAll(async () => {
    await admin.del(queueKey);
    await admin.quit();
  });

  const run = async (args: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    const config = loadConfig({ REDIS_URL, QUEUE_KEY: queueKey });
    const code = await enqueueCommand.run(args, { config, logger: silentLogger(), out: (l) => out.push(l), err: (l) => err.push(l) });
    return { code, out, err };
  };

  it('LPUSHes resell payloads in FIFO order and prints one line per task', async () => {
    const r = await run(['--store', STORE, '--shopper-email', 'S@x.io', '--image', 'https://a.example/1.jpg', '--image=https://a.example/2.jpg', '--count', '3']);
    expect(r.code).toBe(0);
    expect(r.out).toHaveLength(3);
    const printed = r.out.map((l) => JSON.parse(l));
    expect(printed[0].account).toMatch(new RegExp(`^shopper:${STORE}\\.[0-9a-f]{32}$`));
    // the consumer takes from the right: the first printed task is taken first
    const fromRight = (await admin.lrange(queueKey, 0, -1)).reverse().map((s) => JSON.parse(s));
    expect(fromRight.map((t) => t.session_id)).toEqual(printed.map((p) => p.session_id));
    expect(fromRight[0].image_urls).toEqual(['https://a.example/1.jpg', 'https://a.example/2.jpg']);
    expect(fromRight[0].shopper_email).toBe('S@x.io');
  });

  it('pushes --raw text unvalidated', async () => {
    await admin.del(queueKey);
    const r = await run(['--raw', '{broken']);
    expect(r.code).toBe(0);
    expect(await admin.lrange(queueKey, 0, -1)).toEqual(['{broken']);
  });

  it('exits 2 on usage errors without touching Redis', async () => {
    await admin.del(queueKey);
    const r = await run(['--user', USER]);
    expect(r.code).toBe(2);
    expect(r.err.join('\n')).toContain('--image');
    expect(await admin.exists(queueKey)).toBe(0);
  });
});

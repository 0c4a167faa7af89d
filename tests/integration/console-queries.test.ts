// The console's read-model queries (src/projections/queries.ts) on both dialects, over rows the real projectors wrote
// from ledger events: finished generations per hour by outcome, and the movements one generation caused.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openSqliteEventStore, type SqliteEventStore } from '../../src/adapters/eventstore/sqlite/sqliteEventStore.ts';
import type { NewEvent } from '../../src/app/ports/eventStore.ts';
import { silentLogger } from '../../src/logger.ts';
import { consume } from '../../src/app/consumer.ts';
import { liveTarget, targetProcessor } from '../../src/projections/projector.ts';
import { PROJECTION_NAMES, PROJECTIONS } from '../../src/projections/projections.ts';
import { generationsPerHour, movementsOfGeneration } from '../../src/projections/queries.ts';
import { accountStream, generationStream } from '../../src/domain/streams.ts';
import { pgReadModel, sqliteReadModel, type TestReadModel } from '../support/readModels.ts';
import { postgresAvailable } from '../support/services.ts';

const pgOk = await postgresAvailable();
const NOW = Date.parse('2026-05-10T12:34:00Z');
const HOUR = 3_600_000;

const ev = (type: string, data: unknown, at: number): NewEvent => ({
  id: randomUUID(),
  type,
  data,
  metadata: { requestId: 'r', causationId: 'c', correlationId: 'c', workerId: 'worker-q', occurredAt: new Date(at).toISOString() },
});

const requested = (id: string, at: number) =>
  ev('GenerationRequested', {
    sessionId: id, taskId: id, channel: 'b2c', account: 'user:q', imageUrls: ['https://x/a.jpg'], prompt: '', requestId: `req-${id}`,
    payloadVersion: 1, requestedAt: new Date(at).toISOString(), acceptedAt: new Date(at).toISOString(), cost: 1,
  }, at);
const completed = (at: number) =>
  ev('GenerationCompleted', { resultPath: 'p.jpg', contentType: 'image/jpeg', provider: 'preview', usage: null, costUsd: null, timings: { downloadMs: 1, resizeMs: 1, generateMs: 1, uploadMs: 1, totalMs: 4 } }, at);

function suite(open: () => Promise<TestReadModel>) {
  let t: TestReadModel;
  let store: SqliteEventStore;
  let dir: string;

  beforeEach(async () => {
    t = await open();
    await t.rm.migrate();
    dir = mkdtempSync(path.join(tmpdir(), 'wearon-queries-'));
    store = openSqliteEventStore({ path: path.join(dir, 'ledger.sqlite') });
    const gen = async (id: string, at: number, ending: NewEvent) => {
      await store.append(generationStream(id), [requested(id, at - 60_000), ending], 'no_stream');
    };
    await gen('done-1', NOW - 10 * 60_000, completed(NOW - 10 * 60_000));
    await gen('done-2', NOW - 5 * 60_000, completed(NOW - 5 * 60_000));
    await gen('failed-1', NOW - 2 * HOUR, ev('GenerationFailed', { code: 'upstream_error', message: 'boom', userMessage: 'Generation failed' }, NOW - 2 * HOUR));
    await gen('rejected-1', NOW - 2 * HOUR, ev('GenerationRejected', { code: 'insufficient_credits', message: 'no credits' }, NOW - 2 * HOUR));
    await gen('old-1', NOW - 30 * HOUR, completed(NOW - 30 * HOUR));
    await store.append(generationStream('queued-1'), [requested('queued-1', NOW)], 'no_stream');
    await store.append(
      accountStream('user:q'),
      [
        ev('CreditsGranted', { amount: 5, reason: 'purchase', reference: 'o1' }, NOW - 11 * 60_000),
        ev('CreditDeducted', { generationId: 'done-1', amount: 1, requestId: 'req-done-1' }, NOW - 11 * 60_000),
        ev('CreditDeducted', { generationId: 'done-2', amount: 1, requestId: 'req-done-2' }, NOW - 6 * 60_000),
        ev('CreditCaptured', { generationId: 'done-1', amount: 1 }, NOW - 10 * 60_000),
      ],
      'no_stream',
    );
    for (const n of PROJECTION_NAMES) await consume({ store, processor: targetProcessor((fn) => t.rm.transaction(fn), liveTarget(PROJECTIONS[n])), batchSize: 100, until: await store.headPosition() });
  });

  afterEach(async () => {
    await store?.close();
    await t?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('counts finished generations per hour by outcome, every hour present', async () => {
    const hours = await generationsPerHour(t.rm, 24, NOW);
    expect(hours).toHaveLength(24);
    expect(hours[0]!.hour).toBe('2026-05-09T13:00:00.000Z');
    expect(hours[23]).toEqual({ hour: '2026-05-10T12:00:00.000Z', completed: 2, failed: 0, rejected: 0 });
    expect(hours[21]).toEqual({ hour: '2026-05-10T10:00:00.000Z', completed: 0, failed: 1, rejected: 1 });
    const sum = (k: 'completed' | 'failed' | 'rejected') => hours.reduce((a, h) => a + h[k], 0);
    expect([sum('completed'), sum('failed'), sum('rejected')]).toEqual([2, 1, 1]); // the 30-hour-old one is outside
  });

  it('lists the movements a generation caused, in log order', async () => {
    const m = await movementsOfGeneration(t.rm, 'done-1');
    expect(m.map((x) => [x.event_type, x.amount, x.balance_after, x.held_after])).toEqual([
      ['CreditDeducted', -1, 4, 1],
      ['CreditCaptured', 0, 3, 1], // done-2's hold is still open
    ]);
    expect(m[0]).toMatchObject({ account: 'user:q', occurred_at: new Date(NOW - 11 * 60_000).toISOString() });
    expect(await movementsOfGeneration(t.rm, 'queued-1')).toEqual([]);
  });
}

describe('console queries (SQLite read model)', () => suite(() => sqliteReadModel()));
describe.skipIf(!pgOk)('console queries (Postgres read model)', () => suite(() => pgReadModel('cq')));

// The one checkpointed consumer: batches in log order after the stored checkpoint, a moved checkpoint (compare-and-set
// mismatch) resumes from the stored one, bounded runs stop at `until`, following runs wait for new events.
import { describe, expect, it } from 'vitest';
import { openSqliteEventStore } from '../../src/adapters/eventstore/sqlite/sqliteEventStore.ts';
import { consume, type CheckpointedProcessor } from '../../src/app/consumer.ts';
import { START, comparePositions, type EventStore, type Position } from '../../src/app/ports/eventStore.ts';
import { waitFor } from '../support/deadlines.ts';

const meta = { requestId: 'r', causationId: 'c', correlationId: 'r', workerId: 'w', occurredAt: '2026-01-01T00:00:00.000Z' };

async function storeWith(n: number): Promise<EventStore> {
  const store = openSqliteEventStore({ path: ':memory:' });
  for (let i = 0; i < n; i++) {
    await store.append(`s-${i % 3}`, [{ id: `00000000-0000-5000-8000-${String(i).padStart(12, '0')}`, type: 'T', data: { i }, metadata: meta }], 'any');
  }
  return store;
}

/** A processor whose checkpoint lives in memory; `moveAt`: on that batch, someone else moves the checkpoint first. */
function memoryProcessor(moveTo?: { batch: number; position: () => Promise<Position> }) {
  let stored: Position = START;
  let batches = 0;
  const seen: number[] = [];
  const processor: CheckpointedProcessor = {
    checkpoint: async () => stored,
    async apply(events, expected) {
      batches += 1;
      if (moveTo && batches === moveTo.batch) stored = await moveTo.position();
      if (comparePositions(stored, expected) !== 0) return { ok: false, reason: 'mismatch' };
      for (const e of events) seen.push((e.data as { i: number }).i);
      stored = events[events.length - 1]!.position;
      return { ok: true, applied: events.length };
    },
  };
  return { processor, seen };
}

describe('consume', () => {
  it('applies every event once, in order, in batches, and stops at `until`', async () => {
    const store = await storeWith(25);
    const { processor, seen } = memoryProcessor();
    const head = (await store.headPosition())!;
    const batches: number[] = [];
    const cp = await consume({ store, processor, batchSize: 4, until: head, onBatch: (n) => batches.push(n) });
    expect(seen).toEqual(Array.from({ length: 25 }, (_, i) => i));
    expect(batches).toEqual([4, 4, 4, 4, 4, 4, 1]);
    expect(cp).toEqual(head);
    await store.close();
  });

  it('resumes from the stored checkpoint when another writer moved it', async () => {
    const store = await storeWith(20);
    const all = await store.readAll({ maxCount: 100 });
    const moved: Position[] = [];
    const { processor, seen } = memoryProcessor({ batch: 2, position: async () => all[11]!.position });
    await consume({ store, processor, batchSize: 5, until: (await store.headPosition())!, onMoved: (cp) => moved.push(cp) });
    expect(moved).toEqual([all[11]!.position]);
    expect(seen).toEqual([0, 1, 2, 3, 4, ...Array.from({ length: 8 }, (_, i) => 12 + i)]);
    await store.close();
  });

  it('follows the log: waits once caught up, picks up new events, stops on abort', async () => {
    const store = await storeWith(3);
    const { processor, seen } = memoryProcessor();
    const ac = new AbortController();
    let caughtUp = 0;
    const running = consume({ store, processor, batchSize: 10, pollMs: 5, signal: ac.signal, onRead: (_cp, idle) => void (idle && caughtUp++) });
    await waitFor('the consumer to catch up', () => caughtUp > 0, 5000);
    await store.append('s-9', [{ id: '00000000-0000-5000-8000-999999999999', type: 'T', data: { i: 3 }, metadata: meta }], 'no_stream');
    await waitFor('the new event', () => seen.length >= 4, 5000);
    ac.abort();
    await running;
    expect(seen).toEqual([0, 1, 2, 3]);
    await store.close();
  });
});

// The SQLite writer thread: owns the only write connection, so fsyncs never block the service's event loop, and
// every append that arrives while a commit is on disk joins the next group commit.
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { AppendWriter, openDatabase, toWire, type AppendRequest } from './writeBatch.ts';

export type ToWriter =
  | { kind: 'append'; id: number; request: AppendRequest }
  | { kind: 'snapshot'; streamId: string; revision: number; state: string }
  | { kind: 'close' };

export type FromWriter =
  | { kind: 'ready' }
  | { kind: 'results'; results: Array<{ id: number; ok: true; nextRevision: number; position: number } | { id: number; ok: false; error: ReturnType<typeof toWire> }> }
  | { kind: 'fatal'; ids: number[]; message: string }
  | { kind: 'closed' };

const port = parentPort!;
const db = openDatabase((workerData as { path: string }).path);
const writer = new AppendWriter(db);
let appends: Array<{ id: number; request: AppendRequest }> = [];
let snapshots: Array<{ streamId: string; revision: number; state: string }> = [];

function flush() {
  const batch = appends;
  const snaps = snapshots;
  appends = [];
  snapshots = [];
  if (batch.length === 0 && snaps.length === 0) return;
  try {
    const outcomes = writer.appendBatch(batch.map((b) => b.request), snaps);
    port.postMessage({
      kind: 'results',
      results: outcomes.map((o, i) =>
        o.ok
          ? { id: batch[i]!.id, ok: true, nextRevision: o.result.nextRevision, position: Number(o.result.position.commit) }
          : { id: batch[i]!.id, ok: false, error: toWire(o.error) },
      ),
    } satisfies FromWriter);
  } catch (err) {
    port.postMessage({ kind: 'fatal', ids: batch.map((b) => b.id), message: (err as Error).message } satisfies FromWriter);
  }
}

/** Queues one message; returns false on 'close'. */
function accept(msg: ToWriter): boolean {
  if (msg.kind === 'close') return false;
  if (msg.kind === 'append') appends.push({ id: msg.id, request: msg.request });
  else snapshots.push({ streamId: msg.streamId, revision: msg.revision, state: msg.state });
  return true;
}

port.on('message', (first: ToWriter) => {
  // Everything already waiting on the port joins this commit: one fsync for all of it, and no extra turn of the
  // event loop for a lone append.
  let open = accept(first);
  for (let next = open ? receiveMessageOnPort(port) : undefined; next; next = open ? receiveMessageOnPort(port) : undefined) {
    open = accept(next.message as ToWriter);
  }
  flush();
  if (!open) {
    db.close();
    port.postMessage({ kind: 'closed' } satisfies FromWriter);
    port.close();
  }
});
port.postMessage({ kind: 'ready' } satisfies FromWriter);

import pg from 'pg';
import path from 'node:path';
import os from 'node:os';
import { mkdtempSync } from 'node:fs';
import { openSqliteEventStore } from '../src/adapters/eventstore/sqlite/sqliteEventStore.ts';
import { openPgReadModel } from '../src/adapters/readmodel/postgres/pgReadModel.ts';
import { bulkLoadEvents } from '../bench/projections.ts';
import { liveTarget, targetProcessor } from '../src/projections/projector.ts';
import { PROJECTIONS } from '../src/projections/projections.ts';
import { readAfter } from '../src/app/log.ts';
const DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/test';
const times = new Map<string, number[]>();
const orig = pg.Client.prototype.query as any;
(pg.Client.prototype as any).query = function (...args: any[]) {
  const text = typeof args[0] === 'string' ? args[0] : args[0]?.text;
  const t = performance.now();
  const r = orig.apply(this, args);
  if (r && typeof r.then === 'function') r.then(() => { const k = String(text).slice(0, 40).replace(/\s+/g, ' '); (times.get(k) ?? times.set(k, []).get(k)!).push(performance.now() - t); }, () => {});
  return r;
};
const dir = mkdtempSync(path.join(os.tmpdir(), 'pgtx-'));
const store = openSqliteEventStore({ path: path.join(dir, 'l.sqlite') });
bulkLoadEvents(store, 12000);
const schema = `pgtx_${process.pid}`;
const admin = new pg.Client({ connectionString: DATABASE_URL }); await admin.connect();
await admin.query(`CREATE SCHEMA ${schema}`);
const rm = openPgReadModel({ connectionString: DATABASE_URL, schema });
await rm.migrate();
for (const name of ['session-status', 'credit-balances'] as const) {
  const lease = await rm.acquire(name);
  const proc = targetProcessor((fn) => lease.transaction(fn), liveTarget(PROJECTIONS[name]));
  let cp = await proc.checkpoint();
  // catch up the grants in big batches
  for (;;) { const ev = await readAfter(store, cp, Math.min(5000, 10000 - Number(cp.commit))); if (!ev.length || cp.commit >= 9999n) break; await proc.apply(ev, cp); cp = ev.at(-1)!.position; }
  times.clear();
  const t0 = performance.now(); let n = 0;
  for (let i = 0; i < 200; i++) { const ev = await readAfter(store, cp, 3); if (!ev.length) break; await proc.apply(ev, cp); cp = ev.at(-1)!.position; n++; }
  console.log(name, 'tx of 3 events:', ((performance.now() - t0) / n).toFixed(2), 'ms each');
  for (const [k, v] of times) console.log('  ', (v.reduce((a, b) => a + b, 0) / n).toFixed(2), 'ms/tx', v.length / n, 'x', k);
  await lease.release();
}
await rm.close(); await admin.query(`DROP SCHEMA ${schema} CASCADE`); await admin.end(); await store.close();

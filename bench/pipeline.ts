// Generation pipeline throughput: one service (Redis intake, SQLite ledger, local storage, the real OpenAI adapter
// against an instant stand-in), two 2-megapixel inputs per task, every part in a process of its own as deployed: the
// service as `wearon serve` without projectors (bench/wearonProcess.ts), the stand-ins (bench/standins.ts), and this
// process pushing tasks and asking /health as a load balancer would. Baseline in the same run: the image work alone
// (download + prepare of the same inputs, no ledger, no queue, in this process), and /health latency while idle.
// Inputs: two fixture photographs scaled to 2 megapixels (noise images when the fixtures are absent: slower to code).
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import sharp from 'sharp';
import { Redis } from 'ioredis';
import { openSqliteEventStore } from '../src/adapters/eventstore/sqlite/sqliteEventStore.ts';
import { readLog } from '../src/app/log.ts';
import { createInputImages } from '../src/adapters/images/prepare.ts';
import { buildProducerTask, serializeProducerTask } from '../src/contract.ts';
import type { GenerationCompleted } from '../src/domain/events.ts';
import { noisyJpeg } from '../tests/support/images.ts';
import { deleteKeys, peoplePhoto, REDIS_URL, redisAvailable } from '../tests/support/services.ts';
import { freePort } from '../tests/support/stack.ts';
import { startStandinsProcess } from './standins.ts';
import { completedOf, progressOf, startWearon } from './wearonProcess.ts';
import type { BenchSuite, Figure } from './types.ts';

/** The bench's paying user (the contract takes the platform's UUIDs only). */
const BENCH_USER = '00000000-0000-4000-8000-00000000be7c';

/** A photo scaled to about 2 megapixels (JPEG, quality 90), or a noise image of that size. */
export async function twoMegapixel(file: string, seed: number): Promise<Buffer> {
  const src = peoplePhoto(file);
  if (!src) return noisyJpeg(1600, 1250, seed);
  const meta = await sharp(src).metadata();
  const scale = Math.sqrt(2_000_000 / (meta.width! * meta.height!));
  return sharp(src).resize(Math.round(meta.width! * scale)).jpeg({ quality: 90 }).toBuffer();
}

/** The pipeline suites' service settings (Redis intake, the OpenAI stand-in, no rate limit, no pose), as the
 * environment of a `wearon` child process. */
export function pipelineBenchEnv(o: { dataDir: string; port: number; queueKey: string; openaiBaseUrl: string }): Record<string, string> {
  return {
    DATA_DIR: o.dataDir,
    HOST: '127.0.0.1',
    PORT: String(o.port),
    REDIS_URL,
    QUEUE_KEY: o.queueKey,
    OPENAI_API_KEY: 'sk-bench',
    OPENAI_BASE_URL: o.openaiBaseUrl,
    OPENAI_RATE_LIMIT_PER_MIN: '100000',
    OPENAI_RATE_LIMIT_KEY: `${o.queueKey}:ratelimit`, // not the default budget, which services on this Redis may be using
    IMAGE_FETCH_ALLOW_HOSTS: '127.0.0.1',
    WORKER_CONCURRENCY: process.env.BENCH_CONCURRENCY ?? '12',
    LEDGER_WRITER: process.env.LEDGER_WRITER ?? 'auto',
    IMAGE_THREAD_NICE: process.env.IMAGE_THREAD_NICE ?? '10',
    POSE_ENABLED: 'false',
  };
}

export const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]! : NaN;
};

/** /health answered again and again until `stop`: each answer's latency and when it was asked (ms since the epoch). */
async function healthLatencies(url: string, stop: () => boolean): Promise<{ at: number; ms: number }[]> {
  const out: { at: number; ms: number }[] = [];
  while (!stop()) {
    const at = Date.now();
    const t = performance.now();
    const r = await fetch(url);
    await r.arrayBuffer();
    out.push({ at, ms: performance.now() - t });
    await new Promise((r) => setTimeout(r, 5));
  }
  return out;
}

export const pipelineBench: BenchSuite = async (ctx) => {
  if (!(await redisAvailable())) {
    ctx.log('pipeline: skipped (Redis not reachable)');
    return [];
  }
  const tasks = ctx.quick ? 120 : 400;
  const standins = await startStandinsProcess('2mp');
  const urls = standins.urls;
  const queueKey = `bench:${randomUUID().slice(0, 8)}:tasks`;
  const port = await freePort();
  const dataDir = `${ctx.tmpDir}/pipeline`;
  const env = { ...pipelineBenchEnv({ dataDir, port, queueKey, openaiBaseUrl: standins.openaiBaseUrl }), PROJECTIONS_ENABLED: 'false' };
  const redis = new Redis(REDIS_URL);
  const base = `http://127.0.0.1:${port}`;
  const service = await startWearon('serve', env, base).catch(async (err: unknown) => {
    redis.disconnect();
    await standins.stop();
    throw err;
  });
  try {
    // Baseline 1: the image work alone, same inputs, same concurrency.
    const prepare = createInputImages({ allowHosts: ['127.0.0.1'], maxPixels: 40_000_000 });
    const baseN = ctx.quick ? 30 : 90;
    const t0 = performance.now();
    const cpu0 = process.cpuUsage(); // this process does nothing else meanwhile
    for (let i = 0; i < baseN; i += 6) {
      await Promise.all(Array.from({ length: Math.min(6, baseN - i) }, () => prepare.prepare(urls, { requestId: 'bench' })));
    }
    const prepareOnlyPerS = baseN / ((performance.now() - t0) / 1000);
    const cpu = process.cpuUsage(cpu0);
    const prepareOnlyCpuMs = (cpu.user + cpu.system) / 1000 / baseN;

    // Baseline 2: /health while idle.
    let idleDone = false;
    setTimeout(() => (idleDone = true), 1500);
    const idle = await healthLatencies(`${base}/health`, () => idleDone);

    await fetch(`${base}/v1/accounts/user:${BENCH_USER}/grants`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ amount: tasks + 100, reason: 'purchase', reference: 'bench' }),
    });
    const completed = () => completedOf(base);
    // Warm up (JIT, sharp, SDK) before the clock starts.
    for (let i = 0; i < 12; i++) await redis.lpush(queueKey, serializeProducerTask(buildProducerTask({ userId: BENCH_USER, imageUrls: urls })));
    while ((await completed()) < 12) await new Promise((r) => setTimeout(r, 50));

    ctx.log(`pipeline: ${tasks} tasks, 2 x 2 MP inputs each`);
    const loadTasks = Array.from({ length: tasks }, () => buildProducerTask({ userId: BENCH_USER, imageUrls: urls }));
    const loadIds = new Set(loadTasks.map((t) => `generation-${t.sessionId}`));
    const raws = loadTasks.map(serializeProducerTask);
    let loadDone = false;
    const healthUnderLoad = healthLatencies(`${base}/health`, () => loadDone);
    const cpuBefore = (await progressOf(base)).cpuSeconds;
    const start = Date.now(); // the ledger's clock: the run ends at the last load task's GenerationCompleted
    for (let i = 0; i < raws.length; i += 100) await redis.lpush(queueKey, ...raws.slice(i, i + 100));
    let last = 0;
    let cpuAfter: number;
    for (;;) {
      const now = await progressOf(base);
      const n = now.completed - 12;
      if (n >= tasks) {
        cpuAfter = now.cpuSeconds; // and at most one idle poll interval
        break;
      }
      if (n - last >= 100) {
        ctx.log(`pipeline: ${n}/${tasks} done`);
        last = n;
      }
      await new Promise((r) => setTimeout(r, 250)); // a scrape of /metrics: rarely, it loads the measured process
    }
    loadDone = true;
    const loaded = await healthUnderLoad;

    // Overhead at nominal load: one generation at a time (at saturation every stage also waits for the CPU).
    const seqN = ctx.quick ? 20 : 40;
    const before = await completed();
    const sequentialIds = new Set<string>();
    for (let i = 0; i < seqN; i++) {
      const t = buildProducerTask({ userId: BENCH_USER, imageUrls: urls });
      sequentialIds.add(`generation-${t.sessionId}`);
      await redis.lpush(queueKey, serializeProducerTask(t));
      while ((await completed()) < before + i + 1) await new Promise((r) => setTimeout(r, 20));
    }
    await service.stop();

    // Per-stage figures and overhead from the ledger itself.
    const events = [];
    const ledger = openSqliteEventStore({ path: path.join(dataDir, 'ledger.sqlite') });
    try {
      for await (const page of readLog(ledger)) events.push(...page);
    } finally {
      await ledger.close();
    }
    const requestedAt = new Map<string, number>();
    let lastLoadCompleted = start;
    const stages: Record<string, number[]> = { download: [], resize: [], generate: [], upload: [], overhead: [] };
    for (const e of events) {
      if (e.type === 'GenerationRequested') requestedAt.set(e.streamId, Date.parse(e.metadata.occurredAt));
      if (e.type !== 'GenerationCompleted') continue;
      if (loadIds.has(e.streamId)) lastLoadCompleted = Math.max(lastLoadCompleted, e.recordedAt.getTime());
      const t = (e.data as GenerationCompleted['data']).timings;
      stages.download!.push(t.downloadMs);
      stages.resize!.push(t.resizeMs);
      stages.generate!.push(t.generateMs);
      stages.upload!.push(t.uploadMs);
      // Everything from intake to completion except the upstream call (the task waits in Redis, not in the pipeline).
      if (sequentialIds.has(e.streamId)) stages.overhead!.push(Date.parse(e.metadata.occurredAt) - requestedAt.get(e.streamId)! - t.generateMs);
    }
    const perS = tasks / ((lastLoadCompleted - start) / 1000);
    const figures: Figure[] = [
      { name: 'pipeline.image_work_only.per_s', value: prepareOnlyPerS, unit: 'tasks/s' },
      {
        name: 'pipeline.generations.per_s',
        value: perS,
        unit: 'gen/s',
        baseline: 'pipeline.image_work_only.per_s',
        ratio: perS / prepareOnlyPerS,
        target: '>= 0.9x image work alone (issue 17) and >= 20 gen/s',
        met: perS / prepareOnlyPerS >= 0.9 && perS >= 20,
      },
    ];
    // The same comparison in CPU time, which the machine's size does not decide: on 2 cores the image work alone takes
    // both, and the stand-ins, Redis and this process share them with the service under load, so the throughput
    // ratio also counts their work. Here: the service's CPU per generation against the image work's per task.
    const serviceCpuMs = ((cpuAfter - cpuBefore) * 1000) / tasks;
    figures.push({ name: 'pipeline.image_work_only.cpu_ms_per_task', value: prepareOnlyCpuMs, unit: 'ms' });
    figures.push({
      name: 'pipeline.service.cpu_ms_per_generation',
      value: serviceCpuMs,
      unit: 'ms',
      baseline: 'pipeline.image_work_only.cpu_ms_per_task',
      ratio: prepareOnlyCpuMs / serviceCpuMs,
      target: '>= 0.9x: the service adds at most 1/9 of the image work (issue 17, in CPU time)',
      met: prepareOnlyCpuMs / serviceCpuMs >= 0.9,
    });
    for (const stage of ['download', 'resize', 'generate', 'upload'] as const) {
      figures.push({ name: `pipeline.stage.${stage}.p50_ms`, value: pct(stages[stage]!, 50), unit: 'ms' });
      figures.push({ name: `pipeline.stage.${stage}.p95_ms`, value: pct(stages[stage]!, 95), unit: 'ms' });
    }
    const overheadP95 = pct(stages.overhead!, 95);
    figures.push({ name: 'pipeline.overhead.p50_ms', value: pct(stages.overhead!, 50), unit: 'ms' });
    figures.push({ name: 'pipeline.overhead.p95_ms', value: overheadP95, unit: 'ms', target: '<= 150 ms (one at a time)', met: overheadP95 <= 150 });
    const idleP99 = pct(idle.map((h) => h.ms), 99);
    const loadP99 = pct(loaded.filter((h) => h.at <= lastLoadCompleted).map((h) => h.ms), 99); // the load, not its end
    figures.push({ name: 'health.idle.p99_ms', value: idleP99, unit: 'ms' });
    figures.push({
      name: 'health.under_load.p99_ms',
      value: loadP99,
      unit: 'ms',
      baseline: 'health.idle.p99_ms',
      ratio: idleP99 / loadP99,
      target: '<= 20 ms',
      met: loadP99 <= 20,
    });
    return figures;
  } finally {
    await service.stop(); // a no-op once stopped
    await deleteKeys(redis, queueKey);
    redis.disconnect();
    await standins.stop();
  }
};

// `/estimate-body` over loopback on a ~2-megapixel photo: latency, throughput at saturation, memory, invariance.
// Issue 6 targets: p95 <= 300 ms, >= 5 requests/s on 2 cores, RSS flat after warm-up, invariance spread <= 3%.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import sharp from 'sharp';
import type { BenchSuite, Figure } from './types.ts';
import { peoplePhoto } from '../tests/support/services.ts';
import { createHttpServer } from '../src/http/server.ts';
import { estimateBodyRoutes } from '../src/http/routes/estimateBody.ts';
import { createSizeRecStack } from '../src/compose/sizeRecommendation.ts';
import { createMetrics } from '../src/metrics.ts';
import { silentLogger } from '../src/logger.ts';

const PHOTO = 'yogait-man-armsdown-office.jpg';
const HEIGHT = 168;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export const sizeRecBench: BenchSuite = async (ctx) => {
  const src = peoplePhoto(PHOTO);
  if (!src) {
    ctx.log(`size-rec: SKIP, fixture ${PHOTO} not found (tests/fixtures/people or the shared folder)`);
    return [];
  }
  const workers = Number(process.env.POSE_WORKERS ?? 0) || undefined;
  const total = ctx.quick ? 100 : 500;
  const sequential = ctx.quick ? 30 : 100;
  const concurrency = 4;

  // ~2 MP test photo (1080x720 upscaled to 1732x1155) and its variants, made now in the scratch dir.
  const big = await sharp(src).resize(1732).jpeg({ quality: 90 }).toBuffer();
  const meta = await sharp(big).metadata();
  const sideways = await sharp(big).rotate(270).jpeg({ quality: 90 }).toBuffer();
  const images: Record<string, Buffer> = {
    'photo.jpg': big,
    'mirrored.jpg': await sharp(big).flop().jpeg({ quality: 90 }).toBuffer(),
    'half.jpg': await sharp(big).resize(Math.round(meta.width! / 2)).jpeg({ quality: 90 }).toBuffer(),
    'padded.jpg': await sharp(big)
      .extend({ top: 200, bottom: 200, left: 480, right: 480, background: { r: 128, g: 128, b: 128 } })
      .jpeg({ quality: 90 })
      .toBuffer(),
    'exif6.jpg': await sharp(sideways).withMetadata({ orientation: 6 }).jpeg({ quality: 90 }).toBuffer(),
  };
  const files = http.createServer((req, res) => {
    const body = images[(req.url ?? '/').slice(1)];
    if (!body) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'image/jpeg' }).end(body);
  });
  await new Promise<void>((r) => files.listen(0, '127.0.0.1', r));
  const filesBase = `http://127.0.0.1:${(files.address() as AddressInfo).port}`;

  const metrics = createMetrics({ defaults: false });
  const stack = createSizeRecStack(
    {
      POSE_MODEL: 'full',
      POSE_QUEUE_MAX: 64,
      POSE_TIMEOUT_MS: 10_000,
      POSE_WORKERS: workers,
      IMAGE_FETCH_ALLOW_HOSTS: ['127.0.0.1'],
      IMAGE_FETCH_TIMEOUT_MS: 5000,
      IMAGE_MAX_BYTES: 10 * 1024 * 1024,
      IMAGE_MAX_PIXELS: 40_000_000,
    },
    silentLogger(),
    metrics,
  ).value;
  const app = createHttpServer({ logger: silentLogger(), metrics });
  await app.register(estimateBodyRoutes({ recommend: stack.recommend }));
  try {
    await stack.pose.load();
    const address = await app.listen({ host: '127.0.0.1', port: 0 });
    const call = async (file = 'photo.jpg') => {
      const t = performance.now();
      const res = await fetch(`${address}/estimate-body`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ image_url: `${filesBase}/${file}`, height_cm: HEIGHT }),
      });
      const body = (await res.json()) as { recommended_size: string; measurements: Record<string, number> };
      if (res.status !== 200) throw new Error(`estimate-body answered ${res.status}: ${JSON.stringify(body)}`);
      return { ms: performance.now() - t, body };
    };

    // Warm-up under the same load as the measurement (all clients at once), so every worker's wasm heap and the
    // buffers of parallel requests reach their steady size before the first RSS reading.
    const warmup = ctx.quick ? 20 : 60;
    let warmed = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (warmed < warmup) {
          warmed++;
          await call();
        }
      }),
    );
    global.gc?.();
    const rssWarm = process.memoryUsage().rss;

    const lat: number[] = [];
    for (let i = 0; i < sequential; i++) lat.push((await call()).ms);
    lat.sort((a, b) => a - b);

    // Saturation: `concurrency` clients back to back until `total` requests are done.
    let done = 0;
    const cpuStart = process.cpuUsage(); // whole process: main thread + pose workers + libvips threads
    // The models run in worker threads, so the main loop (HTTP, /health) should stay responsive under saturation.
    const loopDelay = monitorEventLoopDelay({ resolution: 5 });
    loopDelay.enable();
    const satStart = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (done < total) {
          done++;
          await call();
        }
      }),
    );
    const perSecond = total / ((performance.now() - satStart) / 1000);
    loopDelay.disable();
    const loopP99 = loopDelay.percentile(99) / 1e6;
    const cpu = process.cpuUsage(cpuStart);
    const cpuMsPerRequest = (cpu.user + cpu.system) / 1000 / total;
    // Load-independent view: what the measured CPU cost allows on the issue's 2 cores when nothing else runs.
    const loadAvg = os.loadavg()[0]!;
    global.gc?.();
    const rssAfter = process.memoryUsage().rss;
    const growth = (rssAfter - rssWarm) / rssWarm;

    const ref = (await call()).body;
    let spread = 0;
    let sameSize = true;
    for (const v of ['mirrored.jpg', 'half.jpg', 'padded.jpg', 'exif6.jpg']) {
      const b = (await call(v)).body;
      if (b.recommended_size !== ref.recommended_size) sameSize = false;
      for (const k of Object.keys(ref.measurements)) {
        spread = Math.max(spread, Math.abs(b.measurements[k]! - ref.measurements[k]!) / ref.measurements[k]!);
      }
    }

    const p50 = percentile(lat, 50);
    const p95 = percentile(lat, 95);
    ctx.log(
      `size-rec: ${os.availableParallelism()} cpus, ${workers ?? `auto (${Math.min(2, os.availableParallelism())})`} pose worker(s), p50 ${p50.toFixed(0)} ms, p95 ${p95.toFixed(0)} ms, ` +
        `${perSecond.toFixed(1)} req/s at ${concurrency} clients, RSS ${(rssWarm / 2 ** 20).toFixed(0)} -> ${(rssAfter / 2 ** 20).toFixed(0)} MB ` +
        `after ${total} requests, invariance spread ${(spread * 100).toFixed(2)}% (same size: ${sameSize}), ` +
        `${cpuMsPerRequest.toFixed(0)} CPU-ms/request (=> ${(2000 / cpuMsPerRequest).toFixed(1)} req/s on 2 idle cores), load average ${loadAvg.toFixed(1)}, ` +
        `main event-loop delay p99 ${loopP99.toFixed(1)} ms at saturation`,
    );
    const figures: Figure[] = [
      { name: 'size_rec.latency.p50_ms', value: p50, unit: 'ms' },
      { name: 'size_rec.latency.p95_ms', value: p95, unit: 'ms', target: '<= 300 ms', met: p95 <= 300 },
      { name: 'size_rec.saturation.per_s', value: perSecond, unit: 'req/s', target: '>= 5 req/s', met: perSecond >= 5 },
      { name: 'size_rec.saturation.event_loop_delay_p99_ms', value: loopP99, unit: 'ms' },
      { name: 'size_rec.cpu_ms_per_request', value: cpuMsPerRequest, unit: 'ms' },
      { name: 'size_rec.load_average_1m', value: loadAvg, unit: '' },
      { name: 'size_rec.rss.after_warmup_mb', value: rssWarm / 2 ** 20, unit: 'MB' },
      {
        name: 'size_rec.rss.after_requests_mb',
        value: rssAfter / 2 ** 20,
        unit: 'MB',
        target: 'flat (<= 10% above warm-up)',
        met: growth <= 0.1,
      },
      {
        name: 'size_rec.invariance.spread_pct',
        value: spread * 100,
        unit: '%',
        target: '<= 3% and the same size',
        met: spread <= 0.03 && sameSize,
      },
    ];
    return figures;
  } finally {
    await app.close();
    await stack.pose.close();
    await new Promise((r) => files.close(r));
  }
};

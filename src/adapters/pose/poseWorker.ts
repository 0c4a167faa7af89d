// Worker-thread entry: loads the models once, then decodes and estimates one image at a time (LiteRT's wasm
// compute is synchronous, so keeping it here leaves the main event loop and /health free).
import { parentPort, workerData } from 'node:worker_threads';
import { createBlazePose } from './blazepose.ts';
import { decodeForPose, ImageDecodeError } from './decode.ts';
import { loadPoseModels } from './litert.ts';
import type { FromWorker, PoseModelName, ToWorker } from './types.ts';

const port = parentPort!;
const send = (m: FromWorker) => port.postMessage(m);
const { model, mirrorAverage } = workerData as { model: PoseModelName; mirrorAverage: boolean };

const t0 = performance.now();
try {
  const models = await loadPoseModels(model);
  const pose = createBlazePose(models.detector, models.landmarker, { mirrorAverage, roiLandmarker: models.roiLandmarker });
  let chain = Promise.resolve();
  port.on('message', (msg: ToWorker) => {
    if (msg.type !== 'estimate') return;
    chain = chain.then(async () => {
      const start = performance.now();
      try {
        const img = await decodeForPose(msg.bytes, msg.maxPixels);
        const decodeMs = performance.now() - start;
        const core = await pose.estimate(img.rgb, img.width, img.height);
        const result = { ...core, imageWidth: img.originalWidth, imageHeight: img.originalHeight };
        if (result.found) result.timings.decodeMs = decodeMs;
        send({ type: 'result', id: msg.id, result, inferenceMs: performance.now() - start - decodeMs });
      } catch (err) {
        const kind = err instanceof ImageDecodeError ? 'decode' : 'internal';
        send({ type: 'error', id: msg.id, kind, message: err instanceof Error ? err.message : String(err) });
      }
    });
  });
  send({ type: 'ready', loadMs: performance.now() - t0 });
} catch (err) {
  send({ type: 'load_failed', message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
}

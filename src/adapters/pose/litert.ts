// Loads LiteRT.js (wasm, XNNPACK CPU) in Node 20 and compiles the BlazePose models shipped in @mediapipe/pose.
// LiteRT.js is written for browsers/web workers; these shims are what Node needs (measured: see docs). Every
// worker thread has its own globalThis, so the worker that runs the models installs them itself.
import { createRequire } from 'node:module';
import { readFile } from 'node:fs/promises';
import fs from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import type { ModelRunner } from './blazepose.ts';
import type { PoseModelName } from './types.ts';

const require = createRequire(import.meta.url);

function installShims(wasmDir: string): void {
  const g = globalThis as Record<string, unknown>;
  g.self ??= globalThis; // "self is not defined"
  g.require ??= require; // the emscripten glue calls require('fs') etc.
  g.__dirname = wasmDir; // where the glue finds its .wasm (an eval'd worker already defines it as '.')
  // LiteRT loads its glue script with importScripts (a web-worker API); without it it reaches for `document`.
  g.importScripts ??= (...urls: string[]) => {
    for (const u of urls) vm.runInThisContext(fs.readFileSync(u.startsWith('file:') ? new URL(u) : u, 'utf8'), { filename: u });
  };
}

export interface PoseModels {
  detector: ModelRunner;
  landmarker: ModelRunner;
  /** the lite landmark model for the crop-placing first pass (absent when `model` is lite) */
  roiLandmarker?: ModelRunner;
}

export async function loadPoseModels(model: PoseModelName): Promise<PoseModels> {
  const wasmDir = path.join(path.dirname(require.resolve('@litertjs/core/package.json')), 'wasm') + path.sep;
  const poseDir = path.dirname(require.resolve('@mediapipe/pose/package.json'));
  installShims(wasmDir);
  const litert = await import('@litertjs/core');
  await litert.loadLiteRt(wasmDir);
  // pose_solution_packed_assets.data is byte-for-byte pose_detection.tflite
  const [detBytes, lmBytes, liteBytes] = await Promise.all([
    readFile(path.join(poseDir, 'pose_solution_packed_assets.data')),
    readFile(path.join(poseDir, `pose_landmark_${model}.tflite`)),
    model === 'lite' ? null : readFile(path.join(poseDir, 'pose_landmark_lite.tflite')),
  ]);
  const compile = async (bytes: Buffer): Promise<ModelRunner> => {
    const compiled = await litert.loadAndCompile(new Uint8Array(bytes), { accelerator: 'wasm' });
    const shape = compiled.getInputDetails()[0]!.shape;
    const dims = Array.from(shape as ArrayLike<number>);
    return {
      async run(input, want) {
        const t = new litert.Tensor(input, dims);
        let outs: InstanceType<typeof litert.Tensor>[] = [];
        try {
          outs = await compiled.run([t]);
          return want.map((i) => (outs[i]!.toTypedArray() as Float32Array).slice());
        } finally {
          t.delete();
          for (const o of outs) o.delete();
        }
      },
    };
  };
  return {
    detector: await compile(detBytes),
    landmarker: await compile(lmBytes),
    roiLandmarker: liteBytes ? await compile(liteBytes) : undefined,
  };
}

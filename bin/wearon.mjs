#!/usr/bin/env node
// The `wearon` command. Runs compiled code from dist/ when built (production image), else the TypeScript source.
// Room in libuv's pool for file and DNS work beside the image jobs (set before the pool starts).
process.env.UV_THREADPOOL_SIZE ??= '8';
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const compiled = path.join(root, 'dist', 'cli', 'main.js');
if (existsSync(compiled)) {
  await import(pathToFileURL(compiled).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(path.join(root, 'src', 'cli', 'main.ts')).href);
}

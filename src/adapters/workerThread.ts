// Starts a worker thread from a module next to the caller: the compiled .js in production, the .ts source through
// the tsx loader when running from source (tsx, vitest), since a worker does not inherit the parent's loader hooks.
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker, type WorkerOptions } from 'node:worker_threads';

const require = createRequire(import.meta.url);

/** `callerUrl` is the caller's import.meta.url; `name` the module's base name without extension. */
export function spawnModuleWorker(callerUrl: string, name: string, options: WorkerOptions): Worker {
  if (callerUrl.endsWith('.js')) return new Worker(new URL(`./${name}.js`, callerUrl), options);
  const tsx = pathToFileURL(require.resolve('tsx/esm/api').replace(/\.cjs$/, '.mjs')).href;
  const entry = new URL(`./${name}.ts`, callerUrl).href;
  const code = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`;
  return new Worker(code, { ...options, eval: true });
}

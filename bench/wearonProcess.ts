// The service as deployed, for the benches that drive it: `wearon <command>` in a child process of its own, so that
// what the bench does (pushing tasks, polling, measuring /health) never waits on the measured process's event loop,
// nor the other way round.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** `wearon <command>` in a child process; resolves once /health/live answers. */
export async function startWearon(command: 'serve' | 'worker' | 'project', env: Record<string, string>, base: string): Promise<{ stop: () => Promise<void> }> {
  const child = spawn(process.execPath, [fileURLToPath(new URL('../bin/wearon.mjs', import.meta.url)), command], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  const until = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`wearon ${command} exited with ${child.exitCode}`);
    if (await fetch(`${base}/health/live`).then((r) => r.ok, () => false)) return { stop };
    if (Date.now() > until) {
      await stop();
      throw new Error(`wearon ${command} did not start within 60 s`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Completed generations as the worker's /metrics counts them, and the CPU time its process has used so far. */
export async function progressOf(base: string): Promise<{ completed: number; cpuSeconds: number }> {
  const text = await (await fetch(`${base}/metrics`)).text();
  let completed = 0;
  for (const m of text.matchAll(/^wearon_generations_total\{[^}]*outcome="completed"[^}]*\} (\d+)/gm)) completed += Number(m[1]);
  const cpu = /^wearon_process_cpu_seconds_total (\S+)/m.exec(text);
  return { completed, cpuSeconds: cpu ? Number(cpu[1]) : NaN };
}

/** Completed generations as the worker's /metrics counts them. */
export async function completedOf(base: string): Promise<number> {
  return (await progressOf(base)).completed;
}

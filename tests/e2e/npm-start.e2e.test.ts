// `npm start` as a newcomer runs it: no configuration, no network (no Redis, no OpenAI key); the service comes up on
// the embedded defaults, reports ready, and a SIGTERM to npm stops it cleanly with exit code 0.
import { spawn } from 'node:child_process';
import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { freePort, ROOT, tempDir, waitFor } from '../support/stack.ts';
import { scaled } from '../support/deadlines.ts';

describe('npm start', () => {
  it('starts on embedded defaults and exits 0 on SIGTERM', async () => {
    const port = await freePort();
    const cwd = tempDir('start');
    // Only PATH and HOME from the outside: what a fresh shell would have. DATA_DIR defaults to ./data under cwd.
    const child = spawn('npm', ['start', '--prefix', ROOT], {
      cwd,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? os.tmpdir(), PORT: String(port), DATA_DIR: `${cwd}/data` },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const health = await waitFor('a ready /health', async () => {
      const r = await fetch(`http://127.0.0.1:${port}/health`).catch(() => null);
      const body = r ? ((await r.json()) as { status: string; checks: Record<string, { ok: boolean }> }) : null;
      return body?.status === 'ok' ? body : undefined;
    }, 60_000);
    expect(Object.keys(health.checks).sort()).toEqual(['ledger', 'pose', 'projections', 'read_model', 'worker']);
    expect(out).toMatch(/PREVIEW/);
    expect(out).toMatch(/Redis intake is off/);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(out).toMatch(/service_stopped/);
  }, scaled(90_000));
});

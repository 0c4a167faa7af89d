// Helpers for the production-stack tests (tests/integration/stack-*.test.ts): find the Debian tools, render the shipped
// nginx config for an unprivileged loopback run, start the real service, wait for things.
import { randomUUID } from 'node:crypto';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { scaled, waitFor } from './deadlines.ts';

export { waitFor } from './deadlines.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Absolute path of a tool on PATH (or /usr/sbin), or null. */
export function which(tool: string): string | null {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin', '/sbin'];
  for (const d of dirs) {
    const p = path.join(d, tool);
    if (d && existsSync(p)) return p;
  }
  return null;
}

/**
 * The tool's path, or null after printing why its tests skip. Under CI=true a missing tool throws: a green CI must
 * mean these tests ran (.ci/run installs them with scripts/install-test-tools.sh).
 */
export function requireTool(tool: string, pkg: string): string | null {
  const p = which(tool);
  if (p) return p;
  const reason = `${tool} not found (Debian package ${pkg})`;
  if (process.env.CI === 'true') throw new Error(`${reason}; CI=true requires it`);
  console.warn(`SKIP: ${reason}; scripts/install-test-tools.sh installs it`);
  return null;
}

/** python3 when it has the yaml module (Debian python3-yaml), else null after printing why; under CI=true it throws. */
export async function pythonWithYaml(unchecked: string): Promise<string | null> {
  const python = which('python3');
  if (python && (await run(python, ['-c', 'import yaml'])).code === 0) return python;
  const reason = 'python3 with the yaml module (Debian package python3-yaml) is not available';
  if (process.env.CI === 'true') throw new Error(`${reason}; CI=true requires it`);
  console.warn(`SKIP: ${reason}; ${unchecked}; scripts/install-test-tools.sh installs it`);
  return null;
}

/** A fresh directory under the test run's temp root (removed at the end of the run), or the OS temp dir. */
export function tempDir(prefix: string): string {
  return mkdtempSync(path.join(process.env.WEARON_TEST_TMP ?? os.tmpdir(), `wearon-${prefix}-`));
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Replaces ${NAME} like the nginx image's envsubst step: only the given names, everything else untouched. */
export function envsubst(text: string, vars: Record<string, string>): string {
  return text.replace(/\$\{([A-Z_][A-Z0-9_]*)\}/g, (whole, name: string) => (name in vars ? vars[name]! : whole));
}

export interface NginxLayout {
  dir: string;
  conf: string;
  httpPort: number;
  httpsPort: number;
}

/**
 * Renders nginx/nginx.conf + templates + snippets into a temp prefix: loopback high ports, throwaway self-signed
 * certificate (openssl), paths under the prefix. Only paths that need root are rewritten; directives stay as shipped.
 */
export async function renderNginx(opts: { workerUpstream: string; grafanaUpstream?: string }): Promise<NginxLayout> {
  const dir = tempDir('nginx');
  // Run as root (CI), nginx workers drop to `nobody`: they must be able to read the webroot under this dir.
  chmodSync(dir, 0o755);
  const httpPort = await freePort();
  const httpsPort = await freePort();
  for (const sub of ['conf.d', 'snippets', 'ssl', 'acme', 'logs', 'tmp']) mkdirSync(path.join(dir, sub));
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost',
    '-keyout', path.join(dir, 'ssl', 'privkey.pem'), '-out', path.join(dir, 'ssl', 'fullchain.pem'),
  ], { stdio: 'ignore' });

  const vars = {
    DOMAIN: 'localhost',
    NGINX_HTTP_LISTEN: `127.0.0.1:${httpPort}`,
    NGINX_HTTPS_LISTEN: `127.0.0.1:${httpsPort}`,
    NGINX_SSL_DIR: path.join(dir, 'ssl'),
    ACME_WEBROOT: path.join(dir, 'acme'),
    WORKER_UPSTREAM: opts.workerUpstream,
    GRAFANA_UPSTREAM: opts.grafanaUpstream ?? '127.0.0.1:9',
    NGINX_RESOLVER: '127.0.0.1',
    NGINX_SNIPPETS: path.join(dir, 'snippets'),
  };
  const tplDir = path.join(ROOT, 'nginx', 'templates');
  for (const f of readdirSync(tplDir).filter((f) => f.endsWith('.template'))) {
    writeFileSync(path.join(dir, 'conf.d', f.replace(/\.template$/, '')), envsubst(readFileSync(path.join(tplDir, f), 'utf8'), vars));
  }
  const snipDir = path.join(ROOT, 'nginx', 'snippets');
  for (const f of readdirSync(snipDir)) writeFileSync(path.join(dir, 'snippets', f), readFileSync(path.join(snipDir, f)));

  const tmp = path.join(dir, 'tmp');
  const main = readFileSync(path.join(ROOT, 'nginx', 'nginx.conf'), 'utf8')
    .replace(/^user .*$/m, '# user: not root in tests')
    .replace(/^pid .*$/m, `pid ${path.join(dir, 'nginx.pid')};`)
    .replace(/^error_log .*$/m, `error_log ${path.join(dir, 'logs', 'error.log')} info;`)
    .replace('access_log /dev/stdout json;', `access_log ${path.join(dir, 'logs', 'access.log')} json;`)
    .replace('include /etc/nginx/conf.d/*.conf;', `include ${path.join(dir, 'conf.d')}/*.conf;`)
    // Debian's compiled-in temp paths live under /var/lib/nginx (root only).
    .replace(/http \{/, `http {\n    client_body_temp_path ${tmp}/body;\n    proxy_temp_path ${tmp}/proxy;\n    fastcgi_temp_path ${tmp}/fastcgi;\n    uwsgi_temp_path ${tmp}/uwsgi;\n    scgi_temp_path ${tmp}/scgi;`);
  const conf = path.join(dir, 'nginx.conf');
  writeFileSync(conf, main);
  return { dir, conf, httpPort, httpsPort };
}

export async function waitForPort(port: number, timeoutMs = 30_000): Promise<void> {
  await waitFor(`port ${port} to open`, () =>
    new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => (s.destroy(), resolve(false)));
    }), timeoutMs);
}

export interface RunningService {
  port: number;
  child: ChildProcess;
  output: () => string;
  stop: () => Promise<void>;
}

/** The serve command exists once the CLI main and its `serve` command are in the tree. */
export function serveCommandPresent(): boolean {
  return existsSync(path.join(ROOT, 'src', 'cli', 'main.ts')) && existsSync(path.join(ROOT, 'src', 'cli', 'commands', 'serve.ts'));
}

/**
 * Starts `node bin/wearon.mjs serve` on a free loopback port with a temp DATA_DIR (or the given one, to restart on the
 * same ledger), pose off, no Redis unless given.
 */
export async function startService(extraEnv: Record<string, string> = {}, options: { dataDir?: string; port?: number } = {}): Promise<RunningService & { dataDir: string }> {
  const port = options.port ?? (await freePort());
  const dataDir = options.dataDir ?? tempDir('svc');
  let out = '';
  const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'wearon.mjs'), 'serve'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? os.tmpdir(),
      NODE_ENV: 'test',
      HOST: '127.0.0.1',
      PORT: String(port),
      DATA_DIR: dataDir,
      POSE_ENABLED: 'false',
      LOG_LEVEL: 'warn',
      // Its own upstream budget: services of other tests (and a bench beside the suite) share this Redis.
      OPENAI_RATE_LIMIT_KEY: `test:${randomUUID()}:ratelimit`,
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), scaled(10_000)); // SIGTERM's grace, then no mercy
      await exited;
      clearTimeout(timer);
    }
  };
  try {
    await waitFor('the service /health/live', async () => {
      if (child.exitCode !== null) throw new Error(`service exited with ${child.exitCode}:\n${out}`);
      const r = await fetch(`http://127.0.0.1:${port}/health/live`);
      return r.ok;
    }, 60_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return { port, child, output: () => out, stop, dataDir };
}

/** Runs a child to completion, returning its exit code and combined output. */
export function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: opts.cwd ?? ROOT, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    child.on('error', (err) => resolve({ code: -1, out: out + String(err) }));
    child.on('exit', (code) => resolve({ code: code ?? -1, out }));
  });
}

/** Waits until every projection of the service at `base` has applied the whole log. */
export function projectionsCaughtUp(base: string, timeoutMs = 30_000): Promise<boolean> {
  return waitFor('projections to catch up', async () => {
    const r = await fetch(`${base}/v1/projections`);
    const body = (await r.json()) as { projections: { lag: number }[] };
    return r.ok && body.projections.length > 0 && body.projections.every((p) => p.lag === 0);
  }, timeoutMs);
}

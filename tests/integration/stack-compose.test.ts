// docker-compose.prod.yml validates with a complete .env (docker-compose v1 from Debian, or the v2 plugin), and the
// rendered stack keeps its promises: pinned images, health-gated start order, restart policies, limits that fit a
// 4 vCPU / 8 GB VPS, only 80/443 published. Plus static checks of the Dockerfile, .dockerignore, Loki and Alloy.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { pythonWithYaml, ROOT, run, tempDir, which } from '../support/stack.ts';

const read = (rel: string) => readFileSync(path.join(ROOT, rel), 'utf8');

/** docker-compose v1, else `docker compose` v2; null (with a printed reason, or a failure under CI) when neither. */
async function composeCommand(): Promise<string[] | null> {
  const v1 = which('docker-compose');
  if (v1) return [v1];
  const docker = which('docker');
  if (docker && (await run(docker, ['compose', 'version'])).code === 0) return [docker, 'compose'];
  const reason = 'neither docker-compose (Debian package docker-compose) nor the docker compose plugin is installed';
  if (process.env.CI === 'true') throw new Error(`${reason}; CI=true requires it`);
  console.warn(`SKIP: ${reason}`);
  return null;
}
const compose = await composeCommand();

const TEST_ENV = `COMPOSE_PROJECT_NAME=wearon
WEARON_IMAGE=ghcr.io/example/wearon-worker
WEARON_TAG=0123456789abcdef
DOMAIN=wearon.example.test
CERTBOT_EMAIL=ops@example.test
API_TOKEN=test-token
OPENAI_API_KEY=sk-test
URL_SIGNING_SECRET=test-signing
REDIS_PASSWORD=test-redis
GF_SECURITY_ADMIN_PASSWORD=test-grafana
SMTP_HOST=smtp.example.test:587
SMTP_FROM=alerts@example.test
ALERT_EMAIL_TO=oncall@example.test
`;

/** Splits the rendered `services:` section into per-service text blocks (2-space indented keys). */
function serviceBlocks(config: string): Map<string, string> {
  const lines = config.split('\n');
  const start = lines.findIndex((l) => l === 'services:');
  const blocks = new Map<string, string>();
  let current: string | null = null;
  for (const line of lines.slice(start + 1)) {
    if (/^\S/.test(line)) break;
    const m = /^ {2}([a-z0-9-]+):$/.exec(line);
    if (m) {
      current = m[1]!;
      blocks.set(current, '');
    } else if (current) {
      blocks.set(current, blocks.get(current)! + line + '\n');
    }
  }
  return blocks;
}

const megabytes = (v: string) => {
  const m = /^"?(\d+(?:\.\d+)?)([kKmMgG])?[bB]?"?$/.exec(v.trim());
  if (!m) throw new Error(`memory value ${v}`);
  const n = Number(m[1]);
  const unit = (m[2] ?? '').toLowerCase();
  return unit === 'g' ? n * 1024 : unit === 'm' ? n : unit === 'k' ? n / 1024 : n / 1024 / 1024;
};

describe.skipIf(!compose)('docker-compose.prod.yml', () => {
  let rendered = '';

  it('validates with a complete .env', async () => {
    const dir = tempDir('compose');
    const envFile = path.join(dir, '.env');
    writeFileSync(envFile, TEST_ENV);
    const { code, out } = await run(compose![0]!, [...compose!.slice(1), '-f', path.join(ROOT, 'docker-compose.prod.yml'), '--env-file', envFile, 'config']);
    expect(out).toContain('services:');
    expect(code).toBe(0);
    rendered = out;
  });

  it('refuses to render without the required secrets', async () => {
    const dir = tempDir('compose');
    const envFile = path.join(dir, '.env');
    writeFileSync(envFile, TEST_ENV.replace(/^OPENAI_API_KEY=.*$/m, 'OPENAI_API_KEY='));
    const { code, out } = await run(compose![0]!, [...compose!.slice(1), '-f', path.join(ROOT, 'docker-compose.prod.yml'), '--env-file', envFile, 'config']);
    expect(code).not.toBe(0);
    expect(out).toContain('OPENAI_API_KEY');
  });

  it('has every service of the stack, each pinned, restarting, limited', () => {
    const blocks = serviceBlocks(rendered);
    expect([...blocks.keys()].sort()).toEqual(
      ['alloy', 'certbot', 'grafana', 'kurrentdb', 'loki', 'nginx', 'node-exporter', 'prometheus', 'redis', 'worker'].sort(),
    );
    for (const [name, block] of blocks) {
      const image = /^ {4}image: (\S+)$/m.exec(block)?.[1];
      expect(image, name).toBeDefined();
      expect(image, `${name} image must carry a version tag`).toMatch(/:[^:/]*\d[^:/]*$/);
      expect(image, name).not.toMatch(/:latest$/);
      expect(block, `${name} restart policy`).toMatch(/^ {4}restart: (unless-stopped|always)$/m);
      expect(block, `${name} memory limit`).toMatch(/limits:\n(?:\s+\S.*\n)*?\s+memory: /);
      expect(block, `${name} cpu limit`).toMatch(/limits:\n(?:\s+\S.*\n)*?\s+cpus: /);
    }
  });

  it('publishes only 80 and 443, on nginx', () => {
    const published = [...rendered.matchAll(/published: "?(\d+)"?/g)].map((m) => Number(m[1]));
    const shortForm = [...rendered.matchAll(/^\s+- "?(\d+):\d+"?$/gm)].map((m) => Number(m[1]));
    expect([...published, ...shortForm].sort()).toEqual([443, 80].sort());
    const blocks = serviceBlocks(rendered);
    for (const [name, block] of blocks) if (name !== 'nginx') expect(block, name).not.toMatch(/^ {4}ports:/m);
  });

  it('starts in order: health checks with depends_on conditions', () => {
    const blocks = serviceBlocks(rendered);
    for (const name of ['worker', 'redis', 'kurrentdb', 'nginx', 'prometheus', 'grafana', 'loki', 'node-exporter']) {
      expect(blocks.get(name), `${name} healthcheck`).toMatch(/^ {4}healthcheck:/m);
    }
    expect(blocks.get('worker')).toMatch(/redis:\n\s+condition: service_healthy/);
    expect(blocks.get('worker')).toMatch(/kurrentdb:\n\s+condition: service_healthy/);
    expect(blocks.get('grafana')).toMatch(/prometheus:\n\s+condition: service_healthy/);
    expect(blocks.get('alloy')).toMatch(/loki:\n\s+condition: service_healthy/);
    expect(blocks.get('redis')).toContain('--appendonly yes');
  });

  it('fits a 4 vCPU / 8 GB VPS, even with a second worker during a rolling update', () => {
    const blocks = serviceBlocks(rendered);
    let total = 0;
    for (const [name, block] of blocks) {
      const mem = megabytes(/limits:\n(?:\s+\S.*\n)*?\s+memory: (\S+)/.exec(block)![1]!);
      total += name === 'worker' ? 2 * mem : mem;
    }
    // 8 GB host: leave at least 1 GiB for the kernel, Docker and page cache.
    expect(total).toBeLessThanOrEqual(7 * 1024);
    const workerCpus = Number(/limits:\n(?:\s+\S.*\n)*?\s+cpus: ["']?([\d.]+)/.exec(blocks.get('worker')!)![1]);
    expect(workerCpus).toBeLessThanOrEqual(4);
  });
});

// Python's yaml module comes with Debian's docker-compose (python3-yaml); the Grafana, Loki and workflow files have no
// other parser here.
const python = await pythonWithYaml('YAML syntax of the stack files is not checked');
const pyYaml = python !== null;

describe.skipIf(!pyYaml)('YAML files of the stack', () => {
  it('all parse', async () => {
    const files = [
      '.github/workflows/deploy.yml',
      'docker-compose.prod.yml',
      'monitoring/loki/loki.yml',
      'monitoring/prometheus/prometheus.yml',
      'monitoring/grafana/provisioning/datasources/datasources.yml',
      'monitoring/grafana/provisioning/dashboards/dashboards.yml',
      'monitoring/grafana/provisioning/alerting/contact-points.yml',
      'monitoring/grafana/provisioning/alerting/policies.yml',
      'monitoring/grafana/provisioning/alerting/rules.yml',
    ].map((f) => path.join(ROOT, f));
    const script = 'import sys, yaml\nfor f in sys.argv[1:]:\n    yaml.safe_load(open(f))\nprint("parsed", len(sys.argv) - 1)';
    const { code, out } = await run(python!, ['-c', script, ...files]);
    expect(out.trim()).toBe(`parsed ${files.length}`);
    expect(code).toBe(0);
  });
});

describe('image and log pipeline files', () => {
  it('Dockerfile: pinned Node LTS slim, multi-stage, production deps, pose model, non-root, init, node healthcheck', () => {
    const df = read('Dockerfile');
    expect(df).toMatch(/^ARG NODE_IMAGE=node:\d+\.\d+\.\d+-[a-z]+-slim$/m);
    expect(Number(/NODE_IMAGE=node:(\d+)/.exec(df)![1]) % 2).toBe(0); // even majors are the LTS lines
    expect(df.match(/^FROM /gm)!.length).toBeGreaterThanOrEqual(2);
    expect(df).toContain('npm ci');
    expect(df).toMatch(/npm prune --omit=dev/);
    for (const f of ['pose_solution_packed_assets.data', 'pose_landmark_lite.tflite', 'pose_landmark_full.tflite', 'pose_landmark_heavy.tflite']) expect(df).toContain(f);
    expect(df).toContain('@litertjs/core/wasm');
    expect(df).toMatch(/^USER node$/m);
    expect(df).toMatch(/^ENTRYPOINT \["\/usr\/bin\/tini", "--"/m);
    expect(df).toMatch(/^HEALTHCHECK .*\n?.*CMD \["node", "-e", ".*\/health\/live/m);
    expect(df).not.toMatch(/\bcurl\b/);
    // No secret-looking build args or env in any layer.
    expect(df).not.toMatch(/^(ARG|ENV)\s+[^\n]*(SECRET|TOKEN|PASSWORD|API_KEY|_KEY=)/im);
  });

  it('.dockerignore keeps secrets and local state out of the build context', () => {
    const di = read('.dockerignore').split('\n').map((l) => l.trim());
    expect(di[di.findIndex((l) => !l.startsWith('#') && l !== '')]).toBe('*'); // allow-list: everything excluded first
    expect(di).toContain('**/.env');
    expect(di).not.toContain('!.env');
  });

  it('Loki keeps logs 7 days; Alloy extracts level, request_id and session_id', () => {
    const loki = read('monitoring/loki/loki.yml');
    expect(loki).toMatch(/retention_period: 168h/);
    expect(loki).toMatch(/retention_enabled: true/);
    const alloy = read('monitoring/alloy/config.alloy');
    for (const field of ['level', 'request_id', 'session_id']) expect(alloy).toMatch(new RegExp(`${field}\\s+= "${field}"`));
    expect(alloy).toMatch(/stage\.labels \{\s+values = \{\s+level = ""/);
    expect(alloy).toMatch(/stage\.structured_metadata/);
  });

  it('Grafana: datasources, a contact point that delivers, a policy routing to it, five dashboards', () => {
    const cp = read('monitoring/grafana/provisioning/alerting/contact-points.yml');
    expect(cp).toMatch(/type: email/);
    expect(cp).toContain('addresses: $ALERT_EMAIL_TO');
    const policy = read('monitoring/grafana/provisioning/alerting/policies.yml');
    expect(policy).toContain('receiver: wearon-oncall');
    const compose = read('docker-compose.prod.yml');
    expect(compose).toMatch(/GF_SMTP_ENABLED: "true"/);
    expect(compose).toMatch(/ALERT_EMAIL_TO: \$\{ALERT_EMAIL_TO:\?/);
    const rules = read('monitoring/grafana/provisioning/alerting/rules.yml');
    expect(rules).toContain('noDataState: OK');
    // Grafana expands $NAME in provisioned rule queries: none may carry a literal `$`.
    for (const line of rules.split('\n').filter((l) => /^\s+expr:/.test(l))) expect(line).not.toContain('$');
  });
});

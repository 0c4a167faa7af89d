// The deploy scripts: shellcheck, and the rolling-update logic of scripts/roll-worker.sh run for real against a
// stand-in docker CLI (tests/support/fake-docker; there is no Docker daemon here): new workers start beside the old
// ones, the old ones are stopped only after the new ones are healthy, and a failed roll leaves the old ones running.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, requireTool, run, tempDir } from '../support/stack.ts';

const SCRIPTS = path.join(ROOT, 'scripts');
const OUR_SCRIPTS = ['lib-compose.sh', 'init-ssl.sh', 'renew-certs.sh', 'roll-worker.sh', 'deploy.sh', 'first-deploy.sh', 'install-test-tools.sh'];
const shellcheck = requireTool('shellcheck', 'shellcheck');
const bash = requireTool('bash', 'bash');

describe.skipIf(!shellcheck)('shellcheck', () => {
  it('finds nothing in the deploy and test scripts', async () => {
    const { code, out } = await run(shellcheck!, ['-x', ...OUR_SCRIPTS], { cwd: SCRIPTS });
    expect(out).toBe('');
    expect(code).toBe(0);
  });
});

function stack(containers: string[], opts: { newHealth?: string; env?: string } = {}) {
  const dir = tempDir('roll');
  const stateFiles = { containers: path.join(dir, 'containers'), calls: path.join(dir, 'calls') };
  writeFileSync(path.join(dir, '.env'), opts.env ?? 'DOMAIN=example.test\nWEARON_TAG=old\n');
  writeFileSync(stateFiles.containers, containers.map((id) => `${id} running healthy\n`).join(''));
  if (opts.newHealth) writeFileSync(path.join(dir, 'new-health'), opts.newHealth);
  const fakeBin = path.join(ROOT, 'tests', 'support', 'fake-docker');
  chmodSync(path.join(fakeBin, 'docker'), 0o755);
  const env = { ...process.env, PATH: `${fakeBin}:${process.env.PATH}`, WEARON_DIR: dir, FAKE_DOCKER_STATE: dir, ROLL_TIMEOUT_SECONDS: '6' };
  return {
    dir,
    run: (script: string, args: string[] = []) => run(bash!, [path.join(SCRIPTS, script), ...args], { env }),
    calls: () => readFileSync(stateFiles.calls, 'utf8').trim().split('\n'),
    containers: () => readFileSync(stateFiles.containers, 'utf8').trim().split('\n').filter(Boolean).map((l) => l.split(' ')),
    env: () => readFileSync(path.join(dir, '.env'), 'utf8'),
  };
}

describe.skipIf(!bash)('scripts/roll-worker.sh against a stand-in docker CLI', () => {
  it('starts the new worker beside the old one, and stops the old one only once the new one is healthy', async () => {
    const s = stack(['c1']);
    const { code, out } = await s.run('roll-worker.sh');
    expect(out).toContain('rolled: 1 worker(s) running');
    expect(code).toBe(0);
    const calls = s.calls();
    const scaleUp = calls.findIndex((c) => /up -d --no-deps --no-recreate --scale worker=2 worker$/.test(c));
    const inspectNew = calls.findIndex((c) => /^inspect .* c101$/.test(c));
    const stopOld = calls.indexOf('stop -t 45 c1');
    expect(scaleUp).toBeGreaterThanOrEqual(0);
    expect(inspectNew).toBeGreaterThan(scaleUp);
    expect(stopOld).toBeGreaterThan(inspectNew);
    expect(calls).toContain('rm c1');
    expect(calls.some((c) => c.includes('c101') && /^(stop|rm)/.test(c))).toBe(false);
    expect(s.containers()).toEqual([['c101', 'running', 'healthy']]);
  });

  it('keeps the replica count: two old workers are replaced by two new ones', async () => {
    const s = stack(['c1', 'c2'], { env: 'DOMAIN=example.test\nWORKER_REPLICAS=2\n' });
    const { code } = await s.run('roll-worker.sh');
    expect(code).toBe(0);
    expect(s.calls().some((c) => /--scale worker=4 worker$/.test(c))).toBe(true);
    expect(s.containers().map((c) => c[0]).sort()).toEqual(['c101', 'c102']);
  });

  it('leaves the old worker running and removes the new one when the new one turns unhealthy', async () => {
    const s = stack(['c1'], { newHealth: 'unhealthy' });
    const { code, out } = await s.run('roll-worker.sh');
    expect(code).not.toBe(0);
    expect(out).toContain('the old ones keep running');
    expect(s.calls()).toContain('rm -f c101');
    expect(s.calls().some((c) => c.startsWith('stop') && c.endsWith('c1'))).toBe(false);
    expect(s.containers()).toEqual([['c1', 'running', 'healthy']]);
  });

  it('gives up after the timeout when the new worker never becomes healthy', async () => {
    const s = stack(['c1'], { newHealth: 'starting' });
    const { code } = await s.run('roll-worker.sh');
    expect(code).not.toBe(0);
    expect(s.containers()).toEqual([['c1', 'running', 'healthy']]);
  });

  it('starts workers when none is running', async () => {
    const s = stack([]);
    const { code } = await s.run('roll-worker.sh');
    expect(code).toBe(0);
    expect(s.calls().some((c) => /up -d --no-deps --wait --scale worker=1 worker$/.test(c))).toBe(true);
  });
});

describe.skipIf(!bash)('scripts/lib-compose.sh .env helpers', () => {
  it('set_env_value replaces in place, appends when absent, and keeps values with = / & \\ verbatim', async () => {
    const s = stack([], { env: '# comment\nDOMAIN=old.example\nOTHER=keep=me\n' });
    const script = `. "${path.join(SCRIPTS, 'lib-compose.sh')}"; set_env_value DOMAIN new.example; set_env_value TOKEN 'a/b=c&d\\\\n'; echo "[$(env_value TOKEN)]"`;
    const { code, out } = await run(bash!, ['-c', script], { env: { ...process.env, WEARON_DIR: s.dir } });
    expect(code).toBe(0);
    expect(out.trim()).toBe('[a/b=c&d\\\\n]');
    expect(s.env()).toBe('# comment\nDOMAIN=new.example\nOTHER=keep=me\nTOKEN=a/b=c&d\\\\n\n');
  });
});

describe.skipIf(!bash)('scripts/lib-compose.sh apply_changed_config', () => {
  it('applies each changed config once (nginx reload, Prometheus SIGHUP, restarts), then nothing until a file changes', async () => {
    const s = stack([]);
    for (const d of ['nginx/templates', 'monitoring/prometheus/rules', 'monitoring/grafana', 'monitoring/loki', 'monitoring/alloy']) mkdirSync(path.join(s.dir, d), { recursive: true });
    writeFileSync(path.join(s.dir, 'nginx/templates/wearon.conf.template'), 'a');
    writeFileSync(path.join(s.dir, 'monitoring/prometheus/rules/wearon.yml'), 'a');
    writeFileSync(path.join(s.dir, 'monitoring/grafana/x.yml'), 'a');
    writeFileSync(path.join(s.dir, 'monitoring/loki/loki.yml'), 'a');
    writeFileSync(path.join(s.dir, 'monitoring/alloy/config.alloy'), 'a');
    const apply = (mode: string) =>
      run(bash!, ['-c', `. "${path.join(SCRIPTS, 'lib-compose.sh')}"; apply_changed_config ${mode}`], {
        env: { ...process.env, PATH: `${path.join(ROOT, 'tests', 'support', 'fake-docker')}:${process.env.PATH}`, WEARON_DIR: s.dir, FAKE_DOCKER_STATE: s.dir },
      });
    const applied = () => (existsSync(path.join(s.dir, 'calls')) ? s.calls() : []).filter((c) => / (exec|kill|restart) /.test(c)).map((c) => c.replace(/^.* (exec|kill|restart) /, '$1 '));

    expect((await apply('record_only')).code).toBe(0);
    expect(applied()).toEqual([]);
    expect((await apply('apply')).code).toBe(0);
    expect(applied()).toEqual([]);

    writeFileSync(path.join(s.dir, 'monitoring/prometheus/rules/wearon.yml'), 'b');
    writeFileSync(path.join(s.dir, 'nginx/templates/wearon.conf.template'), 'b');
    expect((await apply('apply')).code).toBe(0);
    expect(applied()).toEqual([
      "exec -T nginx sh -c /docker-entrypoint.d/20-envsubst-on-templates.sh >/dev/null && nginx -t -q && nginx -s reload",
      'kill -s SIGHUP prometheus',
    ]);
    writeFileSync(path.join(s.dir, 'monitoring/grafana/x.yml'), 'b');
    expect((await apply('apply')).code).toBe(0);
    expect(applied().slice(2)).toEqual(['restart grafana']);
  });
});

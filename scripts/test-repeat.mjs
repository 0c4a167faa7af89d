#!/usr/bin/env node
// `npm run test:repeat -- --times N [--keep]`: a flake hunt a newcomer's way. Each round clones HEAD afresh into a
// temporary directory (no ../shared beside it, no node_modules, nothing left from an earlier round), installs with
// `npm ci --prefer-offline`, and runs the README's test command, `npm test`, with the environment this script got
// (CI=true, TEST_TIME_SCALE... pass through). It reports per round pass/fail, duration, tests passed/failed/skipped,
// and for each failure the test, its seed and its first error lines; then a summary. Exit 1 if any round failed.
// Logs stay in the printed directory; --keep keeps the clones too.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
let times = 1;
let keep = false;
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--times') times = Number(args[++i]);
  else if (args[i]?.startsWith('--times=')) times = Number(args[i].slice('--times='.length));
  else if (args[i] === '--keep') keep = true;
  else {
    console.error(`unknown argument ${args[i]}\nusage: npm run test:repeat -- --times N [--keep]`);
    process.exit(2);
  }
}
if (!Number.isInteger(times) || times < 1) {
  console.error('--times must be a positive integer');
  process.exit(2);
}

const git = (cwd, ...a) => {
  const r = spawnSync('git', a, { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`git ${a.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout.trim();
};
const root = git(path.dirname(fileURLToPath(import.meta.url)), 'rev-parse', '--show-toplevel');
const head = git(root, 'rev-parse', 'HEAD');
const dirty = git(root, 'status', '--porcelain', '--untracked-files=no');
const results = mkdtempSync(path.join(os.tmpdir(), 'wearon-repeat-'));
console.log(`test:repeat: ${times} round(s) of \`npm test\` on fresh clones of ${head.slice(0, 12)}${dirty ? ' (uncommitted changes are NOT included)' : ''}`);
console.log(`test:repeat: CI=${process.env.CI ?? '(unset)'} TEST_TIME_SCALE=${process.env.TEST_TIME_SCALE ?? '(unset)'}; logs in ${results}`);

/** Runs a command with output to `log`; resolves with its exit code and duration. */
function run(cmd, cmdArgs, cwd, log, env) {
  const fd = openSync(log, 'a');
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(cmd, cmdArgs, { cwd, env, stdio: ['ignore', fd, fd] });
    child.on('error', (err) => resolve({ code: -1, ms: Date.now() - started, err }));
    child.on('exit', (code, signal) => resolve({ code: code ?? (signal ? 128 : -1), ms: Date.now() - started }));
  });
}

const secs = (ms) => `${(ms / 1000).toFixed(0)} s`;
const tail = (file, n) => readFileSync(file, 'utf8').trimEnd().split('\n').slice(-n);

const rounds = [];
for (let round = 1; round <= times; round++) {
  // The clone's parent holds nothing else: no ../shared, as on a newcomer's machine.
  const parent = mkdtempSync(path.join(os.tmpdir(), `wearon-round${round}-`));
  const repo = path.join(parent, 'repo');
  const log = path.join(results, `round-${round}.log`);
  const summaryFile = path.join(results, `round-${round}.summary.jsonl`);
  writeFileSync(log, '');
  const started = Date.now();
  let outcome;
  try {
    git(parent, 'clone', '--quiet', '--no-hardlinks', root, repo);
    git(repo, 'checkout', '--quiet', '--detach', head);
    // What `npm run` put in the environment about this checkout must not steer the round's npm to it.
    const env = Object.fromEntries(
      Object.entries(process.env).filter(([k]) => !/^(npm_package_|npm_lifecycle_|npm_config_local_prefix$|npm_config_prefix$|INIT_CWD$)/.test(k)),
    );
    env.WEARON_TEST_SUMMARY = summaryFile;
    const install = await run('npm', ['ci', '--prefer-offline', '--no-audit', '--no-fund'], repo, log, env);
    if (install.code !== 0) {
      outcome = { ok: false, ms: Date.now() - started, why: `npm ci exited ${install.code}`, lines: tail(log, 10) };
    } else {
      const test = await run('npm', ['test'], repo, log, env);
      const totals = JSON.parse(
        spawnSync(process.execPath, [path.join(repo, 'bin', 'run-ts.mjs'), path.join(repo, 'scripts', 'test-summary.ts'), '--json', summaryFile], { cwd: repo, encoding: 'utf8' }).stdout || '{}',
      );
      outcome = { ok: test.code === 0, ms: Date.now() - started, testMs: test.ms, code: test.code, totals, lines: test.code === 0 ? [] : tail(log, 15) };
    }
  } catch (err) {
    outcome = { ok: false, ms: Date.now() - started, why: String(err), lines: [] };
  } finally {
    if (!keep) rmSync(parent, { recursive: true, force: true });
  }
  rounds.push(outcome);
  const t = outcome.totals;
  const counts = t?.runs ? `${t.passed} passed, ${t.failed} failed, ${t.skipped} skipped in ${t.runs} vitest runs` : 'no test counts';
  console.log(`round ${round}/${times}: ${outcome.ok ? 'PASS' : 'FAIL'} in ${secs(outcome.ms)} (npm test ${outcome.testMs ? secs(outcome.testMs) : '-'}): ${counts}${outcome.why ? `; ${outcome.why}` : ''}`);
  for (const f of t?.failures ?? []) {
    console.log(`  FAILED ${f.name}${f.seed ? ` [${f.seed}]` : ''}`);
    for (const l of f.error.slice(0, 4)) console.log(`    ${l}`);
  }
  for (const e of t?.unhandledErrors ?? []) console.log(`  UNHANDLED ${e.split('\n')[0]}`);
  if (!outcome.ok && !(t?.failures?.length || t?.unhandledErrors?.length)) {
    console.log(`  last lines of ${log}:`);
    for (const l of outcome.lines) console.log(`    ${l}`);
  }
  if (round === 1 && t?.skips?.length) {
    console.log('  skipped (round 1):');
    for (const k of t.skips) console.log(`    ${k.count} in ${k.file}: ${k.reasons.join(' | ')}`);
  }
}

const failed = rounds.filter((r) => !r.ok).length;
const durations = rounds.map((r) => r.ms).sort((a, b) => a - b);
console.log(
  `\ntest:repeat summary: ${rounds.length - failed}/${rounds.length} rounds green, ${failed} red; round durations min ${secs(durations[0])}, ` +
    `median ${secs(durations[Math.floor(durations.length / 2)])}, max ${secs(durations.at(-1))}; logs in ${results}`,
);
mkdirSync(results, { recursive: true });
writeFileSync(path.join(results, 'rounds.json'), JSON.stringify({ head, rounds }, null, 2));
process.exit(failed ? 1 : 0);

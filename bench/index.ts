// `npm run bench [-- --quick] [--only <suite>]`: runs every benchmark suite that exists, prints progress, a table and
// the JSON (also written to bench/results/latest.json, which is gitignored).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchSuite, Figure } from './types.ts';

/** Suite name, module, export. Suites owned by other areas are optional: a missing file is reported as skipped. */
const SUITES: Array<[name: string, file: string, exportName: string]> = [
  ['ledger', './ledger.ts', 'ledgerBench'],
  ['sizeRec', './sizeRec.ts', 'sizeRecBench'],
  ['projections', './projections.ts', 'projectionsBench'],
  ['pipeline', './pipeline.ts', 'pipelineBench'],
  ['freshness', './freshness.ts', 'freshnessBench'],
  ['console', './console.ts', 'consoleBench'],
  ['pgStore', './pgStore.ts', 'pgStoreBench'],
];

interface SuiteResult {
  suite: string;
  status: 'ok' | 'skipped' | 'failed';
  reason?: string;
  seconds?: number;
  figures: Figure[];
}

function parseArgs(argv: string[]) {
  const out = { quick: false, only: null as string | null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--quick') out.quick = true;
    else if (a === '--only') out.only = argv[++i] ?? null;
    else if (a.startsWith('--only=')) out.only = a.slice('--only='.length);
    else {
      console.error(`unknown argument ${a}; usage: npm run bench -- [--quick] [--only <${SUITES.map((s) => s[0]).join('|')}>]`);
      process.exit(2);
    }
  }
  if (out.only && !SUITES.some(([name]) => name === out.only)) {
    console.error(`unknown suite ${out.only}; suites: ${SUITES.map((s) => s[0]).join(', ')}`);
    process.exit(2);
  }
  return out;
}

const isMissingModule = (err: unknown) => {
  const code = (err as { code?: string }).code;
  return code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND';
};

function formatValue(v: number): string {
  return Math.abs(v) >= 100 ? Math.round(v).toString() : Number(v.toPrecision(4)).toString();
}

function table(results: SuiteResult[]): string {
  const rows: string[][] = [['name', 'value', 'unit', 'ratio', 'target', 'met']];
  for (const r of results) {
    if (r.status !== 'ok') rows.push([`${r.suite} (${r.status})`, '', '', '', r.reason ?? '', '']);
    for (const f of r.figures) {
      rows.push([f.name, formatValue(f.value), f.unit, f.ratio === undefined ? '' : `${Number(f.ratio.toPrecision(3))}x`, f.target ?? '', f.met === undefined ? '' : f.met ? 'yes' : 'NO']);
    }
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const line = (r: string[]) => r.map((cell, c) => (c === 1 || c === 3 ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join('  ').trimEnd();
  return [line(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

const here = path.dirname(fileURLToPath(import.meta.url));
const args = parseArgs(process.argv.slice(2));
const log = (line: string) => console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}`);
const results: SuiteResult[] = [];

for (const [name, file, exportName] of SUITES) {
  if (args.only && args.only !== name) continue;
  let suite: BenchSuite | undefined;
  try {
    suite = (await import(file))[exportName] as BenchSuite | undefined;
  } catch (err) {
    const missing = isMissingModule(err) && String((err as Error).message).includes(path.basename(file));
    results.push({ suite: name, status: missing ? 'skipped' : 'failed', reason: missing ? `${file} not present` : String((err as Error).message), figures: [] });
    log(`${name}: ${missing ? 'skipped' : 'FAILED to load'} (${missing ? `${file} not present` : (err as Error).message})`);
    continue;
  }
  if (typeof suite !== 'function') {
    results.push({ suite: name, status: 'skipped', reason: `${file} has no export ${exportName}`, figures: [] });
    log(`${name}: skipped (no export ${exportName})`);
    continue;
  }
  const tmpDir = mkdtempSync(path.join(os.tmpdir(), `wearon-bench-${name}-`));
  const started = performance.now();
  log(`${name}: start${args.quick ? ' (quick)' : ''}`);
  try {
    const figures = await suite({ tmpDir, quick: args.quick, log });
    const seconds = Math.round((performance.now() - started) / 100) / 10;
    results.push({ suite: name, status: 'ok', seconds, figures });
    log(`${name}: done in ${seconds} s`);
  } catch (err) {
    results.push({ suite: name, status: 'failed', reason: String((err as Error)?.stack ?? err), figures: [] });
    log(`${name}: FAILED ${(err as Error)?.message ?? err}`);
  } finally {
    rmSync(tmpDir, { recursive: true, force: true });
  }
}

const report = {
  at: new Date().toISOString(),
  quick: args.quick,
  host: { cpus: os.cpus().length, model: os.cpus()[0]?.model ?? 'unknown', node: process.version, platform: `${os.platform()} ${os.release()}`, loadavg: os.loadavg().map((l) => Math.round(l * 100) / 100) },
  suites: results,
};
console.log(`\n${table(results)}\n`);
const outDir = path.join(here, 'results');
mkdirSync(outDir, { recursive: true });
writeFileSync(path.join(outDir, 'latest.json'), `${JSON.stringify(report, null, 2)}\n`);
console.log(JSON.stringify(report, null, 2));
process.exitCode = results.some((r) => r.status === 'failed') ? 1 : 0;

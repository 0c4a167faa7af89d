// `node bin/run-ts.mjs scripts/test-summary.ts [--json] <file>`: the total of the vitest runs recorded in <file> (one JSON line
// per run, written by tests/support/summaryReporter.ts when WEARON_TEST_SUMMARY names the file): tests passed, failed
// and skipped, each skip with its reason, each failure with its seed and first error lines. Exit 1 when a run failed
// or the file holds no run at all (a test command that never reached vitest ran nothing). --json prints the total as
// one JSON object instead (scripts/test-repeat.mjs reads it).
import { existsSync, readFileSync } from 'node:fs';
import { formatRun, type RunSummary } from '../tests/support/summaryReporter.ts';

const json = process.argv.includes('--json');
const file = process.argv.slice(2).find((a) => a !== '--json');
if (!file) {
  console.error('usage: test-summary [--json] <summary.jsonl>');
  process.exit(2);
}
const runs = existsSync(file)
  ? readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as RunSummary)
  : [];
const total = {
  label: `${runs.length} vitest run${runs.length === 1 ? '' : 's'}: ${runs.map((r) => r.label).join('; ')}`,
  passed: runs.reduce((n, r) => n + r.passed, 0),
  failed: runs.reduce((n, r) => n + r.failed, 0),
  skipped: runs.reduce((n, r) => n + r.skipped, 0),
  skips: runs.flatMap((r) => r.skips),
  failures: runs.flatMap((r) => r.failures),
  unhandledErrors: runs.flatMap((r) => r.unhandledErrors),
};
console.log(json ? JSON.stringify({ runs: runs.length, ...total }) : formatRun(total).replace(/^test summary/, 'TOTAL'));
process.exit(runs.length > 0 && total.failed === 0 && total.unhandledErrors.length === 0 ? 0 : 1);

// A vitest reporter (next to the default one, vitest.config.ts) that makes every run account for itself: how many
// tests passed, failed and were skipped, each skip with the reason its file printed (`SKIP: ...` lines from
// tests/support/services.ts, stack.ts, browser.ts and the like), each failure with its first error lines and any
// seed that replays it (fast-check's `{ seed: ..., path: ... }`, the crash test's `seed N`).
//
// With WEARON_TEST_SUMMARY=<file> it appends one JSON line per vitest run to that file, so the several vitest runs
// of `npm test` add up: scripts/test-summary.ts prints the total (.ci/run and scripts/test-repeat.mjs use it).
import { appendFileSync } from 'node:fs';
import path from 'node:path';
import type { SerializedError } from '@vitest/utils';
import type { Reporter, TestModule, Vitest } from 'vitest/node';

export interface RunSummary {
  /** which run this was (file count, store), to tell the vitest runs of one `npm test` apart */
  label: string;
  passed: number;
  failed: number;
  skipped: number;
  /** per file with skipped tests: how many, and the SKIP lines it printed (or why there is none) */
  skips: { file: string; count: number; reasons: string[] }[];
  failures: { file: string; name: string; error: string[]; seed: string | null }[];
  unhandledErrors: string[];
}

const FIRST_LINES = 6;

/** A replay handle in a failure's text or name: fast-check's `{ seed: S, path: "P" ...}` or `seed N`. */
export function seedIn(...texts: string[]): string | null {
  for (const t of texts) {
    const fc = /\{\s*seed:\s*-?\d+[^}\n]*\}/.exec(t);
    if (fc) return fc[0];
    const plain = /\bseed[ =:]+(-?\d+)/i.exec(t);
    if (plain) return `seed ${plain[1]}`;
  }
  return null;
}

export default class SummaryReporter implements Reporter {
  private ctx: Vitest | undefined;
  /** SKIP lines by the file that printed them */
  private readonly skipLines = new Map<string, Set<string>>();
  /** other console output by file, for seeds printed next to a failure */
  private readonly logs = new Map<string, string[]>();

  onInit(ctx: Vitest): void {
    this.ctx = ctx;
  }

  onUserConsoleLog(log: { content: string; taskId?: string }): void {
    const file = this.fileOf(log.taskId);
    for (const line of log.content.split('\n')) {
      if (/^SKIP\b/.test(line)) {
        const set = this.skipLines.get(file) ?? new Set<string>();
        set.add(line.trim());
        this.skipLines.set(file, set);
      } else if (/\bseed\b/i.test(line)) {
        this.logs.set(file, [...(this.logs.get(file) ?? []), line]);
      }
    }
  }

  onTestRunEnd(modules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<SerializedError>): void {
    const summary: RunSummary = { label: this.label(modules.length), passed: 0, failed: 0, skipped: 0, skips: [], failures: [], unhandledErrors: [] };
    for (const m of modules) {
      const file = this.relative(m.moduleId);
      let skippedHere = 0;
      for (const t of m.children.allTests()) {
        const r = t.result();
        if (r.state === 'passed') summary.passed++;
        else if (r.state === 'skipped') skippedHere++;
        else if (r.state === 'failed') {
          summary.failed++;
          const text = (r.errors ?? []).map((e) => `${e.name ?? 'Error'}: ${e.message ?? ''}`).join('\n');
          summary.failures.push({ file, name: t.fullName, error: text.split('\n').slice(0, FIRST_LINES), seed: seedIn(text, t.fullName, ...(this.logs.get(file) ?? [])) });
        }
      }
      // A file that failed to load has no tests; count it as a failure, with its error.
      if (m.state() === 'failed' && m.children.size === 0) {
        summary.failed++;
        const text = (m.errors() ?? []).map((e) => `${e.name ?? 'Error'}: ${e.message ?? ''}`).join('\n');
        summary.failures.push({ file, name: `${file} (did not load)`, error: text.split('\n').slice(0, FIRST_LINES), seed: null });
      }
      if (skippedHere > 0) {
        summary.skipped += skippedHere;
        summary.skips.push({ file, count: skippedHere, reasons: [...(this.skipLines.get(file) ?? [this.noReason])] });
      }
    }
    summary.unhandledErrors = unhandledErrors.map((e) => `${e.name ?? 'Error'}: ${e.message ?? ''}`.split('\n').slice(0, FIRST_LINES).join('\n'));
    process.stdout.write(`\n${formatRun(summary)}\n`);
    const out = process.env.WEARON_TEST_SUMMARY;
    if (out) appendFileSync(out, `${JSON.stringify(summary)}\n`);
  }

  private fileOf(taskId: string | undefined): string {
    const task = (taskId ? this.ctx?.state.idMap.get(taskId) : undefined) as { filepath?: string; file?: { filepath?: string } } | undefined;
    const filepath = task?.filepath ?? task?.file?.filepath;
    return filepath ? this.relative(filepath) : '(unknown file)';
  }

  private relative(file: string): string {
    return path.relative(this.ctx?.config.root ?? process.cwd(), file);
  }

  private label(files: number): string {
    const store = process.env.LEDGER_STORE;
    return `${files} files${store ? `, LEDGER_STORE=${store}` : ''}`;
  }

  /** Skipped tests whose file printed no reason: deselected by -t / .only, or skipped in code (it.skip). */
  get noReason(): string {
    return this.ctx?.config.testNamePattern ? '(not selected by -t)' : '(no reason printed)';
  }
}

/** The lines a run's summary prints (also used for the total of several runs). */
export function formatRun(s: Omit<RunSummary, 'label'> & { label?: string }): string {
  const lines = [`test summary${s.label ? ` (${s.label})` : ''}: ${s.passed} passed, ${s.failed} failed, ${s.skipped} skipped`];
  for (const k of s.skips) {
    lines.push(`  skipped ${k.count} in ${k.file}: ${k.reasons.join(' | ')}`);
  }
  for (const f of s.failures) {
    lines.push(`  FAILED ${f.name}${f.seed ? ` [${f.seed}]` : ''}`);
    for (const l of f.error) lines.push(`    ${l}`);
  }
  for (const e of s.unhandledErrors) lines.push(`  UNHANDLED ${e.split('\n').join('\n    ')}`);
  return lines.join('\n');
}

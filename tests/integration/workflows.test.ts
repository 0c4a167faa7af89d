// The CI workflows pass the property suites only settings the suites read: a misspelt variable (PROPERTY_RUNS for
// WEARON_PROPERTY_RUNS) is silently ignored and the step runs something else than it says.
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { pythonWithYaml, ROOT, run } from '../support/stack.ts';

const python = await pythonWithYaml('the workflows are not checked');
const pyYaml = python !== null;

/** Environment variables the property runner and suites read. */
function variablesRead(): Set<string> {
  const files = [path.join(ROOT, 'scripts', 'test-property.mjs'), ...readdirSync(path.join(ROOT, 'tests', 'property')).map((f) => path.join(ROOT, 'tests', 'property', f))];
  const names = new Set(['CI']);
  for (const f of files) for (const m of readFileSync(f, 'utf8').matchAll(/process\.env\.([A-Z0-9_]+)|'([A-Z][A-Z0-9_]+)'/g)) names.add((m[1] ?? m[2])!);
  return names;
}

describe.skipIf(!pyYaml)('CI workflows', () => {
  it('give property-suite steps only variables the suites read', async () => {
    const dir = path.join(ROOT, '.github', 'workflows');
    const script = 'import sys, json, yaml\nprint(json.dumps([yaml.safe_load(open(f)) for f in sys.argv[1:]]))';
    const files = readdirSync(dir).map((f) => path.join(dir, f));
    const { code, out } = await run(python!, ['-c', script, ...files]);
    expect(code).toBe(0);
    const read = variablesRead();
    let steps = 0;
    for (const wf of JSON.parse(out) as Array<{ jobs: Record<string, { steps?: Array<{ run?: string; env?: Record<string, string> }> }> }>) {
      for (const job of Object.values(wf.jobs)) {
        for (const step of job.steps ?? []) {
          if (!/test:property|test-property/.test(step.run ?? '')) continue;
          steps += 1;
          for (const name of Object.keys(step.env ?? {})) expect(read, `${step.run}: ${name} is read by no property suite`).toContain(name);
        }
      }
    }
    expect(steps).toBeGreaterThan(0);
  });
});

#!/usr/bin/env node
// `npm run test:property [-- --runs N] [--seed S --path P --replay-path R] [--store sqlite|esdb|pg] [vitest args]`: runs the property
// suites (tests/property) with the run count and the replay coordinates passed to them through the environment.
import { spawnSync } from 'node:child_process';

const args = process.argv.slice(2);
const env = { ...process.env };
const rest = [];
const flags = { '--runs': 'WEARON_PROPERTY_RUNS', '--seed': 'WEARON_PROPERTY_SEED', '--path': 'WEARON_PROPERTY_PATH', '--replay-path': 'WEARON_PROPERTY_REPLAY_PATH', '--store': 'LEDGER_STORE' };
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  const [name, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
  if (name in flags) {
    const value = inline ?? args[++i];
    if (value === undefined) {
      console.error(`${name} needs a value`);
      process.exit(2);
    }
    env[flags[name]] = value;
  } else rest.push(a);
}
if (env.WEARON_PROPERTY_RUNS && !(Number(env.WEARON_PROPERTY_RUNS) > 0)) {
  console.error('--runs must be a positive number');
  process.exit(2);
}
const shown = Object.values(flags).filter((k) => env[k] !== undefined).map((k) => `${k}=${env[k]}`);
if (shown.length) console.log(`property tests with ${shown.join(' ')}`);
// Files named on the command line replace the default directory; anything else (-t NAME, --reporter ...) is vitest's.
const namesFiles = rest.some((a) => a.startsWith('tests/') || a.endsWith('.ts'));
const r = spawnSync('npx', ['vitest', 'run', ...(namesFiles ? [] : ['tests/property']), ...rest], { stdio: 'inherit', env });
process.exit(r.status ?? 1);

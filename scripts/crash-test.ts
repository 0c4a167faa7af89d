// `npm run crash-test -- [--tasks N] [--kills K] [--seed S]`: the crash scenario against real Redis, with a report.
import { runCrashScenario } from '../tests/support/crashScenario.ts';
import { parseArgs } from '../src/cli/command.ts';

const { flags } = parseArgs(process.argv.slice(2));
const num = (v: string | true | undefined, d: number) => (typeof v === 'string' ? Number(v) : d);
const seed = num(flags.seed, Date.now() % 1_000_000);
const report = await runCrashScenario({
  redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379/15',
  tasks: num(flags.tasks, 300),
  kills: num(flags.kills, 5),
  users: num(flags.users, 10),
  creditsPerUser: num(flags.credits, 25),
  seed,
  log: (l) => console.error(l),
});
console.log(JSON.stringify({ seed, ...report }, null, 2));
process.exitCode = report.verifyExitCode;

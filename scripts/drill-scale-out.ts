// `npm run drill:scale-out -- [--tasks 500] [--throughput-tasks 60] [--users 10] [--concurrency 4] [--latency 1000]
// [--seed S] [--store pg|esdb]`: the scale-out drill (tests/support/scaleOutDrill.ts) against the real Postgres and
// Redis (TEST_DATABASE_URL / TEST_REDIS_URL, else localhost), or KurrentDB as the store with --store esdb and
// EVENTSTORE_TEST_URL. Progress on stderr; the report as JSON and a table on stdout; exit 1 unless every check held.
import { parseArgs } from '../src/cli/command.ts';
import { drillProblems, drillTable, runScaleOutDrill } from '../tests/support/scaleOutDrill.ts';
import { DATABASE_URL, REDIS_URL, postgresAvailable, redisAvailable } from '../tests/support/services.ts';

const { flags } = parseArgs(process.argv.slice(2));
const num = (v: string | true | undefined, d: number) => (typeof v === 'string' ? Number(v) : d);
const store = typeof flags.store === 'string' ? flags.store : 'pg';
if (store !== 'pg' && store !== 'esdb') {
  console.error('--store must be pg or esdb');
  process.exit(2);
}
const esdbUrl = store === 'esdb' ? process.env.EVENTSTORE_TEST_URL?.trim() : undefined;
if (store === 'esdb' && !esdbUrl) {
  console.error('--store esdb needs EVENTSTORE_TEST_URL (a KurrentDB server, e.g. esdb://127.0.0.1:2113?tls=false)');
  process.exit(2);
}
// Absent services: a clear message (postgresAvailable/redisAvailable throw under CI=true).
if (!(await postgresAvailable()) || !(await redisAvailable())) process.exit(2);

const seed = num(flags.seed, Date.now() % 1_000_000);
const report = await runScaleOutDrill({
  redisUrl: REDIS_URL,
  databaseUrl: DATABASE_URL,
  ...(esdbUrl ? { esdbUrl } : {}),
  tasks: num(flags.tasks, 500),
  throughputTasks: num(flags['throughput-tasks'], 60),
  users: num(flags.users, 10),
  concurrency: num(flags.concurrency, 4),
  latencyMs: num(flags.latency, 1000),
  seed,
  log: (l) => console.error(`[${new Date().toISOString().slice(11, 19)}] ${l}`),
});

const problems = drillProblems(report);
console.log(JSON.stringify({ seed, ...report, problems }, null, 2));
console.log(`\n${drillTable(report)}\n`);
if (problems.length) console.log(`DRILL FAILED:\n  ${problems.join('\n  ')}\n${report.verify.output}`);
else console.log(`drill passed (seed ${seed})`);
process.exitCode = problems.length ? 1 : 0;

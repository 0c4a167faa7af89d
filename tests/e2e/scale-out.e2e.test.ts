// The scale-out drill, short form (the full one: `npm run drill:scale-out`): the Postgres event store shared by 3
// `wearon worker` and 2 `wearon project` processes, Redis intake, Postgres read models, an upstream stand-in with a
// fixed latency and mixed faults; a worker and the active projector SIGKILLed mid-run. Every task ends terminal or
// dead-lettered, credits add up, the standby projector takes over and `wearon verify --quiescent` is clean. Figures
// (throughput 1 vs 3 workers, takeover time) are printed, never asserted. Seed: WEARON_DRILL_SEED (printed).
import { describe, expect, it } from 'vitest';
import { drillProblems, drillTable, runScaleOutDrill } from '../support/scaleOutDrill.ts';
import { DATABASE_URL, REDIS_URL, postgresAvailable, redisAvailable } from '../support/services.ts';
import { scaled } from '../support/deadlines.ts';

const ready = (await postgresAvailable()) && (await redisAvailable());
const seed = Number(process.env.WEARON_DRILL_SEED ?? Date.now() % 1_000_000);

describe.skipIf(!ready)('scale-out drill, short form (Postgres store, 3 workers, 2 projectors)', () => {
  it(`ends every task terminal or dead-lettered with a clean ledger and read models through a worker and projector kill (seed ${seed})`, async () => {
    console.log(`scale-out drill seed ${seed} (replay with WEARON_DRILL_SEED=${seed})`);
    const report = await runScaleOutDrill({
      redisUrl: REDIS_URL,
      databaseUrl: DATABASE_URL,
      tasks: 60,
      throughputTasks: 12,
      users: 4,
      concurrency: 4,
      latencyMs: 1000,
      seed,
      log: (l) => console.log(l),
    });
    console.log(`${drillTable(report)}\n${JSON.stringify({ ...report, verify: { exitCode: report.verify.exitCode } })}`);
    expect(drillProblems(report), report.verify.output).toEqual([]);
    expect(report.verify.output).toMatch(/ledger OK/);
    expect(report.verify.output).toMatch(/read models OK/);
    expect(report.faulty.byStatus.completed).toBeGreaterThan(0);
    expect(report.faulty.byStatus.failed).toBeGreaterThan(0); // the faults reached the ledger
    expect(Object.keys(report.takeover.projections).sort()).toEqual(['credit-balances', 'session-status']);
  }, scaled(600_000));
});

import { defineConfig } from 'vitest/config';
import { scaled } from './tests/support/deadlines.ts';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    globalSetup: ['tests/support/globalSetup.ts'],
    // TEST_TIME_SCALE (default 1) stretches these and every wait helper on a slow or busy machine.
    testTimeout: scaled(60_000),
    hookTimeout: scaled(60_000),
    // Integration suites share one Redis and one Postgres; files isolate themselves by key prefix / schema.
    pool: 'forks',
    // The summary reporter prints passed/failed/skipped with each skip's reason (tests/support/summaryReporter.ts).
    reporters: ['default', './tests/support/summaryReporter.ts'],
  },
});

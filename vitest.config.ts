import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    globalSetup: ['tests/support/globalSetup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration suites share one Redis and one Postgres; files isolate themselves by key prefix / schema.
    pool: 'forks',
    reporters: ['default'],
  },
});

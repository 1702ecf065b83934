import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts', 'src/**/*.test.ts'],
    // Starts one real OpenFGA and one real redis-server on free loopback ports for
    // the whole run; files that need to stop a server start their own.
    globalSetup: ['tests/support/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 120_000,
    teardownTimeout: 30_000,
    pool: 'forks',
    benchmark: { include: ['tests/bench/**/*.bench.ts'] },
  },
});

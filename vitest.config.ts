import { defineConfig } from 'vitest/config';

// Unit tests start no server. The other projects share one real OpenFGA and one real
// redis-server on free loopback ports for the whole run (the global setup starts them
// once, whichever of these projects run); files that need to stop a server start their own.
const withServers = { globalSetup: ['tests/support/global-setup.ts'] };

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 120_000,
    teardownTimeout: 30_000,
    pool: 'forks',
    benchmark: { include: ['tests/bench/**/*.bench.ts'] },
    projects: [
      { extends: true, test: { name: 'unit', include: ['tests/unit/**/*.test.ts', 'src/**/*.test.ts'] } },
      { extends: true, test: { name: 'integration', include: ['tests/integration/**/*.test.ts'], ...withServers } },
      { extends: true, test: { name: 'e2e', include: ['tests/e2e/**/*.test.ts'], ...withServers } },
      { extends: true, test: { name: 'model', include: ['tests/model/**/*.test.ts'], ...withServers } },
    ],
  },
});

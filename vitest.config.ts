import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Files share the servers started by the global setup; each file makes its own databases.
    fileParallelism: true,
    maxWorkers: 2,
  },
});

import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Both projects share the workers: integration files share two servers, two at a time.
    maxWorkers: 2,
    projects: [
      {
        // Pure parts of the library, imported directly: no server, no global setup, fast.
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          // The files share their workers' module cache: they import the same sources once.
          isolate: false,
        },
      },
      {
        // Against real PostgreSQL servers started by the global setup; each file makes its own databases.
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, 'test/unit/**'],
          globalSetup: ['test/helpers/global-setup.ts'],
          testTimeout: 60_000,
          hookTimeout: 120_000,
          fileParallelism: true,
          maxWorkers: 2,
        },
      },
    ],
  },
});

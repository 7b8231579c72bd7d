import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // A PostgreSQL server for the PostgresStore tests: the configured one, or a throwaway one.
    globalSetup: ['test/setup/postgres-server.ts'],
    // Race and model tests run many fast-check cases; give them room on a 2-core CI box.
    testTimeout: 30_000,
  },
});

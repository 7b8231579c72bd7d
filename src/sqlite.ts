/**
 * `baton-runtime/sqlite`: the embedded durable store, one SQLite file.
 *
 * Needs `better-sqlite3` (an optional peer dependency: `npm install better-sqlite3`);
 * without it `new SqliteStore(…)` throws a `MissingPeerDependencyError` that says so.
 *
 * @example
 * import { createRuntime } from 'baton-runtime';
 * import { SqliteStore } from 'baton-runtime/sqlite';
 * const runtime = createRuntime({ agent, store: new SqliteStore('./.baton/baton.db') });
 */
export { SqliteStore, StaleEpochError } from './runtime/sqlite-store.ts';

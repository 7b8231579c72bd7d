import { hostname } from 'node:os';
import { z } from 'zod';
import { validateOptions } from '../validate.ts';
import { DEFAULT_KEEP_EVENTS } from './store.ts';

/** Options of {@link PostgresStore}. */
export interface PostgresStoreOptions {
  /**
   * The server, as a connection URL (`postgres://user:pass@host:5432/db`). Without it the
   * `postgres` package reads the usual `PG*` environment variables.
   * @default the PGHOST, PGPORT, PGDATABASE, PGUSER and PGPASSWORD environment variables
   */
  url?: string;
  /**
   * The PostgreSQL schema that holds Baton's tables (created if missing); also the name of
   * the LISTEN channel, so two schemas on one server are two separate clusters.
   * Lower-case letters, digits and `_`.
   * @default 'baton'
   */
  schema?: string;
  /**
   * This node's name in the cluster. Two live processes must never share one: each join
   * would take the other's lease.
   * @default `<hostname>-<pid>`
   */
  nodeId?: string;
  /** A node that has not renewed its lease for this long is dead to the others. @default 10000 */
  leaseTtlMs?: number;
  /** How often the lease is renewed; less than `leaseTtlMs`. @default 3000 */
  renewMs?: number;
  /** Events held per session for resume. @default 256 (DEFAULT_KEEP_EVENTS) */
  keepEvents?: number;
  /** Connections in the pool (one more is held for LISTEN, and one for the node lease). @default 10 */
  max?: number;
}

export type ResolvedPostgresOptions = Required<Omit<PostgresStoreOptions, 'url'>> & Pick<PostgresStoreOptions, 'url'>;

export const postgresDefaults = {
  schema: 'baton',
  leaseTtlMs: 10_000,
  renewMs: 3_000,
  keepEvents: DEFAULT_KEEP_EVENTS,
  max: 10,
} as const;

const schema = z
  .object({
    url: z.string().min(1).optional(),
    // Interpolated into DDL and used as the channel name: only a plain identifier will do.
    schema: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a lower-case identifier').optional(),
    nodeId: z.string().min(1).max(200).optional(),
    leaseTtlMs: z.number().int().min(50).optional(),
    renewMs: z.number().int().min(10).optional(),
    keepEvents: z.number().int().min(1).optional(),
    max: z.number().int().min(1).optional(),
  })
  .strict();

/** The options with their defaults, validated; a bad one throws a `TypeError` quoting it. */
export function resolvePostgresOptions(options: PostgresStoreOptions): ResolvedPostgresOptions {
  validateOptions('PostgresStore', schema, options);
  const resolved = { ...postgresDefaults, nodeId: `${hostname()}-${process.pid}`, ...options };
  if (resolved.renewMs >= resolved.leaseTtlMs) {
    throw new TypeError(`PostgresStore: option "renewMs" must be less than leaseTtlMs (${resolved.leaseTtlMs}), got ${resolved.renewMs}`);
  }
  return resolved;
}

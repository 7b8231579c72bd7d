import { transaction } from './postgres-transaction.ts';
import type { Sql, TransactionSql } from 'postgres';

/**
 * Schema migrations, in order; `baton_schema_version` lists those that have run. Never edit
 * one that has shipped: add the next.
 *
 * Payloads (snapshots, inbox entries, transcript entries, event data) are `json`, not text:
 * `json` keeps any JavaScript string — NUL characters and lone surrogates included, which a
 * `text` column refuses or mangles — so one hostile input can never fail a group commit
 * that carries other sessions' steps. `json`, not `jsonb`: stored verbatim, never re-parsed.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: nodes and their leases, sessions with their owner and epoch, the inbox (inputs and
  // mail), events for resume, the transcript, and tombstones of deleted sessions.
  `CREATE SEQUENCE incarnations AS integer;
   CREATE TABLE nodes (
     id text PRIMARY KEY,
     incarnation integer NOT NULL,
     lease_until timestamptz NOT NULL,
     joined_at timestamptz NOT NULL DEFAULT now()
   );
   CREATE TABLE sessions (
     id text PRIMARY KEY,
     kind text NOT NULL,
     snapshot json NOT NULL,
     seq integer NOT NULL,
     version integer NOT NULL DEFAULT 1,
     updated_at bigint NOT NULL,
     epoch integer NOT NULL,
     owner_node text,
     owner_incarnation integer
   );
   CREATE INDEX sessions_owner ON sessions (owner_node, owner_incarnation) WHERE owner_node IS NOT NULL;
   CREATE INDEX sessions_updated ON sessions (updated_at);
   CREATE TABLE inbox (
     n bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
     session_id text NOT NULL,
     input_id text NOT NULL,
     kind text NOT NULL CHECK (kind IN ('input', 'command', 'control')),
     entry json NOT NULL,
     consumed boolean NOT NULL DEFAULT false,
     UNIQUE (session_id, input_id)
   );
   CREATE INDEX inbox_session ON inbox (session_id, n);
   CREATE INDEX inbox_waiting ON inbox (session_id, n) WHERE NOT consumed;
   CREATE TABLE events (
     session_id text NOT NULL,
     seq integer NOT NULL,
     type text NOT NULL,
     data json NOT NULL,
     PRIMARY KEY (session_id, seq)
   );
   CREATE TABLE transcript (
     n bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
     session_id text NOT NULL,
     entry json NOT NULL
   );
   CREATE INDEX transcript_session ON transcript (session_id, n);
   CREATE TABLE tombstones (
     session_id text PRIMARY KEY,
     deleted_at bigint NOT NULL
   );`,
  // 2: mail of kind 'answer' (an onboarding answer), and whether the owner has taken a mail
  // (it is offered to the machine once); what the owner accepts itself is taken already.
  `ALTER TABLE inbox DROP CONSTRAINT inbox_kind_check;
   ALTER TABLE inbox ADD CONSTRAINT inbox_kind_check CHECK (kind IN ('input', 'command', 'control', 'answer'));
   ALTER TABLE inbox ADD COLUMN taken boolean NOT NULL DEFAULT false;
   CREATE INDEX inbox_untaken ON inbox (session_id, n) WHERE NOT taken AND NOT consumed;`,
  // 3: mail of kind 'decision' (a permission decision for a tool call, C19).
  `ALTER TABLE inbox DROP CONSTRAINT inbox_kind_check;
   ALTER TABLE inbox ADD CONSTRAINT inbox_kind_check CHECK (kind IN ('input', 'command', 'control', 'answer', 'decision'));`,
  // 4: schedules (C20), one row per schedule, found by due time across sessions.
  `CREATE TABLE schedules (
     session_id text NOT NULL,
     id text NOT NULL,
     due_at bigint NOT NULL,
     every_ms bigint,
     cron text,
     payload json,
     PRIMARY KEY (session_id, id)
   );
   CREATE INDEX schedules_due ON schedules (due_at);`,
];

/**
 * Runs the migrations the schema has not seen yet, each in its own transaction. Every
 * transaction first takes an advisory lock on the schema's name, so nodes that start at
 * once run each migration exactly once, one after the other.
 */
export async function migrate(sql: Sql, schema: string, upTo = MIGRATIONS.length): Promise<void> {
  for (let done = false; !done; ) {
    done = await transaction(sql, async (tx) => {
      await tx`SELECT pg_advisory_xact_lock(hashtextextended(${`baton migrations ${schema}`}, 0))`;
      const current = await version(tx, schema);
      if (current > MIGRATIONS.length) {
        throw new Error(`the PostgreSQL schema "${schema}" has Baton schema version ${current}, newer than this Baton (${MIGRATIONS.length}); upgrade Baton`);
      }
      if (current >= upTo) return true;
      // The schema name is a validated identifier (see postgres-options.ts).
      await tx.unsafe(`SET LOCAL search_path TO ${schema}`);
      await tx.unsafe(MIGRATIONS[current]!);
      await tx`INSERT INTO baton_schema_version (version) VALUES (${current + 1})`;
      return false;
    });
  }
}

/** The schema's Baton version; creates the schema and the version table on first use. */
async function version(tx: TransactionSql, schema: string): Promise<number> {
  const [state] = await tx<{ table: string | null; tables: number }[]>`
    SELECT to_regclass(${`${schema}.baton_schema_version`})::text AS table,
           (SELECT count(*)::int FROM pg_tables WHERE schemaname = ${schema}) AS tables`;
  if (!state?.table) {
    if ((state?.tables ?? 0) > 0) throw new Error(`the PostgreSQL schema "${schema}" holds tables of another application, not Baton's`);
    await tx.unsafe(`CREATE SCHEMA IF NOT EXISTS ${schema};
      CREATE TABLE ${schema}.baton_schema_version (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`);
    return 0;
  }
  const [row] = await tx<{ v: number }[]>`SELECT coalesce(max(version), 0)::int AS v FROM ${tx(schema)}.baton_schema_version`;
  return row?.v ?? 0;
}

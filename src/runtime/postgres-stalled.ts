import type { Sql } from 'postgres';

/**
 * Ends the transactions on this cluster's sessions that a stalled client holds open in the
 * middle of a command for longer than a lease TTL (C17), and resolves with how many it ended.
 *
 * Why: a group commit locks its sessions' rows until COMMIT, and a node stopped inside one
 * (SIGSTOP, a VM pause, a half-open link) keeps them locked, so no other node can claim those
 * sessions — their inputs and schedules wait for it, however long it is gone. The server's
 * `idle_in_transaction_session_timeout` ends such a transaction only once the server is idle
 * between commands. The client (postgres.js) sends a statement it has not prepared on that
 * connection in two round trips — Parse/Describe/Flush, and only once that is answered
 * Bind/Execute/Sync — and a node stopped in between leaves its backend `active`, waiting
 * for the rest of the command (`ClientRead`): neither that timeout nor `statement_timeout`
 * applies there (PostgreSQL 15), and the rows stay locked until the node comes back.
 *
 * So the live nodes end them: a backend of this database user, in the middle of a command
 * and waiting for its client since more than `ttlMs` ago, holding a lock on this schema's
 * `sessions` (its transaction is a commit or a claim), is terminated — its transaction
 * rolls back, as the idle timeout would have done. A client that has not sent the rest of a
 * command for a lease TTL has lost its lease anyway; its late COMMIT fails.
 *
 * `sql` runs with this cluster's schema on its search_path.
 */
export async function endStalledTransactions(sql: Sql, ttlMs: number): Promise<number> {
  const [row] = await sql<{ ended: number }[]>`
    WITH stalled AS MATERIALIZED (
      SELECT a.pid FROM pg_stat_activity a
      WHERE a.datname = current_database() AND a.usename = current_user AND a.pid <> pg_backend_pid()
        AND a.state = 'active' AND a.wait_event_type = 'Client' AND a.wait_event = 'ClientRead'
        AND a.xact_start IS NOT NULL
        AND a.state_change < now() - ${Math.max(1, Math.floor(ttlMs))}::int * interval '1 millisecond'
        AND EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.locktype = 'relation' AND l.relation = 'sessions'::regclass))
    SELECT (count(*) FILTER (WHERE pg_terminate_backend(pid)))::int AS ended FROM stalled`;
  return row?.ended ?? 0;
}

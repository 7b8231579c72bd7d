import type { Sql, TransactionSql } from 'postgres';

/**
 * `sql.begin(fn)`, safe against a connection that dies inside the transaction.
 *
 * - When a statement of a transaction fails, the `postgres` client (3.4.x) sends ROLLBACK on
 *   the same connection; if the failure was the connection closing (`pg_terminate_backend`,
 *   a failover, `idle_in_transaction_session_timeout`), that write lands on a null socket
 *   inside a `setImmediate` and throws where nothing can catch it: the process dies
 *   (porsager/postgres#1208). Here a transaction whose connection is lost never settles its
 *   callback, so the client sends nothing more on it, and this function rejects with the
 *   loss. The server has rolled the transaction back already.
 * - With `deadlineMs`, a transaction that has not settled by then is given up (rejected):
 *   measured under repeated terminations, the client now and then leaves one pending for
 *   good, and a group commit that never settles would stall every session of the node. The
 *   caller treats it as a failed commit; whether the server committed it is read back when
 *   the session is activated again (C16).
 */
export function transaction<T>(sql: Sql, fn: (tx: TransactionSql) => Promise<T>, deadlineMs?: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let lost: (error: unknown) => void = () => {};
  const given = new Promise<never>((_, reject) => {
    // The loss is the answer at once: `begin` itself may never hear of it (a connection
    // that closes while it reconnects does not tell the transaction it was running).
    lost = reject;
    if (deadlineMs !== undefined) {
      timer = setTimeout(() => reject(new Error(`PostgreSQL transaction did not settle within ${deadlineMs} ms; given up`)), deadlineMs);
    }
  });
  const run = sql.begin((tx) =>
    fn(tx).catch((error: unknown) => {
      if (!connectionLost(error)) throw error;
      lost(error);
      return new Promise<T>(() => {});
    }),
  ) as Promise<T>;
  return Promise.race([run, given]).finally(() => clearTimeout(timer));
}

/** The client's own codes for a closed connection, and the server's FATAL before it closes one. */
function connectionLost(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { code, severity } = error as { code?: unknown; severity?: unknown };
  return (typeof code === 'string' && code.startsWith('CONNECTION_')) || severity === 'FATAL' || severity === 'PANIC';
}

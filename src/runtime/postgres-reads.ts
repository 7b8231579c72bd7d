import type { PendingQuery, Row, Sql } from 'postgres';
import type { InboxEntry, LoadedSession, NodeIdentity, OwnedElsewhere, ScheduleRecord, StoredSession, TranscriptEntry } from './store.ts';

/**
 * The reads of {@link PostgresStore}, each one statement (one snapshot, one round trip).
 * A node is alive while its lease row, of the incarnation the session names, has not
 * expired by the database's clock; `alias` names the sessions row the check is about.
 */
export function liveOwner(sql: Sql, alias = 's'): PendingQuery<Row[]> {
  const t = sql(alias);
  return sql`EXISTS (SELECT 1 FROM nodes n WHERE n.id = ${t}.owner_node AND n.incarnation = ${t}.owner_incarnation AND n.lease_until > now())`;
}

interface SessionRow {
  kind: string;
  snapshot: unknown;
  seq: number;
  version: number;
  epoch: number;
}

type ClaimRow = SessionRow & { owner_node: string | null; owner_incarnation: number | null; owner_kind: string | null };

/** What a claim found: the session, claimed at `epoch`, or its live owner (and its kind), or nothing. */
export type ClaimAnswer = { claimed: SessionRow } | OwnedElsewhere | undefined;

/**
 * Claims a session for this node in one statement: with `epoch + 1` when it has no owner
 * or a dead one, unchanged when this node (this incarnation) owns it already.
 *
 * The row is locked first (`target`) and the owner is judged on the locked, newest version:
 * a claim or commit in flight finishes first and is then seen. (A condition on the UPDATE
 * itself would be re-checked after such a wait without its subquery: two claims both won.)
 */
export async function claimSession(sql: Sql, id: string, node: NodeIdentity): Promise<ClaimAnswer> {
  const rows = await sql<ClaimRow[]>`
    WITH target AS (SELECT id, kind, owner_node, owner_incarnation FROM sessions WHERE id = ${id} FOR UPDATE),
    free AS (
      SELECT t.id FROM target t
      WHERE t.owner_node IS NULL OR (t.owner_node = ${node.id} AND t.owner_incarnation = ${node.incarnation}) OR NOT ${liveOwner(sql, 't')}),
    claimed AS (
      UPDATE sessions s SET
        epoch = CASE WHEN s.owner_node = ${node.id} AND s.owner_incarnation = ${node.incarnation} THEN s.epoch ELSE s.epoch + 1 END,
        owner_node = ${node.id}, owner_incarnation = ${node.incarnation}
      FROM free WHERE s.id = free.id
      RETURNING s.kind, s.snapshot, s.seq, s.version, s.epoch)
    SELECT kind, snapshot, seq, version, epoch, NULL::text AS owner_node, NULL::int AS owner_incarnation, NULL::text AS owner_kind FROM claimed
    UNION ALL
    SELECT NULL, NULL, NULL, NULL, NULL, owner_node, owner_incarnation, kind FROM target WHERE NOT EXISTS (SELECT 1 FROM claimed)`;
  const row = rows[0];
  if (!row) return undefined;
  if (row.kind !== null) return { claimed: row };
  if (row.owner_node === null) return undefined;
  return { ownedBy: { id: row.owner_node, incarnation: row.owner_incarnation ?? 0 }, ...(row.owner_kind !== null && { kind: row.owner_kind }) };
}

interface PartsRow {
  last_seq: number | null;
  pending: InboxEntry[];
  recent: InboxEntry[];
  history: TranscriptEntry[];
  /** `[id, dueAt, everyMs, cron, hasPayload, payload]`: an array keeps a payload's nulls as they are. */
  schedules: [string, number, number | null, string | null, boolean, unknown][];
}

/** The inbox, event, transcript and schedule parts of an activation, as columns of one row. */
function parts(sql: Sql, id: string, recent: number, history: number): PendingQuery<Row[]> {
  return sql`
    (SELECT max(seq) FROM events WHERE session_id = ${id}) AS last_seq,
    (SELECT coalesce(json_agg(entry ORDER BY n), '[]') FROM inbox WHERE session_id = ${id} AND kind IN ('input', 'answer') AND NOT consumed) AS pending,
    (SELECT coalesce(json_agg(entry ORDER BY n), '[]')
       FROM (SELECT n, entry FROM inbox WHERE session_id = ${id} AND kind IN ('input', 'answer') ORDER BY n DESC LIMIT ${Math.max(0, recent)}) r) AS recent,
    (SELECT coalesce(json_agg(entry ORDER BY n), '[]')
       FROM (SELECT n, entry FROM transcript WHERE session_id = ${id} ORDER BY n DESC LIMIT ${Math.max(0, history)}) h) AS history,
    (SELECT coalesce(json_agg(json_build_array(id, due_at, every_ms, cron, payload IS NOT NULL, payload) ORDER BY due_at, id), '[]')
       FROM schedules WHERE session_id = ${id}) AS schedules`;
}

/** The rest of an activation, read after the claim (a fresh snapshot that sees the previous owner's last commit). */
export async function readParts(sql: Sql, id: string, recent: number, history: number): Promise<PartsRow> {
  const [row] = await sql<PartsRow[]>`SELECT ${parts(sql, id, recent, history)}`;
  return row!;
}

type ReadRow = SessionRow & PartsRow & { live_node: string | null; live_incarnation: number | null };

/** A session and its parts without claiming it (a status), with its live owner: one statement, one snapshot. */
export async function readSession(sql: Sql, sessionId: string, id: string, recent: number, history: number): Promise<LoadedSession | undefined> {
  const [row] = await sql<ReadRow[]>`
    SELECT s.kind, s.snapshot, s.seq, s.version, s.epoch,
           CASE WHEN ${liveOwner(sql)} THEN s.owner_node END AS live_node, CASE WHEN ${liveOwner(sql)} THEN s.owner_incarnation END AS live_incarnation,
           ${parts(sql, id, recent, history)}
    FROM sessions s WHERE s.id = ${id}`;
  if (!row) return undefined;
  const session = loaded(sessionId, row, row);
  return row.live_node === null ? session : { ...session, owner: { id: row.live_node, incarnation: row.live_incarnation ?? 0 } };
}

export function loaded(sessionId: string, row: SessionRow, parts: PartsRow): LoadedSession {
  const session: StoredSession = { sessionId, kind: row.kind, snapshot: row.snapshot, seq: row.seq, version: row.version };
  return {
    session,
    lastSeq: Math.max(row.seq, parts.last_seq ?? 0),
    pending: parts.pending,
    recent: parts.recent,
    history: parts.history,
    schedules: parts.schedules.map(([id, dueAt, everyMs, cron, hasPayload, payload]) => ({
      id,
      dueAt: Number(dueAt),
      ...(everyMs !== null && { everyMs: Number(everyMs) }),
      ...(cron !== null && { cron }),
      ...(hasPayload && { payload }),
    })),
  };
}

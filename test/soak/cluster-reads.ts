/**
 * What the cluster soak reads straight from PostgreSQL (its own schema, dropped at the end):
 * the seqs a killed node had stored, and the events the store holds once the run is over.
 */
import postgres from 'postgres';
import type { StoredEvents } from './checker.ts';

export interface ClusterReads {
  /** Per session the killed node owned, the last seq stored for it: read at once, before its lease runs out. */
  boundaries(nodeId: string): Promise<Map<string, number>>;
  /** Per session, its last stored seq and the events the store still keeps (the newest of each). */
  stored(sessionIds: readonly string[]): Promise<Map<string, StoredEvents>>;
  /** Drops the schema (unless kept) and closes the connection. */
  close(keep: boolean): Promise<void>;
}

export function clusterReads(url: string, schema: string): ClusterReads {
  const sql = postgres(url, { max: 2, onnotice: () => {}, connection: { search_path: schema } });
  return {
    async boundaries(nodeId) {
      // Nobody may claim a dead node's sessions before its lease runs out: these seqs are final.
      const rows = await sql<{ session: string; seq: number }[]>`
        SELECT s.id AS session, greatest(s.seq, coalesce(max(e.seq), 0))::int AS seq
        FROM sessions s LEFT JOIN events e ON e.session_id = s.id
        WHERE s.owner_node = ${nodeId} GROUP BY s.id, s.seq`;
      return new Map(rows.map((r) => [r.session, r.seq]));
    },
    async stored(sessionIds) {
      const result = new Map<string, { lastSeq: number; events: Map<number, { type: string; data: unknown }> }>();
      const held = (id: string) => result.get(id) ?? result.set(id, { lastSeq: 0, events: new Map() }).get(id)!;
      const ids = [...sessionIds];
      for (const row of await sql<{ id: string; seq: number }[]>`SELECT id, seq FROM sessions WHERE id = ANY(${ids}::text[])`) {
        held(row.id).lastSeq = row.seq;
      }
      // Cursor-read: a flooded session alone keeps megabytes of deltas.
      await sql<{ session_id: string; seq: number; type: string; data: unknown }[]>`
        SELECT session_id, seq, type, data FROM events WHERE session_id = ANY(${ids}::text[])`.cursor(1000, (rows) => {
        for (const { session_id, seq, type, data } of rows) {
          const session = held(session_id);
          session.events.set(seq, { type, data });
          session.lastSeq = Math.max(session.lastSeq, seq);
        }
      });
      return result;
    },
    async close(keep) {
      if (!keep) await sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await sql.end({ timeout: 5 });
    },
  };
}

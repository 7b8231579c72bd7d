import { afterEach, describe, expect, it } from 'vitest';
import { Cluster, disagreements, doneCounts, gaps, waitFor, words, type Conn, type StoredEvent } from './harness.ts';

let cluster: Cluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

/** Reads back every session's stored events. */
async function storedAll(c: Cluster, sessions: readonly string[]): Promise<Map<string, Map<number, StoredEvent>>> {
  return new Map(await Promise.all(sessions.map(async (s) => [s, await c.stored(s)] as const)));
}

describe('a cluster of three gateway processes on PostgreSQL', () => {
  it('C8, C17: conversations work from every node — an input sent to a node that does not own its session is acked durable and answered there; seq gapless per connection; resume by last_seq on another node', async () => {
    const c = (cluster = new Cluster(['--lease-ttl-ms', '3000', '--cluster-sweep-ms', '300', '--demo-delay-ms', '2']));
    const nodes = await Promise.all(['a', 'b', 'c'].map((id) => c.start(id)));
    const sessions = Array.from({ length: 6 }, (_, i) => `conv-${i}`);
    // The first client of each session claims it on its node: owners spread over the three.
    const first = await Promise.all(sessions.map((s, i) => c.attach(nodes[i % 3]!, s)));
    for (const [i, s] of sessions.entries()) expect((await c.owner(s))?.owner_node, s).toBe(nodes[i % 3]!.id);
    // Then a client on each other node: every session has one client per node.
    const others = await Promise.all(sessions.flatMap((s, i) => [1, 2].map((k) => c.attach(nodes[(i + k) % 3]!, s))));
    const conns = [...first, ...others];

    const sent: { conn: Conn; id: string }[] = [];
    for (const conn of conns) {
      for (let k = 0; k < 2; k++) {
        const id = `${conn.session}.${conn.node}.${k}`;
        conn.input(id, words(id, 4));
        sent.push({ conn, id });
      }
    }
    await waitFor(() => sent.every(({ conn, id }) => conn.acked(id) || conn.refused(id)), 'every input acked');
    for (const { conn, id } of sent) {
      expect(conn.refused(id), id).toBeUndefined();
      // C12: durable wherever the client is, owner or not.
      expect(conn.acked(id)!.event.data.durability, id).toBe('durable');
    }
    // Each input's done reaches the client that sent it — through the store when its node does not own the session.
    const doneFor = (conn: Conn, id: string) => conn.frames.some((f) => f.event.type === 'done' && (f.event.data.input_ids as string[]).includes(id));
    await waitFor(() => sent.every(({ conn, id }) => doneFor(conn, id)), () => `a done for every input at its sender: missing ${sent.filter(({ conn, id }) => !doneFor(conn, id)).map((x) => x.id).join(', ')}`);
    // And every client sees every turn of its session, from its attach point on, gapless (C8).
    await waitFor(() => conns.every((conn) => sent.filter((x) => x.conn.session === conn.session).every(({ id }) => doneFor(conn, id))), 'every client to see every turn of its session');
    for (const conn of conns) {
      expect(gaps(conn, conn.ack.event.data.seq as number), `${conn.session}@${conn.node}`).toEqual([]);
    }

    // Resume on another node: two clients of each session leave — the one on its owner and one
    // elsewhere — the session goes on through the third, and each comes back on the other's
    // node with its last_seq (one of them on a node where nobody watches the session any more).
    const resumed: { conn: Conn; from: number; id: string }[] = [];
    for (const [i, s] of sessions.entries()) {
      const leaving = [first[i]!, others[i * 2 + 1]!];
      const from = leaving.map((conn) => conn.lastSeq());
      await Promise.all(leaving.map((conn) => conn.client.close()));
      const stay = others[i * 2]!;
      const id = `${s}.while-away`;
      stay.input(id, words(id, 4));
      await waitFor(() => doneFor(stay, id), `${id} done`);
      sent.push({ conn: stay, id });
      const back = [nodes[(i + 2) % 3]!, nodes[i % 3]!];
      for (const k of [0, 1]) resumed.push({ conn: await c.attach(back[k]!, s, { last_seq: from[k] }), from: from[k]!, id });
    }
    for (const { conn, from, id } of resumed) {
      expect(conn.ack.event.data.resume, conn.session).toMatchObject({ from, complete: true });
      // What happened while it was away is replayed: it resumes right after its last_seq, with no gap and nothing twice.
      await waitFor(() => doneFor(conn, id), `${conn.session}: the turn it missed, replayed on ${conn.node}`);
      expect(conn.events()[0]?.seq, conn.session).toBe(from + 1);
      expect(gaps(conn, from), conn.session).toEqual([]);
    }

    // C12: every input in exactly one done, and it succeeded; C16: every event a client saw is the stored one.
    const stored = await storedAll(c, sessions);
    for (const s of sessions) {
      const counts = doneCounts(stored.get(s)!);
      for (const { id } of sent.filter((x) => x.conn.session === s)) expect(counts.get(id), id).toEqual({ done: 1, success: 1 });
    }
    expect(disagreements([...conns, ...resumed.map((r) => r.conn)], stored)).toEqual([]);
    // A new client (no last_seq) on a node where nobody watches the session: init_ack names
    // the latest seq and nothing of the past follows — as on the owner.
    const s = sessions[0]!;
    for (const conn of [...conns, ...resumed.map((r) => r.conn)].filter((x) => x.session === s)) await conn.client.close();
    const latest = Math.max(...stored.get(s)!.keys());
    const fresh = await c.attach(nodes[1]!, s);
    expect(fresh.ack.event.data.seq).toBe(latest);
    await fresh.client.sync();
    expect(fresh.events()).toEqual([]);
    for (const node of nodes) expect(node.stderr(), node.id).toBe('');
  });
});

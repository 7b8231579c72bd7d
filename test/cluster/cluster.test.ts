import { afterEach, describe, expect, it } from 'vitest';
import { FakeModel } from './fake-model.ts';
import { Cluster, Driver, disagreements, doneCounts, gaps, seenTogether, waitFor, words, type Conn, type Node, type StoredEvent } from './harness.ts';

let cluster: Cluster | undefined;
let model: FakeModel | undefined;
afterEach(async () => {
  await cluster?.close();
  await model?.close();
  cluster = undefined;
  model = undefined;
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
    await waitFor(() => sent.every(({ conn, id }) => conn.done(id)), () => `a done for every input at its sender: missing ${sent.filter(({ conn, id }) => !conn.done(id)).map((x) => x.id).join(', ')}`);
    // And every client sees every turn of its session, from its attach point on, gapless (C8).
    await waitFor(() => conns.every((conn) => sent.filter((x) => x.conn.session === conn.session).every(({ id }) => conn.done(id))), 'every client to see every turn of its session');
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
      await waitFor(() => stay.done(id), `${id} done`);
      sent.push({ conn: stay, id });
      const back = [nodes[(i + 2) % 3]!, nodes[i % 3]!];
      for (const k of [0, 1]) resumed.push({ conn: await c.attach(back[k]!, s, { last_seq: from[k] }), from: from[k]!, id });
    }
    for (const { conn, from, id } of resumed) {
      expect(conn.ack.event.data.resume, conn.session).toMatchObject({ from, complete: true });
      // What happened while it was away is replayed: it resumes right after its last_seq, with no gap and nothing twice.
      await waitFor(() => conn.done(id), `${conn.session}: the turn it missed, replayed on ${conn.node}`);
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

  it('C12, C17: kill -9 the owner mid-turn — its sessions move within lease TTL + sweep interval; every durable-acked input is in exactly one done; no seq is reused (C8, C16)', async () => {
    const ttl = 1500;
    const sweep = 250;
    const c = (cluster = new Cluster(['--lease-ttl-ms', String(ttl), '--cluster-sweep-ms', String(sweep), '--demo-delay-ms', '25']));
    const [a, b, d] = await Promise.all(['a', 'b', 'c'].map((id) => c.start(id)));
    const sessions = Array.from({ length: 4 }, (_, i) => `kill-${i}`);
    // Every session owned by a; a client of each on every node.
    const onA = await Promise.all(sessions.map((s) => c.attach(a!, s)));
    for (const s of sessions) expect((await c.owner(s))?.owner_node).toBe('a');
    const elsewhere = await Promise.all(sessions.flatMap((s) => [c.attach(b!, s), c.attach(d!, s)]));
    const sent: { conn: Conn; id: string }[] = [];
    const say = (conn: Conn, id: string) => {
      conn.input(id, words(id, 12)); // about 300 ms of streaming
      sent.push({ conn, id });
    };
    for (const conn of [...onA, ...elsewhere]) say(conn, `${conn.session}.${conn.node}.0`);
    await waitFor(() => sent.every(({ conn, id }) => conn.acked(id)), 'every input acked');
    // Mid-turn: a's clients are seeing a reply stream.
    await waitFor(() => onA.every((conn) => conn.frames.some((f) => f.event.type === 'message.delta')), 'a turn streaming in every session');
    const killedAt = Date.now();
    expect(await c.signal(a!, 'SIGKILL')).toBe('SIGKILL');
    // While a is dead and its lease not yet expired, the others still take inputs for its sessions, durably.
    for (const conn of elsewhere) say(conn, `${conn.session}.${conn.node}.1`);

    // Its sessions move: claimed by a live node within TTL + sweep (+ slack for a 2-core machine).
    const moved = new Map<string, number>();
    await waitFor(async () => {
      for (const s of sessions) {
        const row = await c.owner(s);
        if (!moved.has(s) && row?.owner_node && row.owner_node !== 'a') moved.set(s, Date.now() - killedAt);
      }
      return moved.size === sessions.length;
    }, 'every session of a claimed by b or c', 10_000);
    for (const [s, ms] of moved) expect(ms, s).toBeLessThan(ttl + sweep + 1000);

    // a's clients come back on b with their last_seq and resume there.
    const back = await Promise.all(onA.map(async (conn) => ({ conn: await c.attach(b!, conn.session, { last_seq: conn.lastSeq() }), from: conn.lastSeq() })));
    await waitFor(() => elsewhere.every((conn) => conn.acked(`${conn.session}.${conn.node}.1`)), 'the inputs sent during the outage acked');
    for (const { conn, id } of sent) {
      if (conn.acked(id)) expect(conn.acked(id)!.event.data.durability, id).toBe('durable');
    }
    const acked = sent.filter(({ conn, id }) => conn.acked(id));
    // Every durable-acked input runs to exactly one done, wherever it was sent.
    let stored = new Map<string, Map<number, StoredEvent>>();
    await waitFor(async () => {
      stored = await storedAll(c, sessions);
      return acked.every(({ conn, id }) => doneCounts(stored.get(conn.session)!).get(id)?.success === 1);
    }, 'a successful done for every acked input', 15_000);
    // Settled: nothing more is running anywhere.
    await waitFor(async () => (await Promise.all([b!, d!].map((n) => c.health(n)))).every((h) => h.status === 'ok'), 'b and c healthy');
    stored = await storedAll(c, sessions);
    for (const { conn, id } of acked) expect(doneCounts(stored.get(conn.session)!).get(id), id).toEqual({ done: 1, success: 1 });
    // No seq reused: what every client saw (a's, before the kill, included) is what is stored, gapless per connection.
    const all = [...onA, ...elsewhere, ...back.map((x) => x.conn)];
    await waitFor(
      () => elsewhere.every((conn) => acked.filter((x) => x.conn.session === conn.session).every(({ id }) => conn.done(id))),
      'every client on b and c to see every done of its session',
    );
    expect(disagreements(all, stored)).toEqual([]);
    for (const conn of [...onA, ...elsewhere]) expect(gaps(conn, conn.ack.event.data.seq as number), `${conn.session}@${conn.node}`).toEqual([]);
    for (const { conn, from } of back) {
      expect(conn.ack.event.data.resume, conn.session).toMatchObject({ from, complete: true });
      expect(gaps(conn, from), `${conn.session} resumed on b`).toEqual([]);
    }
  });

  it('C17: SIGSTOP the owner past its lease, another node takes over and finishes, SIGCONT — the zombie\'s next commit is refused, it drops its sessions; no stale-epoch event follows a newer one; at most one agent call per session per epoch (C16)', async () => {
    const ttl = 1500;
    const sweep = 250;
    const m = (model = new FakeModel({ chunks: 30, chunkMs: 50 })); // a 1.5 s reply
    await m.start();
    const c = (cluster = new Cluster(['--lease-ttl-ms', String(ttl), '--cluster-sweep-ms', String(sweep), '--agent', 'openai', '--model', 'fake']));
    const start = (id: string) => c.start(id, { env: { OPENAI_BASE_URL: m.baseUrl(id), OPENAI_API_KEY: 'test' } });
    const [a, b] = await Promise.all([start('a'), start('b')]);
    // Each agent call, with the session's epoch when it arrived.
    const epochs = new Map<(typeof m.calls)[number], Promise<number | undefined>>();
    m.onCall = (call) => epochs.set(call, c.owner(call.inputs[0]!.split(' ')[0]!.split('.')[0]!).then((row) => row?.epoch));
    const sessions = ['zombie-0', 'zombie-1'];
    const onA = await Promise.all(sessions.map((s) => c.attach(a!, s)));
    const onB = await Promise.all(sessions.map((s) => c.attach(b!, s)));
    for (const s of sessions) expect((await c.owner(s))?.owner_node).toBe('a');
    // Inputs sent through b: mailed to a, which starts their agent calls.
    for (const conn of onB) conn.input(`${conn.session}.in`, `${conn.session}.in hello`);
    await waitFor(() => onB.every((conn) => conn.acked(`${conn.session}.in`)), 'the inputs acked');
    await waitFor(() => onB.every((conn) => conn.frames.some((f) => f.event.type === 'message.delta')), 'a streaming both replies (seen on b)');
    expect(m.calls.map((x) => x.node)).toEqual(['a', 'a']);

    const joined = (await c.health(a!)).node!.incarnation;
    await c.signal(a!, 'SIGSTOP');
    const stoppedAt = Date.now();
    // b claims them once a's lease has run out, runs the turns again and finishes them.
    let rows: unknown[] = [];
    await waitFor(
      async () => (rows = await Promise.all(sessions.map((s) => c.owner(s)))).every((row) => (row as { owner_node?: string } | undefined)?.owner_node === 'b'),
      () => `b to own both sessions: ${JSON.stringify(rows)}`,
      10_000,
    );
    const doneOn = (conn: Conn, id: string) => conn.frames.some((f) => f.event.type === 'done' && f.event.data.success && (f.event.data.input_ids as string[]).includes(id));
    await waitFor(() => onB.every((conn) => doneOn(conn, `${conn.session}.in`)), 'b to finish both turns', 10_000);
    const beforeWake = m.calls.length;
    const health = await c.health(b!);
    expect(health.node?.owned_sessions).toBe(2);

    // The zombie wakes with a reply still streaming in: nothing of it may be committed or shown.
    await c.signal(a!, 'SIGCONT');
    const wokeAt = Date.now();
    // It drops both sessions: its clients are told to come back later (1013), and it owns nothing.
    for (const conn of onA) expect((await conn.client.closed).code, conn.session).toBe(1013);
    const zombie = await waitFor(async () => {
      const h = await c.health(a!).catch(() => undefined);
      return h?.node && h.node.owned_sessions === 0 && h.status === 'ok' && h.node.lease_valid && h.node.incarnation > joined ? h : undefined;
    }, () => `a to rejoin healthy under a new incarnation, owning nothing (exit ${a!.child.exitCode ?? a!.child.signalCode}; stderr: ${a!.stderr()})`);
    expect(zombie!.fenced_commits).toBeGreaterThanOrEqual(1);
    // It rejoined under a new incarnation and serves again — through the store, for sessions b owns.
    const again = await c.attach(a!, sessions[0]!);
    again.input('after-wake', 'zombie-0.after hello again');
    await waitFor(() => again.acked('after-wake'), 'an input sent through the old zombie acked');
    await waitFor(() => doneOn(again, 'after-wake'), 'and answered by b');
    expect(m.calls.slice(beforeWake).map((x) => x.node)).toEqual(['b']);

    // At most one agent call per session per epoch for a turn: the zombie's call and b's re-run
    // are in different epochs, and the zombie made no call after it woke.
    const callsOf = async (tag: string) =>
      Promise.all(m.calls.filter((x) => x.inputs.some((i) => i.startsWith(`${tag} `))).map(async (x) => `${x.node}#${await epochs.get(x)}`));
    for (const s of sessions) expect(await callsOf(`${s}.in`), s).toEqual(['a#1', 'b#2']);
    expect(await callsOf('zombie-0.after')).toEqual(['b#2']);
    expect(m.calls.filter((x) => x.node === 'a' && x.at >= wokeAt)).toEqual([]);
    // No stale-epoch event follows a newer one: every event any client saw is the stored one at its seq.
    const stored = await storedAll(c, sessions);
    expect(disagreements([...onA, ...onB, again], stored)).toEqual([]);
    for (const conn of [...onA, ...onB, again]) expect(gaps(conn, conn.ack.event.data.seq as number), `${conn.session}@${conn.node}`).toEqual([]);
    for (const s of sessions) {
      const counts = doneCounts(stored.get(s)!);
      expect(counts.get(`${s}.in`), s).toEqual({ done: 1, success: 1 });
    }
  });

  it('C12: the LISTEN connections killed (pg_terminate_backend) while inputs go through nodes that do not own their sessions — no input stays stuck: the sweep and the reconnect take over', async () => {
    const sweep = 500;
    const c = (cluster = new Cluster(['--lease-ttl-ms', '3000', '--cluster-sweep-ms', String(sweep), '--demo-delay-ms', '10']));
    const nodes = await Promise.all(['a', 'b', 'c'].map((id) => c.start(id)));
    const listeners = async () =>
      c.admin<{ pid: number; application_name: string }[]>`
        SELECT pid, application_name FROM pg_stat_activity WHERE application_name LIKE 'baton %' AND query ILIKE ${`listen "${c.schema}"`}`;
    await waitFor(async () => (await listeners()).length === 3, 'every node to LISTEN');
    expect((await listeners()).map((l) => l.application_name).sort()).toEqual(['baton a', 'baton b', 'baton c']);
    const sessions = Array.from({ length: 6 }, (_, i) => `listen-${i}`);
    const owners = await Promise.all(sessions.map((s, i) => c.attach(nodes[i % 3]!, s)));
    // Clients only on the nodes that do not own the session: every input is mail, every event comes through the store.
    const conns = await Promise.all(sessions.flatMap((s, i) => [1, 2].map((k) => c.attach(nodes[(i + k) % 3]!, s))));
    const sent: { conn: Conn; id: string; at: number }[] = [];
    // For about a second and a half, every LISTEN connection is killed as soon as it is back:
    // most hints (inbox hints to owners, events hints to these nodes) are lost meanwhile.
    const killed = new Set<number>();
    let killing = true;
    const killer = (async () => {
      while (killing) {
        const pids = (await listeners()).map((l) => l.pid);
        for (const pid of pids) killed.add(pid);
        if (pids.length > 0) await c.admin`SELECT pg_terminate_backend(pid) FROM unnest(${pids}::int[]) AS pid`;
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    })();
    for (let round = 0; round < 8; round++) {
      for (const conn of conns) {
        const id = `${conn.session}.${conn.node}.${round}`;
        conn.input(id, words(id, 6));
        sent.push({ conn, id, at: Date.now() });
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    killing = false;
    await killer;
    expect(killed.size).toBeGreaterThan(6);
    await waitFor(() => sent.every(({ conn, id }) => conn.done(id)), () => `every input answered at its sender; stuck: ${sent.filter(({ conn, id }) => !conn.done(id)).map((x) => x.id).join(', ')}`, 15_000);
    for (const { conn, id } of sent) expect(conn.acked(id)?.event.data.durability, id).toBe('durable');
    // Within a couple of sweeps, not forever.
    const latency = sent.map(({ conn, id, at }) => conn.doneAt.get(id)! - at);
    const slowest = Math.max(...latency);
    expect(slowest).toBeLessThan(2 * sweep + 3000);
    // Every node listens again, on a new connection.
    await waitFor(async () => (await listeners()).length === 3, 'three LISTEN connections again');
    for (const l of await listeners()) expect(killed.has(l.pid), l.application_name).toBe(false);
    const stored = await storedAll(c, sessions);
    for (const { conn, id } of sent) expect(doneCounts(stored.get(conn.session)!).get(id), id).toEqual({ done: 1, success: 1 });
    await waitFor(() => [...owners, ...conns].every((conn) => sent.filter((x) => x.conn.session === conn.session).every(({ id }) => conn.done(id))), 'every client to see every done of its session');
    expect(disagreements([...owners, ...conns], stored)).toEqual([]);
    for (const conn of [...owners, ...conns]) expect(gaps(conn, conn.ack.event.data.seq as number), `${conn.session}@${conn.node}`).toEqual([]);
    for (const node of nodes) expect(node.child.exitCode, node.id).toBeNull();
  });

  it('C12, C14: a rolling restart of all three nodes (SIGTERM, start again, one by one) under a light load — no input lost, none run twice; every client resumes on another node without a gap (C8, C10, C17)', async () => {
    const c = (cluster = new Cluster(['--lease-ttl-ms', '2000', '--cluster-sweep-ms', '250', '--demo-delay-ms', '5', '--drain-ms', '2000']));
    const up = new Map<string, Node>();
    for (const node of await Promise.all(['a', 'b', 'c'].map((id) => c.start(id)))) up.set(node.id, node);
    const sessions = Array.from({ length: 6 }, (_, i) => `roll-${i}`);
    const drivers = sessions.map((s) => new Driver(c, s, () => [...up.values()]));
    await Promise.all(drivers.map((d, i) => d.start([...up.values()][i % 3]!, 200)));
    const settle = async () => {
      const before = drivers.map((d) => d.sent.length);
      await waitFor(() => drivers.every((d, i) => d.sent.length >= before[i]! + 3 && d.conn?.open), 'the load to go on');
    };
    await settle();
    for (const id of ['a', 'b', 'c']) {
      const node = up.get(id)!;
      up.delete(id);
      // C14: it drains, releases its sessions, leaves the cluster and exits 0.
      expect(await c.signal(node, 'SIGTERM'), `${id} exit`).toBe(0);
      up.set(id, await c.start(id));
      await settle();
    }
    for (const d of drivers) d.stop();
    await waitFor(() => {
      const waiting = drivers.filter((d) => d.unacked().length > 0);
      waiting.forEach((d) => d.resend());
      return waiting.length === 0;
    }, () => `every input acked: ${drivers.map((d) => d.unacked().join(',')).join(' ')}`, 15_000, 200);
    // Acked durable — or, for a resend whose first ack was lost with its node, as a duplicate (C10).
    for (const d of drivers) {
      for (const id of d.sent) {
        const acks = d.conns.flatMap(({ conn }) => conn.frames.filter((f) => f.event.type === 'input.ack' && f.event.data.client_message_id === id));
        expect(acks.some((f) => f.event.data.durability === 'durable' || f.event.data.duplicate === true), id).toBe(true);
      }
    }
    // No loss, no duplicate: every input in exactly one done, and it succeeded — counted in
    // everything each client saw (its connections resumed one after the other, so together
    // they hold the whole stream from its first attach; the store keeps only the newest events).
    await waitFor(() => drivers.every((d) => d.sent.every((id) => d.conns.some(({ conn }) => conn.done(id)))), () => `every done at its client; missing: ${drivers.flatMap((d) => d.sent.filter((id) => !d.conns.some(({ conn }) => conn.done(id)))).join(', ')}`, 15_000);
    for (const d of drivers) {
      const counts = doneCounts(seenTogether(d.conns.map(({ conn }) => conn)));
      for (const id of d.sent) expect(counts.get(id), id).toEqual({ done: 1, success: 1 });
    }
    const stored = await storedAll(c, sessions);
    // Every client moved at least once, and every connection is gapless from where it attached or resumed.
    const conns = drivers.flatMap((d) => d.conns);
    for (const d of drivers) expect(d.conns.length, d.session).toBeGreaterThan(1);
    for (const { conn, from } of conns) {
      if (from !== undefined) expect(conn.ack.event.data.resume, `${conn.session}@${conn.node}`).toMatchObject({ from, complete: true });
      expect(gaps(conn, from ?? (conn.ack.event.data.seq as number)), `${conn.session}@${conn.node}`).toEqual([]);
    }
    expect(disagreements(conns.map((x) => x.conn), stored)).toEqual([]);
  });
});


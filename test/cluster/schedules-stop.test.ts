import { afterEach, describe, expect, it } from 'vitest';
import { Cluster, disagreements, doneCounts, gaps, waitFor, type Conn, type StoredEvent } from './harness.ts';

let cluster: Cluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

/** Sends a `schedule` frame on `conn` and resolves with the due time its ack names. */
async function schedule(conn: Conn, data: Record<string, unknown>): Promise<number> {
  const frameId = conn.client.send('schedule', data);
  const answer = (await waitFor(
    () => conn.frames.find((f) => (f.event.type === 'schedule.ack' || f.event.type === 'error') && f.event.data[f.event.type === 'error' ? 'event_id' : 'client_message_id'] === frameId),
    `${conn.session}: the answer to schedule ${JSON.stringify(data)}`,
  ))!;
  if (answer.event.type !== 'schedule.ack') throw new Error(`${conn.session}: schedule refused: ${JSON.stringify(answer.event.data)}`);
  return answer.event.data.due_at as number;
}

/** The due times of schedule `id` that fired in these dones (`timer:<id>:<due time>`), in order. */
const fired = (counts: ReadonlyMap<string, unknown>, id: string): number[] =>
  [...counts.keys()].filter((k) => k.startsWith(`timer:${id}:`)).map((k) => Number(k.slice(`timer:${id}:`.length))).sort((x, y) => x - y);

/** The due times of `tick` whose done reached `conn` before `before` (Date.now). */
const ticksSeen = (conn: Conn, before = Infinity): number[] => fired(new Map([...conn.doneAt].filter(([, at]) => at < before)), 'tick');

describe('durable schedules on a cluster whose owner is stopped (SIGSTOP)', () => {
  it('C20, C17: SIGSTOP the owner of sessions with recurring schedules past its lease — another node claims them and fires what is due (a one-shot due meanwhile included); SIGCONT — the stopped node is fenced (drops its sessions, rejoins owning nothing) and fires nothing more; no due time fires twice, none is lost', async () => {
    const ttl = 2000;
    const sweep = 250;
    const every = 1000; // MIN_EVERY_MS
    const c = (cluster = new Cluster(['--lease-ttl-ms', String(ttl), '--cluster-sweep-ms', String(sweep), '--demo-delay-ms', '5']));
    const [a, b, d] = await Promise.all(['a', 'b', 'c'].map((id) => c.start(id)));
    const sessions = Array.from({ length: 3 }, (_, i) => `stop-sched-${i}`);
    // Every session owned by a (schedule frames must go to the owner); a client of each on b and c, watching through the store.
    const onA = await Promise.all(sessions.map((s) => c.attach(a!, s)));
    for (const s of sessions) expect((await c.owner(s))?.owner_node, s).toBe('a');
    const onB = await Promise.all(sessions.map((s) => c.attach(b!, s)));
    const onC = await Promise.all(sessions.map((s) => c.attach(d!, s)));
    const firstTick = new Map<string, number>();
    for (const conn of onA) firstTick.set(conn.session, await schedule(conn, { id: 'tick', every_ms: every, payload: 'tick' }));
    // a fires them: two ticks of each session, seen by its clients.
    await waitFor(() => onA.every((conn) => ticksSeen(conn).length >= 2), 'two ticks of every session fired by a', 10_000);

    // A one-shot due about a second from now in each session; a is stopped as soon as it is
    // stored — before it is due, so a cannot be the node that fires it.
    const joined = (await c.health(a!)).node!.incarnation;
    const onceDue = new Map<string, number>();
    for (const conn of onA) onceDue.set(conn.session, await schedule(conn, { id: 'once', at: Date.now() + 1000, payload: 'once' }));
    await c.signal(a!, 'SIGSTOP');
    const stoppedAt = Date.now();
    for (const [s, due] of onceDue) expect(due, s).toBeGreaterThan(stoppedAt);

    // Past a's lease, b or c claims each session and fires what is due: the one-shot, and the
    // ticks due after a stopped (a cannot have fired those).
    let rows: unknown[] = [];
    await waitFor(
      async () => (rows = await Promise.all(sessions.map((s) => c.owner(s)))).every((row) => ['b', 'c'].includes((row as { owner_node?: string } | undefined)?.owner_node ?? '')),
      () => `b or c to own every session: ${JSON.stringify(rows)}`,
      10_000,
    );
    await waitFor(
      () => onB.every((conn) => conn.done(`timer:once:${onceDue.get(conn.session)}`) && ticksSeen(conn).some((due) => due > stoppedAt)),
      () => `the one-shot and a tick due after the stop, fired in every session while a is stopped; seen on b: ${JSON.stringify(onB.map((conn) => [...conn.doneAt.keys()]))}`,
      10_000,
    );
    // Stopped for 2.5 lease TTLs in all (a fixed outage; nothing below depends on its length).
    const hold = stoppedAt + 2.5 * ttl - Date.now();
    if (hold > 0) await new Promise((resolve) => setTimeout(resolve, hold));
    const health = await Promise.all([b!, d!].map((n) => c.health(n)));
    expect(health.reduce((n, h) => n + h.node!.owned_sessions, 0)).toBe(sessions.length);

    // The zombie wakes with every session's schedule overdue in its memory: nothing of it may
    // be committed or shown. It drops its sessions (its clients are told to come back later)
    // and rejoins under a new incarnation, owning nothing.
    await c.signal(a!, 'SIGCONT');
    const wokeAt = Date.now();
    for (const conn of onA) expect((await conn.client.closed).code, conn.session).toBe(1013);
    await waitFor(async () => {
      const h = await c.health(a!).catch(() => undefined);
      return h?.node && h.node.owned_sessions === 0 && h.status === 'ok' && h.node.lease_valid && h.node.incarnation > joined ? h : undefined;
    }, () => `a to rejoin healthy under a new incarnation, owning nothing (exit ${a!.child.exitCode ?? a!.child.signalCode}; stderr: ${a!.stderr()})`);
    // The ticks go on, fired by their new owners: two more in every session after a woke.
    await waitFor(() => onB.every((conn) => ticksSeen(conn).filter((due) => due > wokeAt).length >= 2), 'two more ticks of every session after a woke', 10_000);
    for (const s of sessions) expect(['b', 'c'], s).toContain((await c.owner(s))?.owner_node);

    const stored = new Map<string, Map<number, StoredEvent>>(await Promise.all(sessions.map(async (s) => [s, await c.stored(s)] as const)));
    for (const s of sessions) {
      const events = stored.get(s)!;
      // Nothing trimmed: the store holds the whole stream, so its dones are every fire.
      expect([...events.keys()], s).toEqual(Array.from({ length: events.size }, (_, i) => i + 1));
      const counts = doneCounts(events);
      // C20: once per due time — no timer input in two dones, and every fire succeeded.
      for (const [id, count] of counts) if (id.startsWith('timer:')) expect(count, `${s} ${id}`).toEqual({ done: 1, success: 1 });
      // The one-shot fired once, for its due time, by a node other than a (it came due while a was stopped).
      expect(fired(counts, 'once'), s).toEqual([onceDue.get(s)]);
      // The ticks keep their phase (every due time is the first plus whole intervals) and none
      // was missed for long: the widest gap is the outage (a's lease running out, then a sweep),
      // after which the new owner fires once for all the intervals it missed.
      const ticks = fired(counts, 'tick');
      expect(ticks[0], s).toBe(firstTick.get(s));
      for (const due of ticks) expect((due - firstTick.get(s)!) % every, `${s} tick ${due}`).toBe(0);
      const widest = Math.max(...ticks.slice(1).map((due, i) => due - ticks[i]!));
      expect(widest, s).toBeLessThanOrEqual(2 * ttl + 4 * every);
      // Fired while a was stopped: seen on b before a woke, due after a stopped.
      const conn = onB.find((x) => x.session === s)!;
      expect(ticksSeen(conn, wokeAt).filter((due) => due > stoppedAt).length, s).toBeGreaterThanOrEqual(1);
    }
    // C16, C17: no stale-owner event was shown — every event any client saw (a's clients,
    // before and after the stop, included) is the stored one at its seq, gapless per connection.
    const all = [...onA, ...onB, ...onC];
    await waitFor(
      () => [...onB, ...onC].every((conn) => [...doneCounts(stored.get(conn.session)!).keys()].every((id) => conn.done(id))),
      'every client on b and c to see every stored done of its session',
    );
    expect(disagreements(all, stored)).toEqual([]);
    for (const conn of all) expect(gaps(conn, conn.ack.event.data.seq as number), `${conn.session}@${conn.node}`).toEqual([]);
    // a is alive (a fenced cluster node rejoins; it does not exit).
    expect(a!.child.exitCode, a!.stderr()).toBeNull();
  });
});

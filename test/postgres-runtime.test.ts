import { describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import { z } from 'zod';
import { createRuntime, defineTool, type RuntimeOptions, type SessionEvent, type StepRecord, type Turn } from '../src/index.ts';
import { PostgresStore, StaleEpochError } from '../src/postgres.ts';
import { pgPerTest, pgUrl, waitFor } from './postgres-helpers.ts';

const fx = pgPerTest(100);

/** A node: a runtime on its own PostgresStore, recording its events and the agent calls it made. */
function node(nodeId: string, options: Partial<RuntimeOptions> = {}) {
  const store = new PostgresStore({ url: pgUrl(), schema: fx.schema, nodeId, leaseTtlMs: 600, renewMs: 150 });
  const ran: string[] = [];
  const agent = async (turn: Turn) => {
    ran.push(...turn.inputs.map((i) => i.id));
    return `echo: ${turn.inputs.map((i) => i.content).join(' + ')}`;
  };
  const errors: unknown[] = [];
  const runtime = createRuntime({ agent, store, debounceMs: 0, clusterSweepMs: 100, onError: (error) => errors.push(error), ...options });
  fx.runtimes.push(runtime);
  const events: SessionEvent[] = [];
  runtime.events$.subscribe((e) => events.push(e));
  const done = (inputId: string) => events.some((e) => e.type === 'done' && e.data.input_ids.includes(inputId));
  return { store, runtime, events, ran, done, errors };
}

/** A tool that needs approval, and the nodes it ran on. */
function guarded(ranOn: string[], nodeId: string) {
  return defineTool({
    name: 'guarded',
    description: 'Needs the user',
    parameters: z.object({}),
    needsApproval: true,
    run: (_input, { idempotencyKey }) => void ranOn.push(`${nodeId} ${idempotencyKey}`),
  });
}
const callGuarded = async (turn: Turn) => (await turn.callTool('guarded', {})).status;

describe('approvals on a cluster (C19)', () => {
  it('C19, C17: a decision sent through a node that does not own the session is mailed to its owner; the tool runs once, there', async () => {
    const ranOn: string[] = [];
    const a = node('a', { agent: callGuarded, tools: [guarded(ranOn, 'a')] });
    const b = node('b', { agent: callGuarded, tools: [guarded(ranOn, 'b')] });
    await a.runtime.send('s', { id: 'm1', content: 'go' });
    await waitFor(() => a.events.some((e) => e.type === 'permission_request'), 'the request on a');
    expect(await b.runtime.decide('s', { id: 'call_1_1', allowed: true })).toEqual({ status: 'accepted' });
    await waitFor(() => a.done('m1'), 'the turn to end on a');
    expect(ranOn).toEqual(['a call_1_1:1']);
    expect(a.events.filter((e) => e.type === 'tool_result').map((e) => e.data)).toEqual([{ id: 'call_1_1', status: 'ok', output: null }]);
    expect([...a.errors, ...b.errors]).toEqual([]);
  });

  it('C19, C17: the owner dies while the turn waits; the decision through another node claims the session there and runs the tool once', async () => {
    const ranOn: string[] = [];
    const a = node('a', { agent: callGuarded, tools: [guarded(ranOn, 'a')] });
    const b = node('b', { agent: callGuarded, tools: [guarded(ranOn, 'b')] });
    await a.runtime.send('s', { id: 'm1', content: 'go' });
    await waitFor(() => a.events.some((e) => e.type === 'permission_request'), 'the request on a');
    // a is gone, and as after a crash the session still names it as its owner.
    await a.runtime.shutdown({ drainMs: 0 }).catch(() => {});
    await a.store.close();
    await fx.pg.admin`UPDATE ${fx.pg.admin(fx.schema)}.sessions SET owner_node = 'a', owner_incarnation = ${a.store.node.incarnation}`;
    await waitFor(async () => (await b.runtime.decide('s', { id: 'call_1_1', allowed: true })).status === 'accepted', 'b to take the decision', 10_000);
    await waitFor(() => b.done('m1'), 'the turn to end on b', 10_000);
    expect(ranOn).toEqual(['b call_1_1:1']);
    expect(b.events.filter((e) => e.type === 'permission_request')).toEqual([]); // not asked again
    expect(b.events.filter((e) => e.type === 'tool_result').map((e) => e.data)).toEqual([{ id: 'call_1_1', status: 'ok', output: null }]);
  });
});

describe('schedules on a cluster (C20)', () => {
  it('C20, C17: the owner dies with a schedule due; another node claims the session and fires it once', async () => {
    const a = node('a');
    const b = node('b');
    await a.runtime.open('s');
    const { dueAt } = await a.runtime.schedule('s', { id: 'wake', afterMs: 800 });
    // a is gone before it is due, and as after a crash the session still names it as its owner.
    await a.runtime.shutdown({ drainMs: 0 }).catch(() => {});
    await a.store.close();
    await fx.pg.admin`UPDATE ${fx.pg.admin(fx.schema)}.sessions SET owner_node = 'a', owner_incarnation = ${a.store.node.incarnation}`;
    const fired = `timer:wake:${dueAt}`;
    await waitFor(() => b.done(fired), 'b to fire the schedule', 10_000);
    expect(b.ran).toEqual([fired]);
    expect(a.ran).toEqual([]);
    // Fired and gone from the store, in the commit that took it: nobody fires it again.
    expect(await b.runtime.schedules('s')).toEqual([]);
    const [row] = await fx.pg.admin<{ n: number }[]>`SELECT count(*)::int AS n FROM ${fx.pg.admin(fx.schema)}.schedules`;
    expect(row!.n).toBe(0);
    expect(b.errors).toEqual([]);
  });

  it('C20, C17: a schedule of a session another live node owns is left to that node', async () => {
    const a = node('a');
    const b = node('b');
    await a.runtime.open('s');
    const { dueAt } = await a.runtime.schedule('s', { id: 'tick', afterMs: 300 });
    await waitFor(() => a.done(`timer:tick:${dueAt}`), 'a to fire its own schedule', 10_000);
    expect(b.ran).toEqual([]);
    await expect(b.runtime.schedule('s', { id: 'other', afterMs: 1 })).rejects.toMatchObject({ code: 'INVALID_MESSAGE' });
  });
});

describe('fx.runtimes sharing a PostgresStore (a cluster)', () => {
  it('C17: an input sent through a node that does not run the session runs once, on its owner; the sender\'s subscriber gets the events', async () => {
    const a = node('a');
    const b = node('b');
    expect(await a.runtime.send('s', { id: 'm1', content: 'hi' })).toMatchObject({ status: 'accepted' });
    await waitFor(() => a.done('m1'), 'm1 to run on a');
    const seenByB: SessionEvent[] = [];
    b.runtime.eventsOf('s').subscribe((e) => seenByB.push(e));
    expect(await b.runtime.send('s', { id: 'm2', content: 'from b' })).toEqual({ status: 'accepted', mode: 'queued', durability: 'durable' });
    await waitFor(() => seenByB.some((e) => e.type === 'done' && e.data.input_ids.includes('m2')), 'b\'s subscriber to see m2 done');
    expect({ a: a.ran, b: b.ran }).toEqual({ a: ['m1', 'm2'], b: [] });
    expect([...a.errors, ...b.errors]).toEqual([]);
    // One numbering across nodes (C8): what b relays is a's stream, in order.
    const seqs = seenByB.map((e) => e.seq);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    expect(new Set(seqs).size).toBe(seqs.length);
  });

  it('C17: when the owner dies, another node claims the session and runs its waiting input; the numbering goes on (C8)', async () => {
    const a = node('a');
    const b = node('b');
    await a.runtime.send('s', { id: 'm1', content: 'hi' });
    await waitFor(() => a.done('m1'), 'm1 to run on a');
    const lastOfA = a.events.filter((e) => e.sessionId === 's').at(-1)!.seq;
    // a is gone, and as after a crash the session still names it as its owner; an input for s waits.
    await a.runtime.shutdown({ drainMs: 0 }).catch(() => {});
    await a.store.close();
    await fx.pg.admin`UPDATE ${fx.pg.admin(fx.schema)}.sessions SET owner_node = 'a', owner_incarnation = ${a.store.node.incarnation}`;
    await b.store.deliver('s', { kind: 'input', entry: { id: 'm3', content: 'after a died' } });
    await waitFor(() => b.done('m3'), 'b to claim s and run m3', 10_000);
    expect(b.ran).toEqual(['m3']);
    expect(b.errors).toEqual([]);
    expect(b.events.filter((e) => e.sessionId === 's')[0]!.seq).toBe(lastOfA + 1);
  });

  it('C17: a node whose lease is lost drops its sessions, rejoins under a new incarnation and serves again — it is not fenced for good', async () => {
    // Renewals far apart: the runtime's owner check is what finds the lease gone.
    const store = new PostgresStore({ url: pgUrl(), schema: fx.schema, nodeId: 'a', leaseTtlMs: 60_000, renewMs: 30_000 });
    const ran: string[] = [];
    const errors: unknown[] = [];
    const runtime = createRuntime({ agent: async (turn: Turn) => void ran.push(...turn.inputs.map((i) => i.id)), store, debounceMs: 0, ownerCheckMs: 20, onError: (e) => errors.push(e) });
    fx.runtimes.push(runtime);
    const events: SessionEvent[] = [];
    runtime.events$.subscribe((e) => events.push(e));
    const done = (id: string) => events.some((e) => e.type === 'done' && e.data.input_ids.includes(id));
    await runtime.send('s', { id: 'm1', content: 'hi' });
    await waitFor(() => done('m1'), 'm1 to run');
    const first = store.node.incarnation;
    await fx.pg.admin`DELETE FROM ${fx.pg.admin(fx.schema)}.nodes WHERE id = 'a'`;
    await waitFor(() => store.node.incarnation > first && runtime.sessionIds().length === 0, 'the node to drop s and rejoin');
    // Owner checks go on after the rejoin: still not fenced.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(runtime.health()).toMatchObject({ ok: true, fenced: false, node: { incarnation: store.node.incarnation, leaseValid: true } });
    expect(await runtime.send('s', { id: 'm2', content: 'again' })).toMatchObject({ status: 'accepted', durability: 'durable' });
    await waitFor(() => done('m2'), 'm2 to run, s claimed again');
    expect(ran).toEqual(['m1', 'm2']);
    expect(errors.every((e) => e instanceof StaleEpochError && /lost its cluster lease/.test(e.message)), String(errors)).toBe(true);
  });

  it('C16: a session out of service after a failed commit, claimed meanwhile by another node, is no longer a failure here', async () => {
    let failing = false;
    const real = new PostgresStore({ url: pgUrl(), schema: fx.schema, nodeId: 'a', leaseTtlMs: 600, renewMs: 150 });
    // The same store, whose commits fail while `failing` (a connection that broke mid-commit).
    const store = new Proxy(real, {
      get(target, prop) {
        if (prop === 'commit' && failing) return () => Promise.reject(new Error('connection lost'));
        const value = Reflect.get(target, prop, target) as unknown;
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const a = createRuntime({ agent: async () => 'ok', store, debounceMs: 0, storeRetryMs: 300, onError: () => {} });
    fx.runtimes.push(a);
    const b = node('b');
    expect(await a.send('s', { id: 'm1', content: 'hi' })).toMatchObject({ status: 'accepted' });
    failing = true;
    expect(await a.send('s', { id: 'm2', content: 'lost' })).toMatchObject({ status: 'rejected', code: 'INTERNAL_ERROR' });
    expect(a.health()).toMatchObject({ ok: false, failedSessions: 1 });
    // a's lease runs out while it cannot write; b claims s before a's retry comes.
    await fx.pg.admin`UPDATE ${fx.pg.admin(fx.schema)}.nodes SET lease_until = now() - interval '1 second' WHERE id = 'a'`;
    expect(await b.runtime.send('s', { id: 'm3', content: 'on b' })).toMatchObject({ status: 'accepted', durability: 'durable' });
    await waitFor(() => b.done('m3'), 'm3 to run on b');
    failing = false;
    // a's retry finds s owned by b: nothing to recover, a is healthy again.
    await waitFor(() => a.health().ok, 'a healthy again');
    expect(a.health()).toMatchObject({ failedSessions: 0, fenced: false });
  });

  it('C11, C17: an input that arrives while a passivation waits for its commit keeps the session here, and its claim: its turn runs, no commit is refused', async () => {
    const clock = new SimulatedClock();
    const store = new PostgresStore({ url: pgUrl(), schema: fx.schema, nodeId: 'a', leaseTtlMs: 5_000, renewMs: 1_000 });
    const errors: unknown[] = [];
    const runtime = createRuntime({ agent: async () => 'ok', store, clock, idleTimeoutMs: 1_000, debounceMs: 0, onError: (error) => errors.push(error) });
    fx.runtimes.push(runtime);
    const events: SessionEvent[] = [];
    runtime.events$.subscribe((e) => events.push(e));
    await runtime.open('s', {});
    // The idle sweep asks for the passivation (its step is taken at the next tick); an input comes in this same tick.
    clock.increment(2_000);
    const receipt = runtime.send('s', { id: 'm1', content: 'hi' });
    expect(await receipt).toMatchObject({ status: 'accepted', durability: 'durable' });
    await waitFor(() => events.some((e) => e.type === 'done' && e.data.input_ids.includes('m1')), 'the turn of m1 to end');
    expect(events.filter((e) => e.type === 'done').map((e) => e.data.success)).toEqual([true]);
    expect(errors).toEqual([]);
    expect(runtime.health().fencedCommits).toBe(0);
    expect(runtime.sessionIds()).toEqual(['s']);
  });

  it('C11, C17: an input that arrives while a passivation\'s release is being committed waits for it, then claims the session anew: accepted, run once, no commit refused', async () => {
    const clock = new SimulatedClock();
    /** Release commits take a while, as under load; `inFlight` while one does. */
    class SlowRelease extends PostgresStore {
      inFlight = false;
      override async commit(steps: readonly StepRecord[]): Promise<void> {
        if (!steps.some((s) => s.release)) return super.commit(steps);
        this.inFlight = true;
        await new Promise((resolve) => setTimeout(resolve, 300));
        try {
          return await super.commit(steps);
        } finally {
          this.inFlight = false;
        }
      }
    }
    const store = new SlowRelease({ url: pgUrl(), schema: fx.schema, nodeId: 'a', leaseTtlMs: 5_000, renewMs: 1_000 });
    const errors: unknown[] = [];
    const runtime = createRuntime({ agent: async () => 'ok', store, clock, idleTimeoutMs: 1_000, debounceMs: 0, onError: (error) => errors.push(error) });
    fx.runtimes.push(runtime);
    const events: SessionEvent[] = [];
    runtime.events$.subscribe((e) => events.push(e));
    await runtime.open('s', {});
    clock.increment(2_000);
    await waitFor(() => store.inFlight, 'the release commit to be under way');
    expect(await runtime.send('s', { id: 'm1', content: 'hi' })).toMatchObject({ status: 'accepted', durability: 'durable' });
    await waitFor(() => events.some((e) => e.type === 'done' && e.data.input_ids.includes('m1')), 'the turn of m1 to end');
    expect(events.filter((e) => e.type === 'done').map((e) => e.data.success)).toEqual([true]);
    expect(errors).toEqual([]);
    expect(runtime.health().fencedCommits).toBe(0);
  });

  it('C12, C17: a session this node still owns but stopped running (it fenced its own commit while its lease stood) is activated again by the sweep: its durable-acked input runs', async () => {
    let fenced = false;
    const real = new PostgresStore({ url: pgUrl(), schema: fx.schema, nodeId: 'a', leaseTtlMs: 5_000, renewMs: 1_000 });
    // The same store, whose own clock says for a moment that its lease may have run out.
    const store = new Proxy(real, {
      get(target, prop) {
        if (prop === 'selfFenced') return () => fenced;
        const value = Reflect.get(target, prop, target) as unknown;
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    let first = true;
    let finish: () => void = () => {};
    const agent = async () => {
      if (first) {
        first = false;
        await new Promise<void>((resolve) => (finish = resolve));
      }
      return 'ok';
    };
    const a = createRuntime({ agent, store, debounceMs: 0, clusterSweepMs: 100, onError: () => {} });
    fx.runtimes.push(a);
    const events: SessionEvent[] = [];
    a.events$.subscribe((e) => events.push(e));
    expect(await a.send('s', { id: 'm1', content: 'hi' })).toMatchObject({ status: 'accepted', durability: 'durable' });
    await waitFor(() => !first, 'the first agent call');
    // The turn's end is not committed: the node fences itself, the session stops here; the store still names this node.
    fenced = true;
    finish();
    await waitFor(() => a.health().fencedCommits === 1, 'the fenced commit');
    fenced = false;
    expect(await real.ownerOf('s')).toMatchObject({ id: 'a' });
    await waitFor(() => events.some((e) => e.type === 'done' && e.data.input_ids.includes('m1')), 'm1 to run again', 5_000);
  });

  it('C12, C17: mail that reaches the owner while its release is being committed is not left to a later sweep: the session is claimed again at once and runs it', async () => {
    const clock = new SimulatedClock();
    class SlowRelease extends PostgresStore {
      inFlight = false;
      override async commit(steps: readonly StepRecord[]): Promise<void> {
        if (!steps.some((s) => s.release)) return super.commit(steps);
        this.inFlight = true;
        await new Promise((resolve) => setTimeout(resolve, 400));
        try {
          return await super.commit(steps);
        } finally {
          this.inFlight = false;
        }
      }
    }
    const store = new SlowRelease({ url: pgUrl(), schema: fx.schema, nodeId: 'a', leaseTtlMs: 5_000, renewMs: 1_000 });
    // No sweep in this test's time: only the hint and the release's own follow-up can run the mail.
    const a = createRuntime({ agent: async () => 'ok', store, clock, idleTimeoutMs: 1_000, debounceMs: 0, clusterSweepMs: 60_000, onError: () => {} });
    const b = createRuntime({ agent: async () => 'ok', store: new PostgresStore({ url: pgUrl(), schema: fx.schema, nodeId: 'b', leaseTtlMs: 5_000, renewMs: 1_000 }), debounceMs: 0, clusterSweepMs: 60_000, onError: () => {} });
    fx.runtimes.push(a, b);
    const events: SessionEvent[] = [];
    a.events$.subscribe((e) => events.push(e));
    b.events$.subscribe((e) => events.push(e));
    await a.open('s', {});
    clock.increment(2_000);
    await waitFor(() => store.inFlight, 'the release commit to be under way');
    expect(await b.send('s', { id: 'm1', content: 'by mail' })).toEqual({ status: 'accepted', mode: 'queued', durability: 'durable' });
    await waitFor(() => events.some((e) => e.type === 'done' && e.data.input_ids.includes('m1')), 'm1 to run', 3_000);
  });
});

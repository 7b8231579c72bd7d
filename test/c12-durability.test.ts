import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createActor, SimulatedClock } from 'xstate';
import { MemoryStore, sessionMachine, type Store } from '../src/index.ts';
import { SqliteStore } from '../src/sqlite.ts';
import { controlledAgent, settle, testRuntime } from './helpers.ts';
import { settings } from './machine-helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'baton-durable-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const sqlite = () => join(dir, `c12-${n++}.db`);

/**
 * A "crash": the first runtime is simply abandoned — its clock never moves again and its
 * agent calls never finish — and a second runtime opens the same store.
 */
function restart(store: Store, options: Parameters<typeof testRuntime>[0]) {
  return testRuntime({ ...options, store });
}

describe('C12 durability and recovery', () => {
  it('acknowledges inputs as durable only with a durable store', async () => {
    const a = controlledAgent();
    expect((await testRuntime({ agent: a.agent, store: new SqliteStore(sqlite()) }).runtime.send('s', { id: 'm', content: 'x' })).durability).toBe('durable');
    expect((await testRuntime({ agent: a.agent }).runtime.send('s', { id: 'm', content: 'x' })).durability).toBe('volatile');
    // Commands are not inputs: no durability claim.
    expect((await testRuntime({ agent: a.agent }).runtime.send('s', { id: 'c', content: '/status' })).durability).toBeUndefined();
  });

  it('re-runs a turn the crash interrupted, with the same inputs, and completes it once', async () => {
    const path = sqlite();
    const first = controlledAgent();
    const before = testRuntime({ agent: first.agent, debounceMs: 0, store: new SqliteStore(path) });
    const receipts = await Promise.all([
      before.runtime.send('s', { id: 'm1', content: 'one' }),
      before.runtime.send('s', { id: 'm2', content: 'two' }),
    ]);
    expect(receipts).toMatchObject([
      { status: 'accepted', durability: 'durable' },
      { status: 'accepted', durability: 'durable' },
    ]);
    await settle();
    expect(first.contents()).toEqual([['one']]); // m1 running, m2 waiting; then the process dies
    const second = controlledAgent();
    const after = restart(new SqliteStore(path), { agent: second.agent, debounceMs: 0 });
    await settle();
    expect(second.contents()).toEqual([['one']]);
    second.calls[0]!.resolve('re-run');
    await settle();
    expect(second.contents()).toEqual([['one'], ['two']]);
    second.calls[1]!.resolve('then');
    await settle();
    expect(after.dones('s').map((d) => [d.success, d.input_ids])).toEqual([
      [false, []], // the turn the crash cut off is closed first (C8); its input runs again
      [true, ['m1']],
      [true, ['m2']],
    ]);
    expect(after.dones('s')[0]).toMatchObject({ reason: 'interrupted' });
    // Numbering goes on after what the first process emitted: no seq is reused.
    const firstSeqs = before.of('s').map((e) => e.seq);
    expect(Math.min(...after.of('s').map((e) => e.seq))).toBe(Math.max(...firstSeqs) + 1);
    // A third start finds nothing left to do.
    const third = controlledAgent();
    restart(new SqliteStore(path), { agent: third.agent, debounceMs: 0 });
    await settle();
    expect(third.calls).toHaveLength(0);
  });

  it('C20: runs a batch that was collecting at the crash: restored mid-debounce, it seals at its original deadline', async () => {
    const store = new SqliteStore(':memory:') // durable: what it took survives the crash;
    const first = controlledAgent();
    const before = testRuntime({ agent: first.agent, debounceMs: 300, store });
    await Promise.all([before.runtime.send('s', { id: 'm1', content: 'one' }), before.runtime.send('s', { id: 'm2', content: 'two' })]);
    expect((await before.runtime.status('s'))?.state).toBe('collecting');
    const second = controlledAgent();
    const after = restart(store, { agent: second.agent, debounceMs: 300 });
    after.clock.set(before.clock.now() + 100); // restored 100 ms into its 300 ms debounce
    await settle();
    expect(second.contents()).toEqual([]); // not sealed at restore: its timers are re-armed
    await after.advance(199);
    expect(second.contents()).toEqual([]);
    await after.advance(1);
    expect(second.contents()).toEqual([['one', 'two']]);
    expect(first.calls).toHaveLength(0);
  });

  it('C20: a batch restored past its deadline seals at once; maxWait is kept from the first input', () => {
    const input = { sessionId: 's', settings: settings({ debounceMs: 300, maxWaitMs: 1000 }) };
    const live = createActor(sessionMachine, { input });
    live.start();
    live.send({ type: 'activate' });
    live.send({ type: 'input', input: { id: 'm1', content: 'one' }, at: 0 });
    live.send({ type: 'input', input: { id: 'm2', content: 'two' }, at: 900 });
    const saved = live.getPersistedSnapshot();
    live.stop();
    expect((saved as unknown as { context: { sealAt: unknown } }).context.sealAt).toEqual({ debounce: 1200, maxWait: 1000 });
    for (const [at, sealedAfter] of [[950, 50], [2000, 0]] as const) {
      const clock = new SimulatedClock();
      clock.set(at);
      const restored = createActor(sessionMachine, { input, snapshot: saved, clock });
      const starts: unknown[] = [];
      restored.on('turn.start', (e) => starts.push(e.turn.inputs.map((i) => i.id)));
      restored.start();
      expect(restored.getSnapshot().matches({ running: 'collecting' })).toBe(true);
      restored.send({ type: 'resume', at });
      if (sealedAfter > 0) {
        clock.increment(sealedAfter - 1);
        expect(starts, `restored at ${at}`).toEqual([]);
      }
      clock.increment(1);
      expect(starts, `restored at ${at}`).toEqual([['m1', 'm2']]);
    }
  });

  it('C20: a turn restored mid-turn keeps its original timeout: the re-run gets what was left of turnTimeoutMs', async () => {
    const store = new SqliteStore(':memory:');
    const first = controlledAgent();
    const before = testRuntime({ agent: first.agent, debounceMs: 0, turnTimeoutMs: 1000, store });
    await before.runtime.send('s', { id: 'm1', content: 'slow' });
    await settle();
    await before.advance(600); // the process dies 600 ms into the turn
    const second = controlledAgent();
    const after = restart(store, { agent: second.agent, debounceMs: 0, turnTimeoutMs: 1000 });
    after.clock.set(before.clock.now());
    await settle();
    expect(second.contents()).toEqual([['slow']]);
    await after.advance(399);
    expect(after.dones('s').map((d) => d.reason)).toEqual(['interrupted']);
    await after.advance(1);
    expect(after.dones('s').map((d) => d.reason)).toEqual(['interrupted', 'timeout']);
  });

  it('re-runs a turn whose snapshot was saved mid-turn, as a new turn (its own timeout)', () => {
    const input = { sessionId: 's', settings: settings({ debounceMs: 0, turnTimeoutMs: 1000 }) };
    const live = createActor(sessionMachine, { input });
    live.start();
    live.send({ type: 'activate' });
    live.send({ type: 'input', input: { id: 'm1', content: 'one' } });
    const saved = live.getPersistedSnapshot();
    live.stop();
    const restored = createActor(sessionMachine, { input, snapshot: saved });
    const effects: string[] = [];
    const started: number[] = [];
    restored.on('*', (e) => {
      effects.push(e.type === 'output' ? e.event.type : e.type);
      if (e.type === 'turn.start') started.push(e.turn.id);
    });
    restored.start();
    restored.send({ type: 'resume' });
    expect(effects).toEqual(['turn.abort', 'state', 'message.start', 'turn.start']);
    expect(started).toEqual([2]); // the host arms turn 2's own timer with this turn.start
    restored.send({ type: 'agent.timeout', turnId: 1 }); // the lost turn's timer: ignored
    expect(effects).toHaveLength(4);
    restored.send({ type: 'agent.timeout', turnId: 2 });
    expect(effects.slice(4)).toEqual(['turn.abort', 'message.end', 'error', 'done', 'state']);
  });

  it('remembers accepted ids across a restart (C10)', async () => {
    const store = new SqliteStore(':memory:');
    const a = controlledAgent();
    const before = testRuntime({ agent: a.agent, debounceMs: 0, store });
    await before.runtime.send('s', { id: 'm1', content: 'one' });
    await settle();
    a.calls[0]!.resolve();
    await settle();
    const after = restart(store, { agent: a.agent, debounceMs: 0 });
    expect((await after.runtime.send('s', { id: 'm1', content: 'one' })).status).toBe('duplicate');
  });

  it('keeps waiting inputs at a shutdown with a durable store, and runs them at the next start', async () => {
    const path = sqlite();
    const first = controlledAgent();
    const before = testRuntime({ agent: first.agent, debounceMs: 0, store: new SqliteStore(path) });
    await Promise.all([before.runtime.send('s', { id: 'm1', content: 'one' }), before.runtime.send('s', { id: 'm2', content: 'two' })]);
    await settle(); // m1's turn is running, m2 waits
    const stopped = before.runtime.shutdown({ drainMs: 100 });
    await before.advance(100);
    await stopped;
    expect(first.calls[0]!.turn.signal.aborted).toBe(true);
    expect(before.dones('s')).toEqual([]); // nothing was cancelled: it is all kept
    const second = controlledAgent();
    const after = restart(new SqliteStore(path), { agent: second.agent, debounceMs: 0 });
    await settle();
    second.calls[0]!.resolve();
    await settle();
    second.calls[1]?.resolve();
    await settle();
    expect(after.dones('s').flatMap((d) => (d.success ? d.input_ids : []))).toEqual(['m1', 'm2']);
  });
});

describe('C11 passivation', () => {
  it('passivates 10,000 idle sessions and re-activates each on its next input', async () => {
    const store = new MemoryStore();
    const t = testRuntime({ agent: async (turn) => `re: ${turn.inputs[0]?.content}`, debounceMs: 0, idleTimeoutMs: 60_000, store });
    const N = 10_000;
    const first = await Promise.all(Array.from({ length: N }, (_, i) => t.runtime.send(`s${i}`, { id: 'm1', content: `first ${i}` })));
    expect(first.filter((r) => r.status === 'accepted')).toHaveLength(N);
    await settle();
    expect(t.runtime.sessionIds()).toHaveLength(N);
    await t.advance(30_000);
    expect(t.runtime.sessionIds()).toHaveLength(N); // not idle long enough yet
    await t.advance(60_000);
    expect(t.runtime.sessionIds()).toHaveLength(0);
    expect(await t.runtime.status('s42')).toMatchObject({ state: 'passivated', kind: 'agent' });
    const second = await Promise.all(Array.from({ length: N }, (_, i) => t.runtime.send(`s${i}`, { id: 'm2', content: `second ${i}` })));
    expect(second.filter((r) => r.status === 'accepted')).toHaveLength(N);
    await settle();
    for (const i of [0, 42, 9_999]) {
      expect(t.dones(`s${i}`).map((d) => d.input_ids)).toEqual([['m1'], ['m2']]);
      const seqs = t.of(`s${i}`).map((e) => e.seq);
      expect(seqs).toEqual(seqs.map((_, k) => k + 1)); // gapless across passivation (C8)
      expect(t.of(`s${i}`).filter((e) => e.type === 'message.delta').at(-1)?.data).toMatchObject({ content: `re: second ${i}` });
    }
    expect((await t.runtime.send('s7', { id: 'm1', content: 'first 7' })).status).toBe('duplicate');
  });

  it('keeps at most maxLiveSessions live: the least recently active idle ones are passivated first, and answer again', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 0, maxLiveSessions: 10 });
    await t.runtime.send('busy', { id: 'm1', content: 'still working' }); // the oldest, but never passivated
    for (let i = 0; i < 30; i++) {
      await t.runtime.send(`s${i}`, { id: 'm1', content: `hi ${i}` });
      await settle();
      expect(a.last()!.turn.sessionId).toBe(`s${i}`);
      a.last()!.resolve();
      await settle();
      expect(t.runtime.sessionIds().length).toBeLessThanOrEqual(10);
    }
    expect((await t.runtime.status('busy'))?.state).toBe('busy');
    expect((await t.runtime.status('s0'))?.state).toBe('passivated');
    expect((await t.runtime.status('s29'))?.state).toBe('idle');
    await t.runtime.send('s0', { id: 'm2', content: 'back' });
    await settle();
    expect(a.last()!.turn.sessionId).toBe('s0');
    a.last()!.resolve();
    await settle();
    expect(t.dones('s0').map((d) => d.input_ids)).toEqual([['m1'], ['m2']]);
  });

  it('never passivates a busy session', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 0, idleTimeoutMs: 1000 });
    await t.runtime.send('s', { id: 'm1', content: 'slow' });
    await t.advance(5000);
    expect((await t.runtime.status('s'))?.state).toBe('busy');
    a.calls[0]!.resolve();
    await settle();
    await t.advance(2000);
    expect((await t.runtime.status('s'))?.state).toBe('passivated');
  });

  it('keeps a subscriber across passivation', async () => {
    const t = testRuntime({ agent: async () => 'ok', debounceMs: 0, idleTimeoutMs: 1000 });
    const seen: string[] = [];
    t.runtime.eventsOf('s').subscribe((e) => seen.push(e.type));
    await t.runtime.send('s', { id: 'm1', content: 'x' });
    await settle();
    await t.advance(2000);
    expect((await t.runtime.status('s'))?.state).toBe('passivated');
    const before = seen.length;
    await t.runtime.send('s', { id: 'm2', content: 'y' });
    await settle();
    expect(seen.slice(before)).toContain('done');
  });
});

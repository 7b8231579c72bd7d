/**
 * C16 with a store that is not durable (`MemoryStore`, or any store with `durable: false`)
 * whose commit fails — the README's own `new FaultStore(new MemoryStore())` example. The
 * runtime sends a non-durable store a snapshot only at passivation, shutdown and a retry's
 * probe, so after a failed commit the session is re-activated from no snapshot, or an old
 * one, while its events and inbox moved on with every commit:
 * - seqs a subscriber saw are handed out again (numbering restarts at 1);
 * - an accepted input waiting in a batch is never run, and never reported;
 * - a turn whose `done` was committed runs again (its input in two `done`s).
 */
import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../src/index.ts';
import { FaultStore } from '../src/testing/index.ts';
import { settle, testRuntime } from './helpers.ts';

const full = () => new Error('database or disk is full');

function setup(options: { debounceMs?: number; idleTimeoutMs?: number } = {}) {
  const store = new FaultStore(new MemoryStore());
  const ran: string[] = [];
  const t = testRuntime({
    agent: async (turn) => {
      ran.push(...turn.inputs.map((i) => i.id));
      return 'ok';
    },
    store,
    debounceMs: options.debounceMs ?? 0,
    maxWaitMs: 1000,
    idleTimeoutMs: options.idleTimeoutMs ?? 600_000,
    storeRetryMs: 10,
    onError: () => {},
  });
  return { store, ran, t };
}

describe('C16 a failed commit on a non-durable store (FaultStore around MemoryStore)', () => {
  it('no seq a subscriber saw is handed out again after the session is re-activated', async () => {
    const { store, t } = setup();
    expect((await t.runtime.send('s', { id: 'm1', content: 'one' })).status).toBe('accepted');
    await settle();
    const before = t.of('s').map((e) => e.seq);
    expect(t.dones('s').map((d) => d.input_ids)).toEqual([['m1']]);

    store.failing = full();
    expect((await t.runtime.send('s', { id: 'm2', content: 'two' })).status).toBe('rejected');
    store.failing = undefined;
    await t.advance(10); // the retry
    expect((await t.runtime.send('s', { id: 'm3', content: 'three' })).status).toBe('accepted');
    await settle();

    const after = t.of('s').slice(before.length).map((e) => e.seq);
    expect(after.length).toBeGreaterThan(0);
    expect(Math.min(...after), `seen before: ${before}, after: ${after}`).toBeGreaterThan(Math.max(...before));
  });

  it('an accepted input waiting in a batch when a commit fails still lands in a done (C2)', async () => {
    const { store, t } = setup({ debounceMs: 100 });
    expect((await t.runtime.send('s', { id: 'm1', content: 'one' })).status).toBe('accepted');
    store.failing = full();
    expect((await t.runtime.send('s', { id: 'm2', content: 'two' })).status).toBe('rejected');
    store.failing = undefined;
    await t.advance(10); // the retry
    await t.runtime.send('s', { id: 'm3', content: 'three' });
    for (let i = 0; i < 5; i++) await t.advance(500);
    const done = t.dones('s').flatMap((d) => [...d.input_ids, ...(d.cancelled_input_ids ?? [])]);
    expect(done).toContain('m1');
  });

  it('a turn whose done was committed does not run again after the next failure (C12/C16)', async () => {
    const { store, ran, t } = setup({ debounceMs: 100, idleTimeoutMs: 10 });
    // A stored snapshot: the session is passivated once.
    await t.runtime.send('s', { id: 'm0', content: 'zero' });
    for (let i = 0; i < 3; i++) await t.advance(100);
    expect((await t.runtime.status('s'))?.state).toBe('passivated');
    // m1 waits in a batch when a commit fails; the retry re-activates the session and its
    // probe stores a snapshot that holds m1 in the batch.
    expect((await t.runtime.send('s', { id: 'm1', content: 'one' })).status).toBe('accepted');
    store.failing = full();
    await t.runtime.send('s', { id: 'm2', content: 'two' });
    store.failing = undefined;
    await t.advance(10);
    await t.advance(100); // m1's batch is sealed and its turn runs
    expect(ran).toContain('m1');
    // The next failure: re-activated from that snapshot, which still holds m1.
    store.failing = full();
    await t.runtime.send('s', { id: 'm3', content: 'three' });
    store.failing = undefined;
    for (let i = 0; i < 5; i++) await t.advance(100);
    expect(ran.filter((id) => id === 'm1'), `agent calls: ${ran}`).toHaveLength(1);
    expect(t.dones('s').flatMap((d) => d.input_ids).filter((id) => id === 'm1')).toHaveLength(1);
  });
});

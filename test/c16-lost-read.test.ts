/**
 * C16 when the store loses a read: a network store can lose a query with its connection and
 * never answer it (the `postgres` client does now and then when the server ends its
 * connections). A session out of service after a failed commit is activated again by a read;
 * if that read never settles, every send to the session used to wait behind it forever, and
 * so did the store's retry — which then never ran again for any session.
 */
import { describe, expect, it } from 'vitest';
import { StoreUnavailableError, type Receipt } from '../src/index.ts';
import { SqliteStore } from '../src/sqlite.ts';
import { FaultStore } from '../src/testing/index.ts';
import { controlledAgent, settle, testRuntime } from './helpers.ts';

/** Whether a promise has settled by now, and with what. */
function track<T>(promise: Promise<T>): { settled: boolean; value?: T } {
  const state: { settled: boolean; value?: T } = { settled: false };
  void promise.then((value) => Object.assign(state, { settled: true, value }));
  return state;
}

describe('C16: a read the store never answers', () => {
  it('C16: a send to a session out of service is answered (rejected, StoreUnavailableError) when its read is lost; the retry goes on and the durable input runs once', async () => {
    const store = new FaultStore(new SqliteStore(':memory:'), { latencyMs: 0 });
    const agent = controlledAgent();
    const t = testRuntime({ agent: agent.agent, store, debounceMs: 0, storeRetryMs: 10, loadTimeoutMs: 1000, onError: () => {} });

    // m1 is acknowledged durable; its turn runs, and the commit of its end fails: the session
    // is out of service, m1 still waiting in the durable inbox.
    expect(await t.runtime.send('s', { id: 'm1', content: 'one' })).toMatchObject({ status: 'accepted', durability: 'durable' });
    await expect.poll(() => agent.calls.length, { timeout: 2000, interval: 1 }).toBe(1);
    store.failing = new Error('write CONNECTION_CLOSED');
    agent.last('s')!.resolve('lost reply');
    await expect.poll(() => t.runtime.health().failedSessions, { timeout: 2000, interval: 1 }).toBe(1);
    store.failing = undefined;

    // The store works again, but the read that activates the session is lost.
    store.stalled = true;
    const m2 = track(t.runtime.send('s', { id: 'm2', content: 'two' }));
    await settle();
    // The store's retry finds the session still activating and waits for the same read.
    await t.advance(10);
    expect(store.stalledLoads).toBeGreaterThan(0);
    expect(m2.settled).toBe(false);
    store.stalled = false;

    // The read is given up at its deadline: the send is answered, never left hanging.
    await t.advance(1000);
    await expect.poll(() => m2.settled, { timeout: 2000, interval: 1 }).toBe(true);
    const receipt = m2.value as Receipt;
    expect(receipt).toMatchObject({ status: 'rejected', code: 'INTERNAL_ERROR' });
    expect(receipt.error).toBeInstanceOf(StoreUnavailableError);

    // The retry goes on (its pass ended with the refusal), reads again and recovers.
    // Backoff doubles after a refused pass (1 s, 2 s, …): up to 16 s of simulated time, with a
    // real pause between steps so a loaded machine's store answers land.
    for (let i = 0; i < 400 && t.runtime.health().failedSessions > 0; i++) {
      await t.advance(40);
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(t.runtime.health()).toMatchObject({ ok: true, failedSessions: 0 });
    await expect.poll(() => agent.calls.length, { timeout: 2000, interval: 1 }).toBe(2);
    expect(agent.calls[1]!.turn.inputs.map((i) => i.id)).toEqual(['m1']);
    agent.last('s')!.resolve('reply');
    const ran = () => t.dones('s').filter((d) => d.input_ids.includes('m1'));
    await expect.poll(() => ran().length, { timeout: 2000, interval: 1 }).toBe(1);
    // m1 is in exactly one done (the cut-off turn is closed as `interrupted`, with no input);
    // the lost turn's reply was never published.
    expect(ran()).toMatchObject([{ success: true, input_ids: ['m1'] }]);
    expect(t.dones('s').filter((d) => !d.input_ids.includes('m1'))).toMatchObject([{ reason: 'interrupted', input_ids: [] }]);
    expect(t.of('s').some((e) => JSON.stringify(e.data).includes('lost reply'))).toBe(false);

    // And the session takes input again.
    expect(await t.runtime.send('s', { id: 'm3', content: 'three' })).toMatchObject({ status: 'accepted', durability: 'durable' });
    const down = t.runtime.shutdown({ drainMs: 0 });
    await t.advance(1);
    await down;
  });
});

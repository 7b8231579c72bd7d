/**
 * C14: `shutdown` "stops every actor". `send`, `respond` and `open` refuse once it has begun;
 * `control` does not: called during or after the shutdown it activates a passivated session
 * from the store — a new actor behind the drain's back that nothing ever stops (and that
 * would resume any work the store holds for it). `runtime.ts` `control()` has no
 * `if (shutdown)` check.
 */
import { describe, expect, it } from 'vitest';
import { createRuntime } from '../src/index.ts';
import { SqliteStore } from '../src/sqlite.ts';
import { FaultStore } from '../src/testing/index.ts';

async function passivated(latencyMs?: number) {
  const store = latencyMs === undefined ? new SqliteStore(':memory:') : new FaultStore(new SqliteStore(':memory:'), { latencyMs });
  const runtime = createRuntime({ commitDelayMs: 0, agent: async () => 'ok', store, debounceMs: 0, idleTimeoutMs: 5, onError: () => {} });
  await runtime.send('s', { id: 'm1', content: 'hi' });
  await expect.poll(() => runtime.sessionIds(), { timeout: 3000, interval: 2 }).toEqual([]);
  expect((await runtime.status('s'))?.state).toBe('passivated');
  return runtime;
}

describe('C14 no actor outlives shutdown', () => {
  it('control() after shutdown has resolved does not activate a session', async () => {
    const runtime = await passivated();
    await runtime.shutdown({ drainMs: 10 });
    await runtime.control('s', 'terminate').catch(() => {});
    expect(runtime.sessionIds()).toEqual([]);
  });

  it('control() while shutdown drains (store answering late) leaves no live session once both settle', async () => {
    const runtime = await passivated(5);
    const shut = runtime.shutdown({ drainMs: 50 });
    const control = runtime.control('s', 'terminate').catch(() => {});
    await Promise.all([shut, control]);
    expect(runtime.sessionIds()).toEqual([]);
  });

  it('control() after shutdown does not run a waiting input of a session a failed commit stopped', async () => {
    const store = new FaultStore(new SqliteStore(':memory:'));
    const calls: string[] = [];
    const runtime = createRuntime({
      agent: async (turn) => {
        calls.push(...turn.inputs.map((i) => i.id));
        return 'ok';
      },
      store,
      debounceMs: 60_000,
      maxWaitMs: 60_000,
      storeRetryMs: 60_000,
      onError: () => {},
    });
    // m1 is stored (acknowledged durable) and waits in a batch; the next commit fails.
    expect((await runtime.send('s', { id: 'm1', content: 'one' })).durability).toBe('durable');
    store.failing = new Error('database or disk is full');
    expect((await runtime.send('s', { id: 'm2', content: 'two' })).status).toBe('rejected');
    store.failing = undefined;
    expect(runtime.sessionIds()).toEqual([]);
    await runtime.shutdown({ drainMs: 10 });
    // Refused (an agent session has no 'start'), but only after activating it: resume runs m1.
    await runtime.control('s', 'start').catch(() => {});
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(calls, 'no agent call after shutdown').toEqual([]);
    expect(runtime.sessionIds()).toEqual([]);
  });
});

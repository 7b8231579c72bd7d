/**
 * C7 widened ("failure isolation for all user code") and C16, for a custom kind's hooks.
 * - `persist` runs inside the group commit (`SessionHost.takeStep` → `#persisted`, called
 *   from `GroupCommit.#flush` in a setImmediate): when it throws, the exception escapes the
 *   flush as an uncaught exception (Node exits), and the receipt waiting for that commit
 *   never settles.
 * - `migrate` (and `restore`, `input`) run in the SessionHost constructor, outside any
 *   guard: `send` throws synchronously instead of answering a rejection, and at startup the
 *   recovery of sessions with waiting inputs (a `queueMicrotask` in createRuntime) throws an
 *   uncaught exception — with the input still waiting, every restart crashes again.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { emit, setup } from 'xstate';
import { createRuntime, type Receipt } from '../src/index.ts';
import { SqliteStore } from '../src/sqlite.ts';

const machine = setup({
  types: { events: {} as { type: 'input'; input: { id: string; content: string } } },
  actions: { accept: emit({ type: 'receipt', receipt: { status: 'accepted', mode: 'primary' } }) },
}).createMachine({
  initial: 'open',
  // Not quiescent: it holds what it took, so the input waits in the inbox across a restart.
  states: { open: { on: { input: { actions: 'accept' } } } },
});

let uncaught: unknown[] = [];
const onUncaught = (error: unknown) => uncaught.push(error);
beforeEach(() => {
  uncaught = [];
  process.on('uncaughtException', onUncaught);
  process.on('unhandledRejection', onUncaught);
});
afterEach(() => {
  process.off('uncaughtException', onUncaught);
  process.off('unhandledRejection', onUncaught);
});

const within = <T>(promise: Promise<T>, ms: number): Promise<T | 'no answer'> =>
  Promise.race([promise, new Promise<'no answer'>((resolve) => setTimeout(() => resolve('no answer'), ms))]);

describe('C7 a throwing kind hook is reported, never an uncaught exception or a hung receipt', () => {
  it('persist throws: the receipt settles and the process has no uncaught exception', async () => {
    const reported: unknown[] = [];
    const runtime = createRuntime({
      agent: async () => 'ok',
      store: new SqliteStore(':memory:'),
      kinds: { k: { machine, input: () => ({}), persist: () => { throw new Error('persist bug'); } } },
      onError: (error) => reported.push(error),
    });
    const receipt = await within(runtime.send('a', { id: 'm1', content: 'x' }, { kind: 'k' }), 1000);
    expect(uncaught.map(String)).toEqual([]);
    expect(receipt).not.toBe('no answer');
    expect(reported.length).toBeGreaterThan(0);
  });

  it('migrate throws at a restart: no uncaught exception, and send answers instead of throwing', async () => {
    const store = new SqliteStore(':memory:');
    const v1 = createRuntime({ commitDelayMs: 0, agent: async () => 'ok', store, kinds: { k: { machine, input: () => ({}), version: 1 } } });
    expect((await v1.send('a', { id: 'm1', content: 'x' }, { kind: 'k' })).status).toBe('accepted');
    // A new release of the kind, with a migrate hook that has a bug (same store, as after a restart).
    const reported: unknown[] = [];
    const v2 = createRuntime({
      agent: async () => 'ok',
      store,
      kinds: { k: { machine, input: () => ({}), version: 2, migrate: () => { throw new Error('migrate bug'); } } },
      onError: (error) => reported.push(error),
    });
    await new Promise((resolve) => setTimeout(resolve, 20)); // the startup recovery runs
    expect(uncaught.map(String)).toEqual([]);
    let answer: Receipt | string;
    try {
      answer = await within(v2.send('a', { id: 'm2', content: 'y' }), 1000);
    } catch (error) {
      answer = `threw: ${(error as Error).message}`;
    }
    expect(answer).toMatchObject({ status: expect.any(String) });
  });
});

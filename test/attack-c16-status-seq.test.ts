/**
 * C16: nothing of a step is visible before it is committed — yet `runtime.status()` reports
 * the state and `seq` of steps still waiting for their commit (`SessionHost.status()` reads
 * the actor's current snapshot and the host's numbering counter `#seq`). When that commit
 * fails, the session is re-activated from the last committed seq and the numbers status()
 * already reported go to other events. (The gateway's handshake is not affected: it awaits
 * `open()`, which waits for the commit, before it sends `init_ack`.)
 */
import { describe, expect, it } from 'vitest';
import type { SessionEvent } from '../src/index.ts';
import { SqliteStore } from '../src/sqlite.ts';
import { FaultStore } from '../src/testing/index.ts';
import { settle, testRuntime } from './helpers.ts';

describe('C16 status().seq counts only committed events', () => {
  it('a seq reported by status() is never given to another event after a failed commit', async () => {
    const store = new FaultStore(new SqliteStore(':memory:'), { latencyMs: 0 });
    const t = testRuntime({ agent: async () => 'ok', store, debounceMs: 0, storeRetryMs: 10, onError: () => {} });
    await t.runtime.send('s', { id: 'm1', content: 'one' });
    await expect.poll(() => t.dones('s').map((d) => d.input_ids), { timeout: 2000, interval: 1 }).toEqual([['m1']]);
    await settle();
    const published = () => Math.max(0, ...t.of('s').map((e) => e.seq));
    const committed = published();

    store.failing = new Error('database or disk is full');
    const receipt = t.runtime.send('s', { id: 'm2', content: 'two' });
    const reported = (await t.runtime.status('s'))!.seq; // what a handshake now puts in init_ack.seq
    expect((await receipt).status).toBe('rejected');
    store.failing = undefined;
    await t.advance(10);
    await t.runtime.send('s', { id: 'm3', content: 'three' });
    await settle();

    const byseq = new Map<number, SessionEvent>(t.of('s').map((e) => [e.seq, e]));
    // Either status() never said more than was committed…
    // …or no seq it said is handed to an event published later.
    const reusedSeqs = [...byseq.keys()].filter((seq) => seq > committed && seq <= reported);
    expect({ committed, reported, reusedSeqs }).toEqual({ committed, reported: committed, reusedSeqs: [] });
  });
});

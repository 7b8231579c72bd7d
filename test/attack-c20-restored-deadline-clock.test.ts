/**
 * Attack on C20 (issue 19), severity MEDIUM.
 *
 * A restored collecting batch seals "at its original deadline": `delay()` in
 * machines/session.ts waits `sealAt − now`, with no upper bound. The deadlines are wall-clock
 * times of the process that stored them, so when the restarted process's clock is behind
 * (a clock stepped back by NTP, a new host, a VM restored from an image), an acknowledged
 * batch waits for the whole difference — here a batch with debounceMs 100 / maxWaitMs 1000
 * stays unsealed for hours, though no batch can ever legitimately wait longer than
 * maxWaitMs. The turn timeout got this right (`Math.min(restored.timeoutAt, now +
 * turnTimeoutMs)` in agent-kind.ts); the batch deadlines (and approval `expires_at`,
 * re-armed as `expiresAt − now`) did not.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import type { Agent } from '../src/index.ts';
import { SqliteStore } from '../src/sqlite.ts';
import { settle, testRuntime } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'baton-attack-c20-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('C20 restored batch deadlines and the clock', () => {
  it('C20: a restored collecting batch never waits longer than maxWaitMs, even when the new process\'s clock is behind', async () => {
    const path = join(dir, 'deadline.db');
    const calls: string[][] = [];
    const agent: Agent = (turn) => {
      calls.push(turn.inputs.map((i) => i.id));
      return 'ok';
    };
    const clock1 = new SimulatedClock();
    clock1.set(3 * 3_600_000); // 03:00
    const before = testRuntime({ agent, debounceMs: 100, maxWaitMs: 1000, store: new SqliteStore(path), clock: clock1 });
    expect(await before.runtime.send('s', { id: 'm1', content: 'hello' })).toMatchObject({ status: 'accepted' });
    await settle();
    expect(calls).toEqual([]); // collecting: the process dies here
    // The next process starts with its clock two hours behind.
    const clock2 = new SimulatedClock();
    clock2.set(1 * 3_600_000);
    testRuntime({ agent, debounceMs: 100, maxWaitMs: 1000, store: new SqliteStore(path), clock: clock2 });
    await settle(20);
    for (let i = 0; i < 10; i++) {
      clock2.increment(100); // 1000 ms in all: maxWaitMs
      await settle();
    }
    await settle(20);
    expect(calls).toEqual([['m1']]);
  });
});

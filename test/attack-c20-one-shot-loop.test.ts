/**
 * Attack on C20 (issue 19), severity MEDIUM.
 *
 * README: `every` has a floor of MIN_EVERY_MS (1000 ms) because "a schedule starts a turn,
 * and a floor keeps an agent scheduling in a loop from making its session a busy loop".
 * The floor applies to `every` only. An agent that re-arms a one-shot from each timer
 * turn — `turn.schedule({ id, afterMs: 0 })`, or an `at` in the past — is exactly that
 * loop, and nothing slows it: each fire starts a turn at once, whose schedule is due at
 * once. On the simulated clock the session runs a turn every millisecond — 101 turns in
 * 100 ms — each one a model call in production. (The Waker's retry after a wake only
 * slows it when no time at all passes between fires.) The same floor (or a minimum delay between
 * fires of one schedule id) should hold for one-shots set from a timer's own turn.
 */
import { describe, expect, it } from 'vitest';
import type { Agent } from '../src/index.ts';
import { settle, testRuntime } from './helpers.ts';

describe('C20 an agent that re-arms itself', () => {
  it('C20: a one-shot re-armed with afterMs 0 from its own timer turn does not start turns faster than MIN_EVERY_MS', async () => {
    let turns = 0;
    const agent: Agent = (turn) => {
      turns++;
      if (turns < 1000) turn.schedule({ id: 'again', afterMs: 0 }); // bounded, so a failing run ends
      return 'ok';
    };
    const t = testRuntime({ agent, debounceMs: 0 });
    await t.runtime.send('s', { id: 'm1', content: 'start' });
    await settle();
    // 100 ms pass, a millisecond at a time (as turns take a few ms each in production).
    for (let i = 0; i < 100; i++) {
      t.clock.increment(1);
      await settle(5);
    }
    expect(turns).toBeLessThanOrEqual(2);
  });
});

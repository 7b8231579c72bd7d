/**
 * Attack on C20 (issue 19), severity LOW.
 *
 * `runtime.schedule` (and the gateway's `schedule` frame) on a terminated session is
 * accepted and stored: `Scheduling.schedule` checks the kind, the cap and the spec, never
 * whether the session can take input again. The schedule is only dropped when it fires —
 * with an error in the terminated session's stream — so a client is told "stored" for a
 * wake-up that can never happen, and a far `at` (up to year 275760) keeps the terminated
 * session out of retention (`prune` skips sessions with schedules) for good. A terminated
 * session refuses inputs and commands with SESSION_TERMINATED; it should refuse
 * schedules the same way.
 */
import { describe, expect, it } from 'vitest';
import type { Agent } from '../src/index.ts';
import { testRuntime } from './helpers.ts';

describe('C20 schedules of a terminated session', () => {
  it('C20: a terminated session refuses new schedules with SESSION_TERMINATED', async () => {
    const agent: Agent = () => 'ok';
    const t = testRuntime({ agent, debounceMs: 0 });
    await t.runtime.open('s');
    await t.runtime.control('s', 'terminate');
    expect(await t.runtime.send('s', { id: 'm1', content: 'hi' })).toMatchObject({ status: 'rejected', code: 'SESSION_TERMINATED' });
    await expect(t.runtime.schedule('s', { id: 'never', at: 8e15 })).rejects.toMatchObject({ code: 'SESSION_TERMINATED' });
    expect(await t.runtime.schedules('s')).toEqual([]);
  });
});

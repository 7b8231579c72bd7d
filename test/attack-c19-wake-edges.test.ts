/**
 * Attacks on C19's approval wake (commit 41cf121) that found it holding: what a client can
 * do to the wake, the cap, a session ended while it waits, a decision at the deadline, two
 * approvals with different deadlines. Kept as regression tests.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineTool, type Agent, type ToolResult } from '../src/index.ts';
import { SqliteStore } from '../src/sqlite.ts';
import { settle, stored, testRuntime } from './helpers.ts';
import { parked } from './approvals-fixture.ts';

const guarded = (runs: unknown[] = []) =>
  defineTool({ name: 'guarded', description: 'Needs the user', parameters: z.object({ text: z.string() }), needsApproval: true, run: (input) => (runs.push(input), input.text) });

/** A session waiting for a decision, passivated for idleness, its wake stored. */
async function passivatedWaiting() {
  const parkedSession = await parked();
  expect((await stored(parkedSession.store, 's'))?.schedules).toEqual([{ id: 'baton:wake', dueAt: parkedSession.expiresAt }]);
  return parkedSession;
}

describe('C19 the approval wake, edges', () => {
  it('C19: cancelSchedule("baton:wake") finds nothing and the wake stays; 100 client schedules fit beside it, the 101st is refused', async () => {
    const { t, store, expiresAt } = await passivatedWaiting();
    expect(await t.runtime.cancelSchedule('s', 'baton:wake')).toBe(false);
    for (let i = 0; i < 100; i++) await t.runtime.schedule('s', { id: `c${i}`, afterMs: 10_000_000 });
    await expect(t.runtime.schedule('s', { id: 'c100', afterMs: 10_000_000 })).rejects.toMatchObject({ code: 'INVALID_MESSAGE' });
    expect(await t.runtime.schedules('s')).toHaveLength(100);
    expect((await t.runtime.status('s'))?.schedules).toHaveLength(100);
    expect((await stored(store, 's'))?.schedules?.[0]).toEqual({ id: 'baton:wake', dueAt: expiresAt });
  });

  it('C19: terminated or deleted while it waits, passivated: the wake goes with the approval', async () => {
    for (const action of ['terminate', 'delete'] as const) {
      const { t, store } = await passivatedWaiting();
      await t.runtime.control('s', action);
      await settle();
      expect(await store.nextDue()).toBeUndefined();
    }
  });

  it('C19: a decision (even one at the deadline, refused as expired) removes the wake in its own commit', async () => {
    const allowed = await passivatedWaiting();
    expect(await allowed.t.runtime.decide('s', { id: 'call_1_1', allowed: true })).toEqual({ status: 'accepted' });
    await settle();
    expect(allowed.results).toEqual([expect.objectContaining({ status: 'ok' })]);
    expect(await allowed.store.nextDue()).toBeUndefined();

    const late = await passivatedWaiting();
    late.t.clock.set(late.expiresAt);
    expect(await late.t.runtime.decide('s', { id: 'call_1_1', allowed: true })).toMatchObject({ status: 'rejected', code: 'INVALID_MESSAGE' });
    await late.t.advance(0);
    expect(late.results).toEqual([expect.objectContaining({ status: 'denied', error: expect.objectContaining({ code: 'approval_timeout' }) })]);
    expect(await late.store.nextDue()).toBeUndefined();
  });

  it('C19: two approvals with different deadlines: woken at the first, passivated again, woken at the second', async () => {
    let release: (() => void) | undefined;
    const slow = defineTool({ name: 'slow', description: 'Takes a while', parameters: z.object({}), run: () => new Promise<string>((resolve) => (release = () => resolve('slow'))) });
    const results: ToolResult[] = [];
    const agent: Agent = async (turn) => {
      const first = turn.callTool('guarded', { text: 'a' });
      await turn.callTool('slow', {});
      results.push(...(await Promise.all([first, turn.callTool('guarded', { text: 'b' })])));
      return 'ok';
    };
    const store = new SqliteStore(':memory:');
    const t = testRuntime({ agent, tools: [guarded(), slow], debounceMs: 0, store, idleTimeoutMs: 10_000, approvalTimeoutMs: 100_000 });
    await t.runtime.send('s', { id: 'm1', content: 'go' });
    await settle();
    await t.advance(50_000);
    release!();
    await settle();
    const [first, second] = t.of('s').filter((e) => e.type === 'permission_request').map((e) => (e.data as { expires_at: number }).expires_at);
    expect(second! - first!).toBe(50_000);
    await t.advance(10_000);
    await t.advance(10_000);
    expect(t.runtime.sessionIds()).toEqual([]);
    await t.advance(first! - t.clock.now());
    await t.advance(0);
    expect((await stored(store, 's'))?.schedules).toEqual([{ id: 'baton:wake', dueAt: second }]);
    await t.advance(10_000);
    await t.advance(10_000);
    expect(t.runtime.sessionIds()).toEqual([]); // passivated again, waiting for the second
    await t.advance(second! - t.clock.now());
    await t.advance(0);
    await settle();
    expect(results.map((r) => r.status)).toEqual(['denied', 'denied']);
    expect(t.dones('s').at(-1)).toMatchObject({ success: true, input_ids: ['m1'] });
    expect(await store.nextDue()).toBeUndefined();
  });
});

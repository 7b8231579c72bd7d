/**
 * Attack on C19 (and C12/C16): a passivated session's host keeps writing to the store.
 *
 * A turn that waits for an approval is `quiescent` even while another call of the same turn
 * still runs (the OpenAI agent calls a response's tools together, `Promise.all`). The
 * passivation stops that host, but when its running tool settles later, `TurnTools.#finish`
 * reports `changed()`, the host's `journalChanged` touches its output gate, and the group
 * commit writes the stopped host's snapshot — the old turn, still waiting — over whatever
 * the session's new host stored meanwhile. The store goes back in time: the next activation
 * re-runs a turn that was done, asks the same approval again, and a second decision runs
 * the approved tool a second time for the same call id (attempt 1 both times) and reports
 * the input in two `done`s.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineTool, type Agent, type ToolContext } from '../src/index.ts';
import { SqliteStore } from '../src/sqlite.ts';
import { settle, stored, testRuntime } from './helpers.ts';

function tools() {
  const slow: { context: ToolContext; resolve: (value: unknown) => void }[] = [];
  const guarded: ToolContext[] = [];
  return {
    slow,
    guarded,
    list: [
      // A fetch that takes a while and does not listen to its signal (most don't).
      defineTool({ name: 'fetch', description: 'slow', parameters: z.object({}), run: (_input, context) => new Promise((resolve) => slow.push({ context, resolve })) }),
      defineTool({
        name: 'pay',
        description: 'needs approval',
        parameters: z.object({}),
        needsApproval: true,
        run: (_input, context) => {
          guarded.push(context);
          return 'paid';
        },
      }),
    ],
  };
}

/** One response asking for two tools at once, as the OpenAI agent runs them. */
const parallel: Agent = async (turn) => {
  const [a, b] = await Promise.all([turn.callTool('fetch', {}), turn.callTool('pay', {})]);
  return `${a.status} ${b.status}`;
};

describe('C19 attack: a stopped host writes its stale snapshot', () => {
  // Fixed two ways: a turn whose tool still runs is not passivated (the driver says it is
  // busy), and a stopped host writes nothing more. The attack's path — passivate while
  // `fetch` runs, let it settle late — is therefore closed at its first step.
  it('C19: a waiting turn is not passivated while another of its calls runs; once that settles it is, and nothing stale is written later', async () => {
    const t0 = tools();
    const store = new SqliteStore(':memory:');
    const t = testRuntime({ agent: parallel, tools: t0.list, debounceMs: 0, store, idleTimeoutMs: 1000 });
    await t.runtime.send('s', { id: 'm1', content: 'go' });
    await settle();
    await t.advance(1000);
    await t.advance(1000);
    expect(t.runtime.sessionIds()).toEqual(['s']); // `pay` waits, but `fetch` runs: kept
    expect(t0.slow[0]!.context.signal.aborted).toBe(false);
    t0.slow[0]!.resolve('page');
    await settle();
    await t.advance(1000);
    await t.advance(1000);
    expect(t.runtime.sessionIds()).toEqual([]); // now it only waits for the user: passivated
    expect(await t.runtime.decide('s', { id: 'call_1_2', allowed: true })).toEqual({ status: 'accepted' });
    await settle();
    expect(t.dones('s').filter((d) => d.success)).toHaveLength(1);
    expect(t0.slow).toHaveLength(1); // the re-run replayed fetch's recorded result
    const live = await stored(store, 's');
    expect(live?.session.snapshot).toMatchObject({ value: { running: { idle: 'quiet' } } });
  });

  it('C19: an approved call never runs twice (both with attempt 1), and its input is in one done, across passivations', async () => {
    const t0 = tools();
    const store = new SqliteStore(':memory:');
    const t = testRuntime({ agent: parallel, tools: t0.list, debounceMs: 0, store, idleTimeoutMs: 1000 });
    await t.runtime.send('s', { id: 'm1', content: 'go' });
    await settle();
    t0.slow[0]!.resolve('page');
    await settle();
    await t.advance(1000);
    await t.advance(1000);
    await t.runtime.decide('s', { id: 'call_1_2', allowed: true });
    await settle();
    // The session passivates again (idle); what the store holds is what comes back.
    await t.advance(1000);
    await t.advance(1000);
    expect(t.runtime.sessionIds()).toEqual([]);
    const again = await t.runtime.decide('s', { id: 'call_1_2', allowed: true });
    await settle();
    expect(again, 'a second decision for a call that has its result').toMatchObject({ status: 'rejected', code: 'INVALID_MESSAGE' });
    expect(t0.guarded.map((c) => c.idempotencyKey)).toEqual(['call_1_2:1']);
    const results = t.of('s').filter((e) => e.type === 'tool_result' && (e.data as { id: string }).id === 'call_1_2');
    expect(results).toHaveLength(1);
    expect(t.dones('s').filter((d) => d.input_ids.includes('m1'))).toHaveLength(1);
  });
});

/**
 * Attack on C19: `running.busy.waiting` is tagged `quiescent`, so a turn that waits for one
 * approval is passivated (after `idleTimeoutMs`, or at once when `maxLiveSessions` evicts)
 * even while another call of the same turn is running — the OpenAI agent runs a response's
 * tool calls together. Nothing crashed, yet the passivation aborts a healthy tool:
 * - a tool that ignores its signal runs again for the same call id (attempt 2) when the
 *   decision re-activates the session: at-least-once is documented for a crash only;
 * - with `maxLiveSessions` it happens at once, without any idle time, when other sessions
 *   come: the eviction picks the waiting session as "idle";
 * - a tool that honours its signal gets `cancelled` in the journal (see
 *   attack-c19-stale-host-write) but no `tool_result` is ever published for its
 *   `tool_call`, and the re-run agent is handed that `cancelled`.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineTool, type Agent, type ToolContext } from '../src/index.ts';
import { SqliteStore } from '../src/sqlite.ts';
import { settle, testRuntime } from './helpers.ts';

function setup({ honourSignal, maxLiveSessions }: { honourSignal: boolean; maxLiveSessions?: number }) {
  const runs: { context: ToolContext; resolve: (value: unknown) => void }[] = [];
  const fetch = defineTool({
    name: 'fetch',
    description: 'slow',
    parameters: z.object({}),
    run: (_input, context) =>
      new Promise((resolve, reject) => {
        runs.push({ context, resolve });
        if (honourSignal) context.signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true });
      }),
  });
  const pay = defineTool({ name: 'pay', description: 'needs approval', parameters: z.object({}), needsApproval: true, run: () => 'paid' });
  const replies: string[] = [];
  const agent: Agent = async (turn) => {
    if (turn.sessionId !== 's') return 'hi';
    const [a, b] = await Promise.all([turn.callTool('fetch', {}), turn.callTool('pay', {})]);
    replies.push(`${a.status} ${b.status}`);
    return `${a.status} ${b.status}`;
  };
  const t = testRuntime({ agent, tools: [fetch, pay], debounceMs: 0, store: new SqliteStore(':memory:'), idleTimeoutMs: 1000, ...(maxLiveSessions && { maxLiveSessions }) });
  return { t, runs, replies };
}

describe('C19 attack: passivating a turn that waits for one call while another runs', () => {
  it('C19: a running call of a waiting turn is not cut off by the idle passivation: it runs once, with attempt 1', async () => {
    const { t, runs } = setup({ honourSignal: false });
    await t.runtime.send('s', { id: 'm1', content: 'go' });
    await settle();
    expect(await t.runtime.status('s')).toMatchObject({ waitingForUser: true });
    await t.advance(1000);
    await t.advance(1000);
    expect.soft(runs[0]!.context.signal.aborted, 'fetch was aborted though nothing failed').toBe(false);
    await t.runtime.decide('s', { id: 'call_1_2', allowed: true });
    await settle();
    expect(runs.map((r) => r.context.idempotencyKey)).toEqual(['call_1_1:1']);
  });

  it('C19: every tool_call of the turn gets its tool_result in the stream when the waiting turn was passivated', async () => {
    const { t, runs, replies } = setup({ honourSignal: true });
    await t.runtime.send('s', { id: 'm1', content: 'go' });
    await settle();
    await t.advance(1000);
    await t.advance(1000);
    await t.runtime.decide('s', { id: 'call_1_2', allowed: true });
    await settle();
    expect(runs).toHaveLength(1);
    runs[0]!.resolve('fetched'); // the running call was never cut off: it finishes now
    await settle();
    expect(t.dones('s').filter((d) => d.success)).toHaveLength(1);
    const calls = t.of('s').filter((e) => e.type === 'tool_call').map((e) => (e.data as { id: string }).id);
    const results = t.of('s').filter((e) => e.type === 'tool_result').map((e) => (e.data as { id: string }).id);
    expect(results.sort(), `the agent got "${replies.join()}"`).toEqual(calls.sort());
  });

  it('C19: a waiting turn whose other call runs is not evicted by maxLiveSessions', async () => {
    const { t, runs } = setup({ honourSignal: false, maxLiveSessions: 2 });
    await t.runtime.send('s', { id: 'm1', content: 'go' });
    await settle();
    for (let i = 0; i < 3; i++) {
      await t.runtime.send(`other-${i}`, { id: `o${i}`, content: 'hi' });
      await settle();
    }
    expect(runs[0]!.context.signal.aborted, 'fetch was aborted by the eviction').toBe(false);
  });
});

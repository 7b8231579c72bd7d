/**
 * Attack on C19: a decision that arrives after the request's `expires_at` runs the tool.
 *
 * The deadline is enforced only by a timer (`approval.timeout`); the decision itself is
 * checked against `context.approvals`, never against the clock. A passivated session runs
 * no timer, and the decision that activates it is taken in the same step as the activation,
 * before the re-armed (already overdue) timer can fire: so an approval given long after
 * the request expired is accepted and the tool runs. The README promises the opposite
 * ("no answer by `expires_at` … `denied`, `approval_timeout`"; a decision for an expired
 * request "is refused with INVALID_MESSAGE"). The same happens on a live process whose
 * event loop stalls past the deadline (SIGSTOP/SIGCONT, a long GC or a blocked loop): the
 * queued `permission_response` is read before the overdue timer runs.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineTool, type Agent, type ToolResult } from '../src/index.ts';
import { SqliteStore } from '../src/sqlite.ts';
import { settle, testRuntime } from './helpers.ts';

describe('C19 attack: a decision after expires_at', () => {
  it('C19: an approval sent after expires_at to a passivated session is refused and the tool never runs', async () => {
    const runs: unknown[] = [];
    const tool = defineTool({
      name: 'pay',
      description: 'needs approval',
      parameters: z.object({ amount: z.number() }),
      needsApproval: true,
      run: (input) => {
        runs.push(input);
        return 'paid';
      },
    });
    const results: ToolResult[] = [];
    const agent: Agent = async (turn) => {
      const result = await turn.callTool('pay', { amount: 100 });
      results.push(result);
      return result.status;
    };
    const t = testRuntime({ agent, tools: [tool], debounceMs: 0, store: new SqliteStore(':memory:'), idleTimeoutMs: 1000, approvalTimeoutMs: 10_000 });
    await t.runtime.send('s', { id: 'm1', content: 'pay' });
    await settle();
    const request = t.of('s').find((e) => e.type === 'permission_request')!.data as { expires_at: number };
    await t.advance(1000);
    await t.advance(1000);
    expect(t.runtime.sessionIds()).toEqual([]); // passivated while it waits
    await t.advance(60_000);
    expect(t.clock.now()).toBeGreaterThan(request.expires_at + 40_000);

    const receipt = await t.runtime.decide('s', { id: 'call_1_1', allowed: true });
    await settle();
    expect.soft(receipt, 'the request expired 40 s ago').toMatchObject({ status: 'rejected', code: 'INVALID_MESSAGE' });
    expect(runs).toEqual([]);
    expect(results).toEqual([expect.objectContaining({ status: 'denied', error: expect.objectContaining({ code: 'approval_timeout' }) })]);
  });
});

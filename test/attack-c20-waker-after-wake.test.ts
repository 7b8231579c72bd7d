/**
 * Attack on C20's process timer after the C19 wake (commit 41cf121), severity LOW.
 *
 * After a wake, the Waker looks again `retryMs` later in case a schedule it fired is still
 * due (its session would not activate, a commit failed). It did so after every wake —
 * also after one that found nothing due — so once any schedule had fired, the process asked
 * the store for due sessions every storeRetryMs (1 s) until it stopped, with nothing
 * scheduled at all. Approval wakes make that every process that ever passivated a waiting
 * session. A wake that found nothing due has nothing to look at again.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineTool, type Agent, type ToolResult } from '../src/index.ts';
import { SqliteStore } from '../src/sqlite.ts';
import { settle, testRuntime } from './helpers.ts';

class CountingStore extends SqliteStore {
  dueCalls = 0;
  override dueSessions(before: number, limit: number): string[] {
    this.dueCalls++;
    return super.dueSessions(before, limit);
  }
}

describe('C20 the process timer once nothing is due', () => {
  it('C20: after an approval wake (C19) denied the call, nothing is due and the process timer stops asking the store', async () => {
    const tool = defineTool({ name: 'guarded', description: 'needs the user', parameters: z.object({}), needsApproval: true, run: () => 'ran' });
    const results: ToolResult[] = [];
    const agent: Agent = async (turn) => {
      results.push(await turn.callTool('guarded', {}));
      return 'ok';
    };
    const store = new CountingStore(':memory:');
    const t = testRuntime({ agent, tools: [tool], debounceMs: 0, store, idleTimeoutMs: 10_000, approvalTimeoutMs: 60_000 });
    await t.runtime.send('s', { id: 'm1', content: 'go' });
    await settle();
    await t.advance(10_000);
    await t.advance(10_000);
    expect(t.runtime.sessionIds()).toEqual([]); // passivated while it waits
    for (let i = 0; i < 50; i++) await t.advance(1000); // past the deadline: woken and denied
    expect(results).toEqual([expect.objectContaining({ status: 'denied' })]);
    expect(await store.nextDue()).toBeUndefined();
    const calls = store.dueCalls;
    for (let i = 0; i < 30; i++) await t.advance(1000);
    expect(store.dueCalls - calls).toBe(0);
    await t.runtime.shutdown();
  });
});

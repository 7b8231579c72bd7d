/**
 * Attack on C19 (and C14): with a durable store, a shutdown keeps a running turn for the
 * next start, and a tool cut off midway runs again there (attempt 2, "at-least-once"). But
 * the drain aborts the turn's signal; a tool that honours it settles a moment later, and the
 * stopped host still records that `cancelled` result and commits it — after
 * `runtime.shutdown()` has resolved. The store then holds a `tool_result` no subscriber was
 * ever sent, and the restarted turn replays `cancelled` to the agent instead of running the
 * tool again. (An embedder that closes the store right after `shutdown()` gets a write on a
 * closed database instead.)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineTool, type Agent, type ToolContext, type ToolResult } from '../src/index.ts';
import { SqliteStore } from '../src/sqlite.ts';
import { settle, testRuntime } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'baton-attack-c19-shutdown-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function fetchTool(runs: ToolContext[]) {
  return defineTool({
    name: 'fetch',
    description: 'slow, stops when told to',
    parameters: z.object({}),
    run: (_input, context) =>
      new Promise((resolve, reject) => {
        runs.push(context);
        if (context.attempt > 1) return resolve('page');
        context.signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true });
      }),
  });
}

describe('C19 attack: a write after shutdown', () => {
  it('C19: a tool cut off by a drain (durable store) runs again after the restart with attempt 2; nothing is written after shutdown resolved', async () => {
    const path = join(dir, 'shutdown.db');
    const runs: ToolContext[] = [];
    const results: ToolResult[] = [];
    const agent: Agent = async (turn) => {
      const result = await turn.callTool('fetch', {});
      results.push(result);
      return result.status;
    };
    const store = new SqliteStore(path);
    const before = testRuntime({ agent, tools: [fetchTool(runs)], debounceMs: 0, store });
    await before.runtime.send('s', { id: 'm1', content: 'go' });
    await settle();
    const shutdown = before.runtime.shutdown({ drainMs: 100 });
    await settle();
    before.clock.increment(100);
    await shutdown;
    const published = Math.max(...before.of('s').map((e) => e.seq));
    await settle();
    expect.soft(await store.eventsAfter('s', published), 'events stored after shutdown resolved').toEqual([]);
    store.close();

    const after = testRuntime({ agent, tools: [fetchTool(runs)], debounceMs: 0, store: new SqliteStore(path) });
    await settle();
    expect(runs.map((r) => r.idempotencyKey)).toEqual(['call_1_1:1', 'call_1_1:2']);
    expect(results).toEqual([{ id: 'call_1_1', status: 'ok', output: 'page' }]);
    await after.runtime.shutdown();
  });
});

import { expect } from 'vitest';
import { z } from 'zod';
import { defineTool, type Agent, type ToolContext, type ToolResult, type Turn } from '../src/index.ts';
import { SqliteStore } from '../src/sqlite.ts';
import { settle, testRuntime } from './helpers.ts';

/** What the C19 approval tests share: a guarded tool, an agent that calls it, a parked session. */
/** A tool that needs approval and counts its runs; `hold` keeps each run open until the test finishes it. */
export function guardedTool({ hold = false } = {}) {
  const runs: { input: unknown; context: ToolContext; resolve: (v: unknown) => void }[] = [];
  const tool = defineTool({
    name: 'guarded',
    description: 'Does something the user must allow',
    parameters: z.object({ text: z.string() }),
    needsApproval: true,
    run: (input, context) =>
      hold ? new Promise((resolve) => runs.push({ input, context, resolve })) : (runs.push({ input, context, resolve: () => {} }), input.text.toUpperCase()),
  });
  return { tool, runs };
}

/** Calls `guarded` with the first input's content, replies with what came of it. */
export function callingAgent(results: ToolResult[] = [], turns: Turn[] = []): Agent {
  return async (turn) => {
    turns.push(turn);
    const result = await turn.callTool('guarded', { text: turn.inputs[0]!.content });
    results.push(result);
    if (turn.signal.aborted) return undefined;
    return result.status === 'ok' ? `got ${String(result.output)}` : `no: ${result.status}`;
  };
}

/** Session `s` asked for approval of its call and, idle past idleTimeoutMs, was passivated while it waits. */
export async function parked() {
  const { tool, runs } = guardedTool();
  const results: ToolResult[] = [];
  const store = new SqliteStore(':memory:');
  const t = testRuntime({ agent: callingAgent(results), tools: [tool], debounceMs: 0, store, idleTimeoutMs: 60_000 });
  await t.runtime.send('s', { id: 'm1', content: 'later' });
  await settle();
  const expiresAt = (t.of('s').find((e) => e.type === 'permission_request')!.data as { expires_at: number }).expires_at;
  await t.advance(60_000);
  await t.advance(30_000);
  expect(t.runtime.sessionIds()).toEqual([]);
  return { t, store, runs, results, expiresAt };
}

/**
 * Attack on C19: "`callTool` never throws … a failure is a result; the turn and the process
 * go on." Only `tool.run` and `needsApproval` are guarded, and only against values whose
 * `String()` works:
 * - the schema runs unguarded (`parameters.safeParse` throws for a `refine`/`transform` that
 *   throws, and for any async refinement — zod's "Encountered Promise during synchronous
 *   parse"): `callTool` rejects, the turn fails with WORKER_CRASH (every call of an OpenAI
 *   response with it, since they are awaited together), and the call's `tool_result` says
 *   `cancelled` instead of `invalid_input`/`tool_failed`;
 * - a thrown value without a string form (`Object.create(null)`, as some RPC libraries
 *   throw) makes `describe()` throw: from `needsApproval`, `callTool` rejects; from
 *   `run`, the call gets no result at all until the turn's timeout (10 minutes by default).
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineTool, type Agent, type Tool, type ToolResult } from '../src/index.ts';
import { settle, testRuntime } from './helpers.ts';

async function callOnce(tool: Tool, input: unknown) {
  const results: ToolResult[] = [];
  const thrown: unknown[] = [];
  const agent: Agent = async (turn) => {
    try {
      results.push(await turn.callTool(tool.name, input));
    } catch (error) {
      thrown.push(error);
    }
    return 'replied';
  };
  const t = testRuntime({ agent, tools: [tool], debounceMs: 0, onError: () => {} });
  await t.runtime.send('s', { id: 'm1', content: 'go' });
  await settle();
  return { t, results, thrown };
}

describe('C19 attack: user code that throws around a tool call', () => {
  it('C19: an async refinement in parameters is a failed result, callTool does not throw', async () => {
    const tool = defineTool({ name: 'city', description: 'd', parameters: z.object({ name: z.string() }).refine(async () => true), run: () => 'sunny' });
    const { results, thrown } = await callOnce(tool, { name: 'Oslo' });
    expect(thrown).toEqual([]);
    expect(results).toEqual([expect.objectContaining({ id: 'call_1_1', status: 'failed' })]);
  });

  it('C19: a refine that throws is a failed result, callTool does not throw', async () => {
    const tool = defineTool({
      name: 'city',
      description: 'd',
      parameters: z.object({ name: z.string() }).refine(() => {
        throw new Error('geocoder unreachable');
      }),
      run: () => 'sunny',
    });
    const { results, thrown } = await callOnce(tool, { name: 'Oslo' });
    expect(thrown).toEqual([]);
    expect(results).toEqual([expect.objectContaining({ id: 'call_1_1', status: 'failed' })]);
  });

  it('C19: needsApproval throwing a value without a string form is a failed result, callTool does not throw', async () => {
    const tool = defineTool({
      name: 'pay',
      description: 'd',
      parameters: z.object({}),
      needsApproval: () => {
        throw Object.create(null);
      },
      run: () => 'paid',
    });
    const { results, thrown } = await callOnce(tool, {});
    expect(thrown).toEqual([]);
    expect(results).toEqual([expect.objectContaining({ id: 'call_1_1', status: 'failed' })]);
  });

  it('C19: a tool rejecting with a value without a string form gets its failed tool_result at once', async () => {
    const tool = defineTool({
      name: 'rpc',
      description: 'd',
      parameters: z.object({}),
      run: async () => {
        throw Object.create(null);
      },
    });
    const { t, results } = await callOnce(tool, {});
    expect(t.of('s').filter((e) => e.type === 'tool_result')).toHaveLength(1);
    expect(results).toEqual([expect.objectContaining({ id: 'call_1_1', status: 'failed' })]);
  });
});

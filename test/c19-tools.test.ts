import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineTool, demoAgent, toolSchema, type Agent, type ToolContext, type ToolResult, type Turn } from '../src/index.ts';
import { SqliteStore } from '../src/sqlite.ts';
import type { StepRecord } from '../src/index.ts';
import { seqGaps, settle, stored, testRuntime, turnOverlaps } from './helpers.ts';

/** SQLite in memory whose commits fail while `failing` is set (C16). */
class FaultyStore extends SqliteStore {
  failing = false;
  constructor() {
    super(':memory:');
  }
  override commit(steps: readonly StepRecord[]): void {
    if (this.failing) throw new Error('database or disk is full');
    super.commit(steps);
  }
}

const upper = defineTool({
  name: 'upper',
  description: 'The text in upper case',
  parameters: z.object({ text: z.string() }),
  run: ({ text }) => text.toUpperCase(),
});

/** A tool whose runs the test finishes by hand. */
function heldTool() {
  const runs: { input: unknown; context: ToolContext; resolve: (v: unknown) => void }[] = [];
  const tool = defineTool({
    name: 'held',
    description: 'Waits for the test',
    parameters: z.object({ n: z.number() }),
    run: (input, context) => new Promise((resolve) => runs.push({ input, context, resolve })),
  });
  return { tool, runs };
}

/** An agent that calls one tool with the input's content as JSON and replies with the result. */
function callingAgent(name: string, results: ToolResult[] = [], turns: Turn[] = []): Agent {
  return async (turn) => {
    turns.push(turn);
    void turn.history; // read now: the getter copies the transcript as it is when the turn starts
    const result = await turn.callTool(name, JSON.parse(turn.inputs[0]!.content));
    results.push(result);
    return result.status === 'ok' ? `got ${String(result.output)}` : `no: ${result.status}`;
  };
}

const toolEvents = (events: readonly { type: string; data: unknown }[]) => events.filter((e) => e.type.startsWith('tool_'));

describe('C19 tools', () => {
  it('C19: a call emits tool_call then tool_result, in the turn, with gapless seq', async () => {
    const results: ToolResult[] = [];
    const t = testRuntime({ agent: callingAgent('upper', results), tools: [upper], debounceMs: 0 });
    await t.runtime.send('s', { id: 'm1', content: '{"text":"hi"}' });
    await settle();
    expect(toolEvents(t.of('s')).map((e) => [e.type, e.data])).toEqual([
      ['tool_call', { id: 'call_1_1', name: 'upper', input: { text: 'hi' } }],
      ['tool_result', { id: 'call_1_1', status: 'ok', output: 'HI' }],
    ]);
    expect(results).toEqual([{ id: 'call_1_1', status: 'ok', output: 'HI' }]);
    const types = t.types('s');
    expect(types.indexOf('tool_call')).toBeLessThan(types.indexOf('tool_result'));
    expect(types.indexOf('tool_result')).toBeLessThan(types.indexOf('done'));
    expect(t.dones('s')).toEqual([expect.objectContaining({ success: true })]);
    expect(seqGaps(t.events)).toEqual([]);
    expect(turnOverlaps(t.events)).toEqual([]);
  });

  it('C19: the transcript has the call and its result between the input and the reply (turn.history)', async () => {
    const turns: Turn[] = [];
    const t = testRuntime({ agent: callingAgent('upper', [], turns), tools: [upper], debounceMs: 0 });
    await t.runtime.send('s', { id: 'm1', content: '{"text":"hi"}' });
    await settle();
    await t.runtime.send('s', { id: 'm2', content: '{"text":"again"}' });
    await settle();
    expect(turns[1]!.history).toEqual([
      { role: 'user', content: '{"text":"hi"}', inputId: 'm1' },
      { role: 'tool_call', content: JSON.stringify({ id: 'call_1_1', name: 'upper', input: { text: 'hi' } }) },
      { role: 'tool_result', content: JSON.stringify({ id: 'call_1_1', status: 'ok', output: 'HI' }) },
      { role: 'assistant', content: 'got HI' },
    ]);
  });

  it('C19: bad input, an unknown tool and input that is not JSON are error results, never runs', async () => {
    let ran = 0;
    const counted = defineTool({ name: 'counted', description: 'Counts', parameters: z.object({ text: z.string() }), run: () => ran++ });
    const results: ToolResult[] = [];
    const agent: Agent = async (turn) => {
      results.push(await turn.callTool('counted', { text: 42 }));
      results.push(await turn.callTool('nope', {}));
      results.push(await turn.callTool('counted', { text: 1n }));
    };
    const t = testRuntime({ agent, tools: [upper, counted], debounceMs: 0 });
    await t.runtime.send('s', { id: 'm1', content: 'go' });
    await settle();
    expect(results.map((r) => [r.status, r.status === 'ok' ? undefined : r.error.code])).toEqual([
      ['failed', 'invalid_input'],
      ['failed', 'unknown_tool'],
      ['failed', 'invalid_input'],
    ]);
    expect(ran).toBe(0);
    const events = toolEvents(t.of('s'));
    expect(events.map((e) => e.type)).toEqual(['tool_call', 'tool_result', 'tool_call', 'tool_result', 'tool_call', 'tool_result']);
    expect(events[1]!.data).toMatchObject({ id: 'call_1_1', status: 'failed', error: { code: 'invalid_input', message: expect.stringContaining('text') } });
    expect(events[4]!.data).toEqual({ id: 'call_1_3', name: 'counted', input: null }); // a BigInt is not JSON
    expect(t.dones('s')).toEqual([expect.objectContaining({ success: true })]);
  });

  it('C19: a stop while a tool runs gives one cancelled result, before done, and aborts the tool', async () => {
    const held = heldTool();
    const results: ToolResult[] = [];
    const turns: Turn[] = [];
    const t = testRuntime({ agent: callingAgent('held', results, turns), tools: [held.tool], debounceMs: 0 });
    await t.runtime.send('s', { id: 'm1', content: '{"n":1}' });
    await settle();
    expect(held.runs).toHaveLength(1);
    expect(held.runs[0]!.context.signal.aborted).toBe(false);
    await t.runtime.control('s', 'stop');
    await settle();
    expect(held.runs[0]!.context.signal.aborted).toBe(true);
    held.runs[0]!.resolve('too late');
    await settle();
    const results_ = toolEvents(t.of('s')).filter((e) => e.type === 'tool_result');
    expect(results_.map((e) => e.data)).toEqual([
      { id: 'call_1_1', status: 'cancelled', error: { code: 'cancelled', message: expect.any(String) } },
    ]);
    const types = t.types('s');
    expect(types.indexOf('tool_result')).toBeLessThan(types.indexOf('done'));
    expect(t.dones('s')).toEqual([expect.objectContaining({ success: false, reason: 'stopped_by_user' })]);
    expect(results).toEqual([expect.objectContaining({ status: 'cancelled' })]);
    expect(seqGaps(t.events)).toEqual([]);
    // The transcript stays valid: the next turn sees the call closed by its cancelled result.
    await t.runtime.send('s', { id: 'm2', content: '{"n":2}' });
    await settle();
    expect(turns[1]!.history.map((e) => e.role)).toEqual(['user', 'tool_call', 'tool_result', 'assistant']);
    expect(JSON.parse(turns[1]!.history[2]!.content)).toMatchObject({ id: 'call_1_1', status: 'cancelled' });
  });

  it('C19: a turn timeout while a tool runs cancels the call exactly once', async () => {
    const held = heldTool();
    const t = testRuntime({ agent: callingAgent('held'), tools: [held.tool], debounceMs: 0, turnTimeoutMs: 1000 });
    await t.runtime.send('s', { id: 'm1', content: '{"n":1}' });
    await settle();
    await t.advance(1000);
    expect(held.runs[0]!.context.signal.aborted).toBe(true);
    expect(toolEvents(t.of('s')).map((e) => (e.data as { status?: string }).status ?? e.type)).toEqual(['tool_call', 'cancelled']);
    expect(t.dones('s')).toEqual([expect.objectContaining({ reason: 'timeout' })]);
  });

  it('C19: a tool that throws or rejects is a failed result and the session goes on', async () => {
    const boom = defineTool({ name: 'boom', description: 'Throws', parameters: z.object({}), run: () => { throw new Error('kaput'); } });
    const later = defineTool({ name: 'later', description: 'Rejects', parameters: z.object({}), run: async () => Promise.reject(new Error('nope')) });
    const results: ToolResult[] = [];
    const agent: Agent = async (turn) => {
      results.push(await turn.callTool('boom', {}), await turn.callTool('later', {}));
      return 'still here';
    };
    const t = testRuntime({ agent, tools: [boom, later], debounceMs: 0 });
    await t.runtime.send('s', { id: 'm1', content: 'go' });
    await settle();
    expect(results).toEqual([
      { id: 'call_1_1', status: 'failed', error: { code: 'tool_failed', message: 'kaput' } },
      { id: 'call_1_2', status: 'failed', error: { code: 'tool_failed', message: 'nope' } },
    ]);
    expect(t.dones('s')).toEqual([expect.objectContaining({ success: true })]);
    await t.runtime.send('s', { id: 'm2', content: 'again' });
    await settle();
    expect(t.dones('s')).toHaveLength(2);
  });

  it('C19: a call the agent leaves open when it returns is cancelled before done', async () => {
    const held = heldTool();
    const agent: Agent = (turn) => {
      void turn.callTool('held', { n: 1 });
      return 'done without waiting';
    };
    const t = testRuntime({ agent, tools: [held.tool], debounceMs: 0 });
    await t.runtime.send('s', { id: 'm1', content: 'go' });
    await settle();
    expect(toolEvents(t.of('s')).map((e) => (e.data as { status?: string }).status ?? e.type)).toEqual(['tool_call', 'cancelled']);
    expect(t.dones('s')).toEqual([expect.objectContaining({ success: true })]);
  });

  it('C19: tools come from the runtime and the agent; a name twice is a TypeError; JSON Schema for providers', () => {
    expect(toolSchema(upper)).toEqual({
      name: 'upper',
      description: 'The text in upper case',
      parameters: expect.objectContaining({ type: 'object', properties: { text: { type: 'string' } }, required: ['text'] }),
    });
    const agent = Object.assign(() => undefined, { tools: [upper] });
    expect(() => testRuntime({ agent, tools: [upper] })).toThrow(TypeError);
    expect(() => defineTool({ name: 'bad name', description: '', parameters: z.object({}), run: () => 1 })).toThrow(/bad name/);
  });

  it('C19: turn.tools lists the runtime\'s tools, then the agent\'s, read-only', async () => {
    const turns: Turn[] = [];
    const held = heldTool();
    const agent = Object.assign((turn: Turn) => void turns.push(turn), { tools: [held.tool] });
    const t = testRuntime({ agent, tools: [upper], debounceMs: 0 });
    await t.runtime.send('s', { id: 'm1', content: 'go' });
    await settle();
    expect(turns[0]!.tools.map((tool) => tool.name)).toEqual(['upper', 'held']);
    expect(Object.isFrozen(turns[0]!.tools)).toBe(true);
  });

  it('C19: the demo agent calls echo_upper for "tool <text>", which needs the user\'s approval', async () => {
    const t = testRuntime({ agent: demoAgent({ delayMs: 0 }), debounceMs: 0 });
    await t.runtime.send('s', { id: 'm1', content: 'tool hello world' });
    await settle();
    expect(t.types('s')).toContain('permission_request');
    await t.runtime.decide('s', { id: 'call_1_1', allowed: true });
    await settle();
    expect(toolEvents(t.of('s')).map((e) => e.data)).toEqual([
      { id: 'call_1_1', name: 'echo_upper', input: { text: 'hello world' } },
      { id: 'call_1_1', status: 'ok', output: 'HELLO WORLD' },
    ]);
    expect(t.of('s').filter((e) => e.type === 'message.delta').map((e) => (e.data as { content: string }).content).join('')).toBe('echo_upper: HELLO WORLD');
  });

  it('C19: the tool runs only once its tool_call is committed; a failed commit shows and runs nothing (C16)', async () => {
    const store = new FaultyStore();
    let ran = 0;
    const counted = defineTool({ name: 'counted', description: 'Counts runs', parameters: z.object({}), run: () => ++ran });
    let turn: Turn | undefined;
    const agent: Agent = (t) => {
      turn = t;
      return new Promise(() => {}); // the test calls the tool itself
    };
    const t = testRuntime({ agent, tools: [counted], store, debounceMs: 0, storeRetryMs: 60_000, onError: () => {} });
    await t.runtime.send('s', { id: 'm1', content: 'go' });
    await settle();
    store.failing = true;
    void turn!.callTool('counted', {});
    await settle();
    expect(ran).toBe(0);
    expect(t.types('s')).not.toContain('tool_call');
  });

  it('C19: tool entries survive a store round trip (SQLite)', async () => {
    const store = new SqliteStore(':memory:');
    const t = testRuntime({ agent: callingAgent('upper'), tools: [upper], store, debounceMs: 0 });
    await t.runtime.send('s', { id: 'm1', content: '{"text":"hi"}' });
    await settle();
    expect((await stored(store, 's'))?.history.map((e) => [e.role, e.role.startsWith('tool_') ? JSON.parse(e.content).id : e.content])).toEqual([
      ['user', '{"text":"hi"}'],
      ['tool_call', 'call_1_1'],
      ['tool_result', 'call_1_1'],
      ['assistant', 'got HI'],
    ]);
  });

  it('C19: an input under busy policy interrupt cancels the running call once, then the next turn runs', async () => {
    const held = heldTool();
    const t = testRuntime({ agent: callingAgent('held'), tools: [held.tool], debounceMs: 0, busyPolicy: 'interrupt' });
    await t.runtime.send('s', { id: 'm1', content: '{"n":1}' });
    await settle();
    await t.runtime.send('s', { id: 'm2', content: '{"n":2}' });
    await settle();
    expect(held.runs[0]!.context.signal.aborted).toBe(true);
    expect(held.runs).toHaveLength(2);
    held.runs[1]!.resolve('second');
    await settle();
    expect(toolEvents(t.of('s')).map((e) => [e.type, (e.data as { id: string }).id, (e.data as { status?: string }).status])).toEqual([
      ['tool_call', 'call_1_1', undefined],
      ['tool_result', 'call_1_1', 'cancelled'],
      ['tool_call', 'call_2_1', undefined],
      ['tool_result', 'call_2_1', 'ok'],
    ]);
    expect(t.dones('s').map((d) => d.reason ?? 'ok')).toEqual(['interrupted', 'ok']);
    expect(turnOverlaps(t.events)).toEqual([]);
  });

  it('C19: a shutdown past drainMs cancels the running call before its done (memory store)', async () => {
    const held = heldTool();
    const t = testRuntime({ agent: callingAgent('held'), tools: [held.tool], debounceMs: 0 });
    await t.runtime.send('s', { id: 'm1', content: '{"n":1}' });
    await settle();
    const down = t.runtime.shutdown({ drainMs: 100 });
    await t.advance(100);
    await down;
    expect(held.runs[0]!.context.signal.aborted).toBe(true);
    const types = t.types('s');
    expect(toolEvents(t.of('s')).map((e) => (e.data as { status?: string }).status ?? e.type)).toEqual(['tool_call', 'cancelled']);
    expect(types.indexOf('tool_result')).toBeLessThan(types.lastIndexOf('done'));
    expect(t.dones('s')).toEqual([expect.objectContaining({ reason: 'shutdown' })]);
  });
});

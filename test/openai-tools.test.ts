import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineTool, MemoryStore, type SessionEvent, type StepRecord } from '../src/index.ts';
import { FakeOpenAI, openaiRuntime, toolCall, words, type ChatRequest, type Reply } from './fake-openai.ts';

/** What the fake model answers; each test scripts it. */
let respond: (request: ChatRequest) => Reply;
const server = new FakeOpenAI((request) => respond(request));
const requests = server.requests;
let baseURL: string;

beforeAll(async () => {
  baseURL = await server.start();
});
afterAll(() => server.close());
beforeEach(() => {
  requests.length = 0;
});

let weatherRuns = 0;
const weather = defineTool({
  name: 'weather',
  description: 'The weather in a city',
  parameters: z.object({ city: z.string() }),
  run: ({ city }) => {
    weatherRuns++;
    return `${city}: sunny`;
  },
});
const broken = defineTool({
  name: 'broken',
  description: 'Always fails',
  parameters: z.object({}),
  run: () => {
    throw new Error('station offline');
  },
});

/** The model's script for most tests: ask for the weather in Paris, then answer from the tool message. */
const askParisThenAnswer = ({ messages }: ChatRequest): Reply =>
  messages.at(-1)?.role === 'tool' ? { deltas: words('It is sunny in Paris') } : { deltas: toolCall(0, 'call_abc', 'weather', '{"city":"Paris"}') };

const isTool = (e: SessionEvent) => e.type === 'tool_call' || e.type === 'tool_result';
const of = (events: readonly SessionEvent[], sessionId: string) => events.filter((e) => e.sessionId === sessionId);

describe('C19 OpenAI agent with tools', () => {
  it('C19: offers the tools, calls the one the model asks for, sends its result back and streams the answer', async () => {
    respond = askParisThenAnswer;
    const t = openaiRuntime(baseURL, { tools: [weather] });
    const done = t.done('s1');
    await t.runtime.send('s1', { id: 'm1', content: 'weather in Paris?' });
    expect((await done).data).toMatchObject({ success: true, input_ids: ['m1'] });

    expect(requests[0]!.tools).toEqual([
      { type: 'function', function: { name: 'weather', description: 'The weather in a city', parameters: expect.objectContaining({ type: 'object', required: ['city'] }) } },
    ]);
    expect(requests).toHaveLength(2);
    expect(requests[1]!.messages).toEqual([
      { role: 'user', content: 'weather in Paris?' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1_1', type: 'function', function: { name: 'weather', arguments: '{"city":"Paris"}' } }] },
      { role: 'tool', tool_call_id: 'call_1_1', content: '"Paris: sunny"' },
    ]);
    const stream = of(t.events, 's1').filter((e) => isTool(e) || e.type === 'message.delta');
    expect(stream.map((e) => e.type)).toEqual(['tool_call', 'tool_result', 'message.delta', 'message.delta', 'message.delta', 'message.delta', 'message.delta']);
    expect(stream.slice(0, 2).map((e) => e.data)).toEqual([
      { id: 'call_1_1', name: 'weather', input: { city: 'Paris' } },
      { id: 'call_1_1', status: 'ok', output: 'Paris: sunny' },
    ]);
    expect(t.text('s1')).toBe('It is sunny in Paris');
    await t.runtime.shutdown();
  });

  it('C19: two calls in one response (fragments interleaved) are both made, and both results go back in call order', async () => {
    const paris = toolCall(0, 'a', 'weather', '{"city":"Paris"}');
    const oslo = toolCall(1, 'b', 'weather', '{"city":"Oslo"}');
    respond = ({ messages }) =>
      messages.at(-1)?.role === 'tool' ? { deltas: words('Sunny in both') } : { deltas: paris.flatMap((d, i) => [d, ...(oslo[i] ? [oslo[i]] : [])]) };
    const t = openaiRuntime(baseURL, { tools: [weather] });
    const done = t.done('s2');
    await t.runtime.send('s2', { id: 'm1', content: 'Paris and Oslo?' });
    expect((await done).data).toMatchObject({ success: true });

    expect(requests[1]!.messages.slice(1)).toEqual([
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          { id: 'call_1_1', type: 'function', function: { name: 'weather', arguments: '{"city":"Paris"}' } },
          { id: 'call_1_2', type: 'function', function: { name: 'weather', arguments: '{"city":"Oslo"}' } },
        ],
      },
      { role: 'tool', tool_call_id: 'call_1_1', content: '"Paris: sunny"' },
      { role: 'tool', tool_call_id: 'call_1_2', content: '"Oslo: sunny"' },
    ]);
    const tools = of(t.events, 's2').filter(isTool);
    expect(tools.slice(0, 2).map((e) => e.data)).toEqual([
      { id: 'call_1_1', name: 'weather', input: { city: 'Paris' } },
      { id: 'call_1_2', name: 'weather', input: { city: 'Oslo' } },
    ]);
    expect(tools.slice(2).map((e) => [e.type, (e.data as { id: string }).id])).toEqual(
      expect.arrayContaining([['tool_result', 'call_1_1'], ['tool_result', 'call_1_2']]),
    );
    expect(t.text('s2')).toBe('Sunny in both');
    await t.runtime.shutdown();
  });

  it('C19: a tool that fails: the model gets the error with its status, and answers', async () => {
    respond = ({ messages }) =>
      messages.at(-1)?.role === 'tool' ? { deltas: words('The station is offline, sorry') } : { deltas: toolCall(0, 'x', 'broken', '{}') };
    const t = openaiRuntime(baseURL, {}, { tools: [broken] }); // the agent's own tool
    const done = t.done('s3');
    await t.runtime.send('s3', { id: 'm1', content: 'try it' });
    expect((await done).data).toMatchObject({ success: true });

    expect(requests[0]!.tools?.map((tool) => tool.function.name)).toEqual(['broken']);
    expect(JSON.parse(requests[1]!.messages.at(-1)!.content!)).toEqual({ status: 'failed', error: { code: 'tool_failed', message: 'station offline' } });
    expect(of(t.events, 's3').filter((e) => e.type === 'tool_result').map((e) => e.data)).toEqual([
      { id: 'call_1_1', status: 'failed', error: { code: 'tool_failed', message: 'station offline' } },
    ]);
    expect(t.text('s3')).toBe('The station is offline, sorry');
    await t.runtime.shutdown();
  });

  it('C19: past maxToolRounds the calls asked for are not made, and the reply says the turn stopped', async () => {
    respond = () => ({ deltas: [{ content: 'Checking.' }, ...toolCall(0, 'x', 'weather', '{"city":"Paris"}')] });
    const t = openaiRuntime(baseURL, { tools: [weather] }, { maxToolRounds: 2 });
    const done = t.done('s4');
    await t.runtime.send('s4', { id: 'm1', content: 'loop for ever' });
    expect((await done).data).toMatchObject({ success: true });

    expect(requests).toHaveLength(3);
    expect(of(t.events, 's4').filter((e) => e.type === 'tool_result')).toHaveLength(2);
    expect(requests[2]!.messages.map((m) => m.role)).toEqual(['user', 'assistant', 'tool', 'assistant', 'tool']);
    expect(requests[2]!.messages[1]!.content).toBe('Checking.'); // a round's text goes with its calls
    expect(t.text('s4')).toBe(
      'Checking.\n\nChecking.\n\nChecking.\n\n[stopped: the model asked for tools again after 2 rounds of tool calls (maxToolRounds)]',
    );
    expect(() => openaiRuntime(baseURL, {}, { maxToolRounds: 0 })).toThrow(/"maxToolRounds" must be a positive integer, got 0/);
    await t.runtime.shutdown();
  });

  it('C19: arguments that are not JSON never run the tool: an invalid_input result the model is told about', async () => {
    respond = ({ messages }) =>
      messages.at(-1)?.role === 'tool' ? { deltas: words('Let me try again later') } : { deltas: toolCall(0, 'x', 'weather', '{"city": "Par') };
    const runs = weatherRuns;
    const t = openaiRuntime(baseURL, { tools: [weather] });
    const done = t.done('s5');
    await t.runtime.send('s5', { id: 'm1', content: 'weather?' });
    expect((await done).data).toMatchObject({ success: true });

    expect(weatherRuns).toBe(runs);
    expect(of(t.events, 's5').filter(isTool).map((e) => e.data)).toEqual([
      { id: 'call_1_1', name: 'weather', input: '{"city": "Par' },
      { id: 'call_1_1', status: 'failed', error: { code: 'invalid_input', message: expect.any(String) } },
    ]);
    const [ask, tool] = requests[1]!.messages.slice(1);
    // The assistant message carries valid JSON (the text as a string), so a strict server accepts the transcript.
    expect(ask!.tool_calls![0]!.function.arguments).toBe(JSON.stringify('{"city": "Par'));
    expect(tool).toMatchObject({ role: 'tool', tool_call_id: 'call_1_1' });
    expect(JSON.parse(tool!.content!)).toMatchObject({ status: 'failed', error: { code: 'invalid_input' } });
    await t.runtime.shutdown();
  });

  it('C19: the next turn sends the earlier tool calls and results as tool_calls and tool messages', async () => {
    respond = askParisThenAnswer;
    const t = openaiRuntime(baseURL, { tools: [weather] });
    const first = t.done('s6');
    await t.runtime.send('s6', { id: 'm1', content: 'weather in Paris?' });
    await first;
    respond = () => ({ deltas: words('Same tomorrow') });
    const second = t.done('s6');
    await t.runtime.send('s6', { id: 'm2', content: 'and tomorrow?' });
    await second;

    expect(requests.at(-1)!.messages).toEqual([
      { role: 'user', content: 'weather in Paris?' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1_1', type: 'function', function: { name: 'weather', arguments: '{"city":"Paris"}' } }] },
      { role: 'tool', tool_call_id: 'call_1_1', content: '"Paris: sunny"' },
      { role: 'assistant', content: 'It is sunny in Paris' },
      { role: 'user', content: 'and tomorrow?' },
    ]);
    await t.runtime.shutdown();
  });

  it('C19: history never sends a call without its result, nor a result without its call', async () => {
    /** Loses every tool_result entry, as a crash between a call and its result would. */
    class LossyStore extends MemoryStore {
      override commit(steps: readonly StepRecord[]): void {
        super.commit(steps.map((step) => ({ ...step, ...(step.transcript && { transcript: step.transcript.filter((e) => e.role !== 'tool_result') }) })));
      }
    }
    const store = new LossyStore();
    respond = askParisThenAnswer;
    const before = openaiRuntime(baseURL, { tools: [weather], store });
    const first = before.done('s7');
    await before.runtime.send('s7', { id: 'm1', content: 'weather in Paris?' });
    await first;
    await before.runtime.shutdown();
    // A new runtime reads the transcript back from the store (the live session kept its own copy).
    respond = () => ({ deltas: words('ok') });
    const after = openaiRuntime(baseURL, { tools: [weather], store });
    const second = after.done('s7');
    await after.runtime.send('s7', { id: 'm2', content: 'again' });
    await second;
    const [, ask, tool, reply] = requests.at(-1)!.messages;
    expect(ask!.tool_calls!.map((c) => c.id)).toEqual(['call_1_1']);
    expect(tool).toMatchObject({ role: 'tool', tool_call_id: 'call_1_1' });
    expect(JSON.parse(tool!.content!)).toMatchObject({ status: 'cancelled', error: { code: 'cancelled' } });
    expect(reply).toEqual({ role: 'assistant', content: 'It is sunny in Paris' });
    await after.runtime.shutdown();

    // A window of 2 starts at the first turn's tool_result: its call is out of the window, so the result is left out.
    respond = askParisThenAnswer;
    const windowed = openaiRuntime(baseURL, { tools: [weather], historyWindow: 2 });
    const third = windowed.done('s8');
    await windowed.runtime.send('s8', { id: 'm1', content: 'weather in Paris?' });
    await third;
    respond = () => ({ deltas: words('ok') });
    const fourth = windowed.done('s8');
    await windowed.runtime.send('s8', { id: 'm2', content: 'again' });
    await fourth;
    expect(requests.at(-1)!.messages).toEqual([
      { role: 'assistant', content: 'It is sunny in Paris' },
      { role: 'user', content: 'again' },
    ]);
    await windowed.runtime.shutdown();
  });

  it('C19: /stop while a tool runs: a cancelled tool_result, the tool aborted, no request after, the turn ends', async () => {
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    let aborted = false;
    const slow = defineTool({
      name: 'slow',
      description: 'Runs until aborted',
      parameters: z.object({}),
      run: (_input, { signal }) =>
        new Promise((_resolve, reject) => {
          signal.addEventListener('abort', () => {
            aborted = true;
            reject(signal.reason);
          }, { once: true });
          started();
        }),
    });
    respond = ({ messages }) => (messages.at(-1)?.role === 'user' && messages.length === 1 ? { deltas: toolCall(0, 'x', 'slow', '{}') } : { deltas: words('next turn') });
    const t = openaiRuntime(baseURL, { tools: [slow] });
    const done = t.done('s9');
    await t.runtime.send('s9', { id: 'm1', content: 'take your time' });
    await running;
    await t.runtime.send('s9', { id: 'c1', content: '/stop' });
    expect((await done).data).toMatchObject({ success: false, reason: 'stopped_by_user' });

    expect(aborted).toBe(true);
    const types = of(t.events, 's9').map((e) => e.type);
    expect(of(t.events, 's9').filter(isTool).map((e) => [e.type, (e.data as { status?: string }).status])).toEqual([
      ['tool_call', undefined],
      ['tool_result', 'cancelled'],
    ]);
    expect(types.indexOf('tool_result')).toBeLessThan(types.indexOf('done'));
    expect(types).not.toContain('message.delta');
    // The next turn is the only request after the stopped one, and it sees the call closed.
    const next = t.done('s9');
    await t.runtime.send('s9', { id: 'm2', content: 'hello again' });
    await next;
    expect(requests).toHaveLength(2);
    const tool = requests[1]!.messages.find((m) => m.role === 'tool');
    expect(JSON.parse(tool!.content!)).toMatchObject({ status: 'cancelled' });
    expect(t.text('s9')).toBe('next turn');
    await t.runtime.shutdown();
  });
});

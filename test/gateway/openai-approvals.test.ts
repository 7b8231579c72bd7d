import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineTool } from '../../src/index.ts';
import { openaiAgent } from '../../src/openai.ts';
import { FakeOpenAI, toolCall, words, type ChatRequest, type Reply } from '../fake-openai.ts';
import { Client, gatewayPerTest } from './client.ts';

/**
 * C19 over a real socket: the gateway runs `openaiAgent` against a local OpenAI-compatible
 * server that streams a function call for a tool that needs approval; the client answers
 * (or does not) with `permission_response`.
 */
const model = new FakeOpenAI((request) => script(request));
let baseURL: string;
beforeAll(async () => {
  baseURL = await model.start();
});
afterAll(() => model.close());
beforeEach(() => {
  model.requests.length = 0;
  runs.length = 0;
});

const runs: string[] = [];
const deploy = defineTool({
  name: 'deploy',
  description: 'Deploys a service to production',
  parameters: z.object({ service: z.string() }),
  needsApproval: true,
  run: ({ service }, { idempotencyKey }) => {
    runs.push(idempotencyKey);
    return `${service} deployed`;
  },
});

/** Asks to deploy, then answers with what the tool message said (a steered input may follow it). */
function script({ messages }: ChatRequest): Reply {
  const tool = messages.find((m) => m.role === 'tool');
  if (tool) return { deltas: words(`result: ${tool.content}`) };
  return { deltas: toolCall(0, 'call_model_1', 'deploy', '{"service":"api"}') };
}

const gateway = gatewayPerTest();
const start = (runtime: Record<string, unknown> = {}) =>
  gateway({ runtime: { agent: openaiAgent({ model: 'fake', baseURL, apiKey: 'test' }), tools: [deploy], ...runtime } });

/** The tool message the model got in its second request, parsed. */
const toolMessage = () => JSON.parse(model.requests[1]!.messages.find((m) => m.role === 'tool')!.content as string);

describe('C19 approvals with the OpenAI agent over a socket', () => {
  it('C19: approve: the streamed function call waits for the user, then runs once and its output goes back to the model', async () => {
    const { url } = await start();
    const { client } = await Client.attach(url, { session_id: 'approve' });
    client.send('input', { content: 'ship it' });
    const request = await client.type('permission_request');
    expect(request.event.data).toMatchObject({ id: 'call_1_1', tool_name: 'deploy', input: { service: 'api' }, description: 'Deploys a service to production' });
    expect(runs).toEqual([]);
    client.send('permission_response', { id: 'call_1_1', allowed: true });
    expect((await client.type('tool_result')).event.data).toEqual({ id: 'call_1_1', status: 'ok', output: 'api deployed' });
    expect((await client.type('done')).event.data).toMatchObject({ success: true });
    expect(runs).toEqual(['call_1_1:1']);
    expect(toolMessage()).toBe('api deployed');
    const text = client.frames.filter((f) => f.event.type === 'message.delta').map((f) => f.event.data.content).join('');
    expect(text).toBe('result: "api deployed"');
    await client.close();
  });

  it('C19: deny: the tool never runs and the model is told why', async () => {
    const { url } = await start();
    const { client } = await Client.attach(url, { session_id: 'deny' });
    client.send('input', { content: 'ship it' });
    await client.type('permission_request');
    client.send('permission_response', { id: 'call_1_1', allowed: false, reason: 'code freeze' });
    expect((await client.type('tool_result')).event.data).toEqual({ id: 'call_1_1', status: 'denied', error: { code: 'denied', message: 'code freeze' } });
    expect((await client.type('done')).event.data).toMatchObject({ success: true });
    expect(runs).toEqual([]);
    expect(toolMessage()).toMatchObject({ status: 'denied', error: { code: 'denied', message: 'code freeze' } });
    await client.close();
  });

  it('C19: time out: no answer by expires_at is a denial the model hears of', async () => {
    const { url } = await start({ approvalTimeoutMs: 150 });
    const { client } = await Client.attach(url, { session_id: 'timeout' });
    client.send('input', { content: 'ship it' });
    const request = await client.type('permission_request');
    const result = await client.type('tool_result');
    expect(result.event.data).toMatchObject({ id: 'call_1_1', status: 'denied', error: { code: 'approval_timeout' } });
    expect(result.timestamp).toBeGreaterThanOrEqual(request.event.data.expires_at);
    expect((await client.type('done')).event.data).toMatchObject({ success: true });
    expect(runs).toEqual([]);
    expect(toolMessage()).toMatchObject({ status: 'denied', error: { code: 'approval_timeout' } });
    await client.close();
  });

  it('C19: /stop while waiting cancels the call, ends the turn and asks the model nothing more', async () => {
    const { url } = await start();
    const { client } = await Client.attach(url, { session_id: 'stop' });
    client.send('input', { content: 'ship it' });
    await client.type('permission_request');
    client.send('input', { content: '/stop' });
    expect((await client.type('tool_result')).event.data).toMatchObject({ id: 'call_1_1', status: 'cancelled' });
    expect((await client.type('done')).event.data).toMatchObject({ success: false, reason: 'stopped_by_user' });
    const late = client.send('permission_response', { id: 'call_1_1', allowed: true });
    expect((await client.until((f) => f.event.type === 'error' && f.event.data.event_id === late)).event.data.code).toBe('INVALID_MESSAGE');
    expect(runs).toEqual([]);
    expect(model.requests).toHaveLength(1);
    await client.close();
  });

  it('C19: steer while waiting: the input reaches the turn and the model sees it with the tool result', async () => {
    const { url } = await start({ busyPolicy: 'steer' });
    const { client } = await Client.attach(url, { session_id: 'steer' });
    client.send('input', { content: 'ship it' });
    await client.type('permission_request');
    const steered = client.send('input', { content: 'and tell me when done' });
    const ack = await client.until((f) => f.event.type === 'input.ack' && f.event.data.client_message_id === steered);
    expect(ack.event.data.input_mode).toBe('injected');
    client.send('permission_response', { id: 'call_1_1', allowed: true });
    const done = await client.type('done');
    expect(done.event.data).toMatchObject({ success: true });
    expect(done.event.data.input_ids).toContain(steered);
    expect(runs).toEqual(['call_1_1:1']);
    const contents = model.requests[1]!.messages.map((m) => m.content);
    expect(contents).toContain('and tell me when done');
    await client.close();
  });
});

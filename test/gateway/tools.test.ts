import { describe, expect, it } from 'vitest';
import { Client, gatewayPerTest } from './client.ts';

const gateway = gatewayPerTest();

describe('tools over the wire', () => {
  it('C19: tool_call and tool_result frames reach the client, in the turn, with gapless seq', async () => {
    const { url } = await gateway(); // the demo agent: "tool <text>" calls echo_upper
    const { client } = await Client.attach(url, { session_id: 'tools' });
    const inputId = client.send('input', { content: 'tool make it loud' });
    const call = await client.type('tool_call');
    expect(call.event.data).toEqual({ id: 'call_1_1', name: 'echo_upper', input: { text: 'make it loud' } });
    const result = await client.type('tool_result');
    expect(result.event.data).toEqual({ id: 'call_1_1', status: 'ok', output: 'MAKE IT LOUD' });
    const done = await client.type('done');
    expect(done.event.data).toMatchObject({ success: true, input_ids: [inputId] });
    const session = client.frames.filter((f) => f.seq > 0);
    expect(session.map((f) => f.seq)).toEqual(session.map((_, i) => session[0]!.seq + i));
    expect(result.seq).toBeGreaterThan(call.seq);
    expect(done.seq).toBeGreaterThan(result.seq);
    await client.close();
  });
});

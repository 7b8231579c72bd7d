import { describe, expect, it } from 'vitest';
import { Client, gatewayPerTest } from './client.ts';

const gateway = gatewayPerTest();

describe('tools and approvals over the wire', () => {
  it('C19: tool_call, permission_request and tool_result frames reach the client, in the turn, with gapless seq', async () => {
    const { url } = await gateway(); // the demo agent: "tool <text>" calls echo_upper, which needs approval
    const { client } = await Client.attach(url, { session_id: 'tools' });
    const inputId = client.send('input', { content: 'tool make it loud' });
    const call = await client.type('tool_call');
    expect(call.event.data).toEqual({ id: 'call_1_1', name: 'echo_upper', input: { text: 'make it loud' } });
    const request = await client.type('permission_request');
    expect(request.event.data).toMatchObject({ id: 'call_1_1', tool_name: 'echo_upper', input: { text: 'make it loud' }, expires_at: expect.any(Number) });
    expect(request.event.data.expires_at).toBeGreaterThan(Date.now() + 290_000);
    client.send('permission_response', { id: 'call_1_1', allowed: true });
    const result = await client.type('tool_result');
    expect(result.event.data).toEqual({ id: 'call_1_1', status: 'ok', output: 'MAKE IT LOUD' });
    const done = await client.type('done');
    expect(done.event.data).toMatchObject({ success: true, input_ids: [inputId] });
    const session = client.frames.filter((f) => f.seq > 0);
    expect(session.map((f) => f.seq)).toEqual(session.map((_, i) => session[0]!.seq + i));
    expect(request.seq).toBeGreaterThan(call.seq);
    expect(result.seq).toBeGreaterThan(request.seq);
    expect(done.seq).toBeGreaterThan(result.seq);
    // No error frame answered the accepted decision.
    expect(client.frames.filter((f) => f.event.type === 'error')).toEqual([]);
    await client.close();
  });

  it('C19: a denial over the wire is the call\'s result; a second response and an unknown id get INVALID_MESSAGE naming the frame', async () => {
    const { url } = await gateway();
    const { client } = await Client.attach(url, { session_id: 'deny' });
    client.send('input', { content: 'tool no' });
    await client.type('permission_request');
    client.send('permission_response', { id: 'call_1_1', allowed: false, reason: 'nope' });
    const result = await client.type('tool_result');
    expect(result.event.data).toEqual({ id: 'call_1_1', status: 'denied', error: { code: 'denied', message: 'nope' } });
    await client.type('done');
    const again = client.send('permission_response', { id: 'call_1_1', allowed: true });
    const error = await client.until((f) => f.event.type === 'error' && f.event.data.event_id === again);
    expect(error.event.data.code).toBe('INVALID_MESSAGE');
    const bad = client.send('permission_response', { id: 'call_1_1', allowed: 'yes' });
    const invalid = await client.until((f) => f.event.type === 'error' && f.event.data.event_id === bad);
    expect(invalid.event.data.code).toBe('INVALID_MESSAGE');
    await client.close();
  });

  it('C19: /stop while the turn waits ends it with a cancelled result; the session waits no more', async () => {
    const { url, runtime } = await gateway();
    const { client } = await Client.attach(url, { session_id: 'stop' });
    client.send('input', { content: 'tool wait' });
    await client.type('permission_request');
    expect(await runtime.status('stop')).toMatchObject({ waitingForUser: true });
    client.send('input', { content: '/stop' });
    const result = await client.type('tool_result');
    expect(result.event.data).toMatchObject({ id: 'call_1_1', status: 'cancelled' });
    const done = await client.type('done');
    expect(done.event.data).toMatchObject({ success: false, reason: 'stopped_by_user' });
    expect(await runtime.status('stop')).toMatchObject({ waitingForUser: false });
    await client.close();
  });
});

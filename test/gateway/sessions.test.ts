import { describe, expect, it } from 'vitest';
import { Client, gatewayPerTest, type Frame } from './client.ts';

const gateway = gatewayPerTest();

const words = (n: number) => Array.from({ length: n }, (_, i) => `w${i}`).join(' ');
const sessionFrames = (frames: Frame[]) => frames.filter((f) => f.seq > 0);

describe('sessions over the wire', () => {
  it('C9: a client attaching mid-turn gets init_ack first, then the held frames in order without gaps', async () => {
    const { url } = await gateway({ runtime: { agent: (await import('../../src/index.ts')).demoAgent({ delayMs: 2 }) } });
    const a = await Client.attach(url, { session_id: 'shared' });
    a.client.send('input', { content: words(60) });
    await a.client.until((f) => f.event.type === 'message.delta' && f.seq >= 6);
    const b = await Client.attach(url, { session_id: 'shared' });
    expect(b.client.frames[0]).toBe(b.ack);
    expect(b.ack.event.data.state).toBe('running');
    await b.client.type('done');
    // Every server envelope carries every field (PROTOCOL.md §Envelope).
    for (const f of b.client.frames) {
      expect(Object.keys(f).sort()).toEqual(['event', 'id', 'priority', 'seq', 'session_id', 'timestamp', 'version']);
      expect(f.session_id).toBe('shared');
    }
    const seqs = sessionFrames(b.client.frames).map((f) => f.seq);
    expect(seqs[0]).toBe(b.ack.event.data.seq + 1);
    expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + i));
    // Both clients saw the same events for the overlap.
    await a.client.type('done');
    const aTail = sessionFrames(a.client.frames).filter((f) => f.seq >= seqs[0]!);
    expect(aTail.map((f) => [f.seq, f.event.type])).toEqual(sessionFrames(b.client.frames).map((f) => [f.seq, f.event.type]));
    await a.client.close();
    await b.client.close();
  });

  it('C1: two connections sending at once never overlap turns, and every input lands in exactly one done', async () => {
    const { url } = await gateway({ runtime: { debounceMs: 5, maxWaitMs: 20 } });
    const a = await Client.attach(url, { session_id: 'busy' });
    const b = await Client.attach(url, { session_id: 'busy' });
    const sent: string[] = [];
    for (let i = 0; i < 10; i++) {
      sent.push(a.client.send('input', { content: `a${i} ${words(3)}` }));
      sent.push(b.client.send('input', { content: `b${i}` }));
    }
    const consumed: string[] = [];
    while (consumed.length < sent.length) {
      const done = await a.client.type('done');
      consumed.push(...(done.event.data.input_ids as string[]));
    }
    expect([...consumed].sort()).toEqual([...sent].sort());
    const marks = a.client.frames.flatMap((f) =>
      f.event.type === 'state' && f.event.data.state === 'running' ? ['start'] : f.event.type === 'done' ? ['done'] : [],
    );
    expect(marks.join(' ')).toMatch(/^(start done ?)+$/);
    await a.client.close();
    await b.client.close();
  });

  it('C10: a resent envelope id is acknowledged as duplicate and processed once', async () => {
    const { url } = await gateway();
    const { client } = await Client.attach(url);
    client.send('input', { content: 'once' }, 'msg-1');
    expect((await client.type('input.ack')).event.data).toEqual({
      client_message_id: 'msg-1',
      status: 'accepted',
      duplicate: false,
      input_mode: 'primary',
      durability: 'volatile',
    });
    client.send('input', { content: 'once' }, 'msg-1');
    expect((await client.type('input.ack')).event.data).toMatchObject({ client_message_id: 'msg-1', duplicate: true });
    // The turn may have ended before or after the duplicate's ack: look anywhere.
    await client.seen((f) => f.event.type === 'done', 'done');
    client.send('input', { content: 'other content' }, 'msg-1');
    expect((await client.type('error')).event.data).toMatchObject({ code: 'INVALID_MESSAGE', event_id: 'msg-1' });
    await client.sync();
    expect(client.frames.filter((f) => f.event.type === 'done')).toHaveLength(1);
    await client.close();
  });

  for (const how of ['/stop', 'control'] as const) {
    it(`C6: ${how} mid-turn ends it stopped_by_user, with no delta of that turn after it`, async () => {
      const { url } = await gateway({ runtime: { agent: (await import('../../src/index.ts')).demoAgent({ delayMs: 3 }) } });
      const { client } = await Client.attach(url);
      client.send('input', { content: words(200) });
      await client.until((f) => f.event.type === 'message.delta' && f.event.data.content === ' w2');
      if (how === '/stop') client.send('input', { content: '/stop' });
      else client.send('control', { action: 'stop' });
      const done = await client.type('done');
      expect(done.event.data).toMatchObject({ success: false, reason: 'stopped_by_user' });
      await client.sync();
      const after = client.frames.slice(client.frames.indexOf(done) + 1);
      expect(after.some((f) => f.event.type === 'message.delta')).toBe(false);
      await client.close();
    });
  }

  it('C13: onboarding answers sent back to back get q1, q2, q3 in order; a fourth gets CONVERSATION_ALREADY_COMPLETE', async () => {
    const { url } = await gateway();
    const { client, ack } = await Client.attach(url, { worker_type: 'onboarding' });
    expect(ack.event.data.state).toBe('created');
    const q1 = await client.type('question_request');
    expect(q1.event.data).toMatchObject({ id: 'q1', questions: [{ question: expect.any(String), multi_select: false }] });
    client.send('input', { content: 'I bake bread for a living' });
    client.send('question_response', { id: 'q2', answers: { [q1.event.data.questions[0].question]: 'open a second shop' } });
    client.send('input', { content: 'brief' });
    const end = await client.until((f) => f.event.type === 'state' && f.event.data.state === 'terminated');
    expect(end.event.data).toEqual({ state: 'terminated', message: 'onboarding_complete' });
    const asked = client.frames.flatMap((f) => (f.event.type === 'question_request' ? [f.event.data.id] : []));
    expect(asked).toEqual(['q1', 'q2', 'q3']);
    const reflections = client.frames.filter((f) => f.event.type === 'message').map((f) => f.event.data.role);
    expect(reflections).toEqual(['assistant', 'assistant', 'assistant']);
    const fourth = client.send('input', { content: 'and another thing' });
    const error = await client.type('error');
    expect(error.event.data).toMatchObject({ code: 'CONVERSATION_ALREADY_COMPLETE' });
    expect(fourth).toEqual(expect.any(String));
    // Still open and answering.
    client.send('ping');
    expect((await client.type('pong')).event.data).toEqual({ state: 'terminated' });
    await client.close();
  });

  it('answers ping with pong and terminate/delete with their states; delete closes the connection', async () => {
    const { url } = await gateway();
    const { client } = await Client.attach(url, { session_id: 'doomed' });
    client.send('ping');
    expect((await client.type('pong')).event.data).toEqual({ state: 'idle' });
    client.send('control', { action: 'terminate' });
    expect((await client.until((f) => f.event.data.state === 'terminated')).event.type).toBe('state');
    client.send('input', { content: 'anyone?' });
    expect((await client.type('error')).event.data.code).toBe('SESSION_TERMINATED');
    client.send('control', { action: 'delete' });
    await client.until((f) => f.event.data.state === 'deleted');
    expect(await client.closed).toEqual({ code: 1000, reason: 'session deleted' });
  });

  it('limits the input rate per connection with RATE_LIMITED', async () => {
    const { url } = await gateway({ gateway: { rateLimit: { perSecond: 1, burst: 3 } } });
    const { client } = await Client.attach(url);
    for (let i = 0; i < 5; i++) client.send('input', { content: `m${i}` });
    await client.sync();
    expect(client.frames.filter((f) => f.event.type === 'input.ack')).toHaveLength(3);
    expect(client.frames.filter((f) => f.event.type === 'error').map((f) => f.event.data.code)).toEqual(['RATE_LIMITED', 'RATE_LIMITED']);
    await client.close();
  });

  it('serves /healthz and Prometheus /metrics', async () => {
    const { url, http } = await gateway();
    const { client } = await Client.attach(url);
    client.send('input', { content: 'count me' });
    await client.type('done');
    client.send('input', { content: '/nope' });
    await client.type('error');
    expect(await (await fetch(`${http}/healthz`)).json()).toEqual({ status: 'ok', failed_sessions: 0, fenced_commits: 0 });
    const metrics = await (await fetch(`${http}/metrics`)).text();
    expect(metrics).toMatch(/baton_sessions\{state="idle"\} 1/);
    expect(metrics).toMatch(/baton_turns_total\{outcome="success"\} 1/);
    expect(metrics).toMatch(/baton_inputs_total\{outcome="primary"\} 1/);
    expect(metrics).toMatch(/baton_errors_total\{code="INVALID_MESSAGE"\} 1/);
    expect(metrics).toMatch(/baton_turn_duration_seconds_count 1/);
    expect(metrics).toMatch(/baton_connections 1/);
    expect((await fetch(`${http}/nowhere`)).status).toBe(404);
    await client.close();
  });
});

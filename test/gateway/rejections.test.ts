import { describe, expect, it } from 'vitest';
import type { Agent } from '../../src/index.ts';
import { MemoryStore } from '../../src/runtime/store.ts';
import { FaultStore } from '../../src/testing/index.ts';
import { MAX_METADATA_DEPTH } from '../../src/runtime/validate-input.ts';
import { Client, gatewayPerTest } from './client.ts';

const gateway = gatewayPerTest();

/** An agent whose turns run until the test releases them (or they are aborted). */
function heldAgent() {
  const releases: (() => void)[] = [];
  const agent: Agent = (turn) =>
    new Promise<void>((resolve) => {
      releases.push(resolve);
      turn.signal.addEventListener('abort', () => resolve(), { once: true });
    });
  return { agent, release: () => releases.splice(0).forEach((release) => release()) };
}

/**
 * The one error that names `id`. The gateway answers a frame before it reads the next, so
 * after a ping round trip the answer is here: no waiting for a frame that never comes. No
 * error of this connection may leave its input unnamed.
 */
async function rejectionOf(client: Client, id: string) {
  await client.sync();
  const errors = client.frames.filter((f) => f.event.type === 'error');
  expect(errors.filter((f) => f.event.data.event_id === undefined)).toEqual([]);
  const naming = errors.filter((f) => f.event.data.event_id === id);
  expect(naming).toHaveLength(1);
  return naming[0]!;
}

async function attachOnboarding(url: string) {
  const { client } = await Client.attach(url, { worker_type: 'onboarding' });
  const q1 = await client.type('question_request');
  return { client, question: q1.event.data.questions[0].question as string };
}

describe('C13 an onboarding rejection names the input it rejects (event_id)', () => {
  it('C13: CONVERSATION_ALREADY_COMPLETE, for an input and for a question_response, names each', async () => {
    const { url } = await gateway();
    const { client, question } = await attachOnboarding(url);
    for (const answer of ['I bake bread', 'open a second shop', 'brief']) client.send('input', { content: answer });
    await client.until((f) => f.event.type === 'state' && f.event.data.message === 'onboarding_complete');
    const input = client.send('input', { content: 'one more thing' });
    const response = client.send('question_response', { id: 'q3', answers: { [question]: 'again' } });
    for (const id of [input, response]) {
      const error = await rejectionOf(client, id);
      // Announced to the session's stream, so it is numbered like any session event.
      expect(error.seq).toBeGreaterThan(0);
      expect(error.event.data).toMatchObject({ code: 'CONVERSATION_ALREADY_COMPLETE', event_id: id });
    }
    await client.close();
  });

  it('C13: INVALID_MESSAGE for an answer to a question already answered, and to one that is not next, names each', async () => {
    const { url } = await gateway();
    const { client, question } = await attachOnboarding(url);
    client.send('input', { content: 'I bake bread' });
    await client.until((f) => f.event.type === 'question_request' && f.event.data.id === 'q2');
    const answered = client.send('question_response', { id: 'q1', answers: { [question]: 'again' } });
    const notNext = client.send('question_response', { id: 'q3', answers: { [question]: 'too soon' } });
    expect((await rejectionOf(client, answered)).event.data).toMatchObject({ code: 'INVALID_MESSAGE', message: /already been answered/ });
    expect((await rejectionOf(client, notNext)).event.data).toMatchObject({ code: 'INVALID_MESSAGE', message: /not the next one/ });
    await client.close();
  });

  it('C13: SESSION_TERMINATED for an answer to a terminated onboarding names it', async () => {
    const { url } = await gateway();
    const { client } = await attachOnboarding(url);
    client.send('control', { action: 'terminate' });
    await client.until((f) => f.event.type === 'state' && f.event.data.state === 'terminated');
    const id = client.send('input', { content: 'hello?' });
    expect((await rejectionOf(client, id)).event.data).toMatchObject({ code: 'SESSION_TERMINATED', event_id: id });
    await client.close();
  });
});

describe('C4/C14/C15 every other rejection of an input names it (event_id)', () => {
  it('C4: SESSION_BUSY under busy policy reject names the input', async () => {
    const held = heldAgent();
    const { url } = await gateway({ runtime: { agent: held.agent, busyPolicy: 'reject' } });
    const { client } = await Client.attach(url);
    client.send('input', { content: 'first' });
    await client.type('message.start');
    const id = client.send('input', { content: 'second' });
    expect((await rejectionOf(client, id)).event.data).toMatchObject({ code: 'SESSION_BUSY', event_id: id });
    held.release();
    await client.type('done');
    await client.close();
  });

  it('C4: SESSION_BUSY over the backlog cap names the input, and the command', async () => {
    const { url } = await gateway({ runtime: { backlogCap: 1, debounceMs: 60_000, maxWaitMs: 60_000 } });
    const { client } = await Client.attach(url);
    client.send('input', { content: 'fills the batch' });
    const input = client.send('input', { content: 'one too many' });
    const command = client.send('input', { content: '/status' });
    expect((await rejectionOf(client, input)).event.data).toMatchObject({ code: 'SESSION_BUSY', event_id: input });
    expect((await rejectionOf(client, command)).event.data).toMatchObject({ code: 'SESSION_BUSY', event_id: command });
    await client.close();
  });

  it('C15: RATE_LIMITED names the input and the question_response', async () => {
    const { url } = await gateway({ gateway: { rateLimit: { perSecond: 1, burst: 1 } } });
    const { client } = await Client.attach(url);
    client.send('input', { content: 'allowed' });
    const input = client.send('input', { content: 'too fast' });
    const response = client.send('question_response', { id: 'q1', answers: { q: 'a' } });
    expect((await rejectionOf(client, input)).event.data).toMatchObject({ code: 'RATE_LIMITED', event_id: input });
    expect((await rejectionOf(client, response)).event.data).toMatchObject({ code: 'RATE_LIMITED', event_id: response });
    await client.close();
  });

  it('C14: an input or answer sent while the gateway shuts down is refused by name (GATEWAY_OVERLOAD)', async () => {
    const held = heldAgent();
    const { url, gateway: gw } = await gateway({ runtime: { agent: held.agent } });
    const { client } = await Client.attach(url);
    client.send('input', { content: 'keeps the drain waiting' });
    await client.type('message.start');
    const closed = gw.close();
    await client.until((f) => f.event.type === 'control' && f.event.data.action === 'reconnect');
    const input = client.send('input', { content: 'too late' });
    const response = client.send('question_response', { id: 'q1', answers: { q: 'a' } });
    expect((await rejectionOf(client, input)).event.data).toMatchObject({ code: 'GATEWAY_OVERLOAD', event_id: input });
    expect((await rejectionOf(client, response)).event.data).toMatchObject({ code: 'GATEWAY_OVERLOAD', event_id: response });
    held.release();
    await closed;
  });

  it('C11: SESSION_TERMINATED names the input sent to a terminated session', async () => {
    const { url } = await gateway();
    const { client } = await Client.attach(url);
    client.send('control', { action: 'terminate' });
    await client.until((f) => f.event.type === 'state' && f.event.data.state === 'terminated');
    const id = client.send('input', { content: 'anyone?' });
    expect((await rejectionOf(client, id)).event.data).toMatchObject({ code: 'SESSION_TERMINATED', event_id: id });
    await client.close();
  });

  const deep = (levels: number): Record<string, unknown> => (levels <= 1 ? { leaf: true } : { next: deep(levels - 1) });

  it.each([
    ['content that is not a string', 'input', { content: 42 }, /content/],
    ['an unknown command', 'input', { content: '/fly' }, /unknown command/],
    ['an answer to a session that asks no questions', 'question_response', { id: 'q1', answers: { q: 'a' } }, /asks no questions/],
    [`metadata nested deeper than ${MAX_METADATA_DEPTH} levels`, 'input', { content: 'x', metadata: deep(MAX_METADATA_DEPTH + 1) }, /metadata must not nest/],
  ])('C15: INVALID_MESSAGE for %s names the input', async (_name, type, data, message) => {
    const { url } = await gateway();
    const { client } = await Client.attach(url);
    const id = client.send(type, data);
    expect((await rejectionOf(client, id)).event.data).toMatchObject({ code: 'INVALID_MESSAGE', event_id: id, message });
    await client.close();
  });

  it(`C15: metadata ${MAX_METADATA_DEPTH} levels deep is accepted`, async () => {
    const { url } = await gateway();
    const { client } = await Client.attach(url);
    const id = client.send('input', { content: 'x', metadata: deep(MAX_METADATA_DEPTH) });
    expect((await client.type('input.ack')).event.data.client_message_id).toBe(id);
    await client.close();
  });

  it('C10: the same id with different content is refused by name (INVALID_MESSAGE)', async () => {
    const { url } = await gateway();
    const { client } = await Client.attach(url);
    const id = client.send('input', { content: 'once' });
    client.send('input', { content: 'other content' }, id);
    expect((await rejectionOf(client, id)).event.data).toMatchObject({ code: 'INVALID_MESSAGE', message: /different content/ });
    await client.close();
  });

  it('C16: an input the store cannot take is refused with INTERNAL_ERROR naming it, before the close (1013)', async () => {
    const store = new FaultStore(new MemoryStore());
    const { url } = await gateway({ runtime: { store, onError: () => {} } });
    const { client } = await Client.attach(url);
    store.failing = new Error('disk full');
    const id = client.send('input', { content: 'lost?' });
    expect(await client.closed).toEqual({ code: 1013, reason: 'store unavailable' });
    console.log(JSON.stringify(client.frames.map((f) => [f.seq, f.event.type, f.event.data])));
    expect(client.frames.filter((f) => f.event.type === 'input.ack')).toEqual([]);
    const errors = client.frames.filter((f) => f.event.type === 'error').map((f) => f.event.data);
    expect(errors).toEqual([
      { code: 'INTERNAL_ERROR', message: expect.any(String), event_id: id },
      { code: 'INTERNAL_ERROR', message: expect.any(String) },
    ]);
  });
});

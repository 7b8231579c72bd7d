import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RuntimeOptions } from '../src/index.ts';
import { SqliteStore } from '../src/sqlite.ts';
import { FakeOpenAI, openaiRuntime, words } from './fake-openai.ts';

/**
 * What a request gets depends on its last user message: `#429` and `#500` fail, `#slow`
 * streams 200 chunks 10 ms apart; anything else streams its words back.
 */
const server = new FakeOpenAI(({ messages }) => {
  const last = [...messages].reverse().find((m) => m.role === 'user')?.content ?? '';
  if (last.includes('#429')) return { status: 429, message: 'Rate limit reached' };
  if (last.includes('#500')) return { status: 500, message: 'Upstream exploded' };
  if (last.includes('#slow')) return { deltas: Array.from({ length: 200 }, (_, i) => ({ content: `t${i} ` })), chunkMs: 10 };
  return { deltas: words(last) };
});
const requests = server.requests;
let baseURL: string;
const dir = mkdtempSync(join(tmpdir(), 'baton-openai-'));

beforeAll(async () => {
  baseURL = await server.start();
});
afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

const runtimeWith = (options: Partial<RuntimeOptions> = {}) => openaiRuntime(baseURL, options);

describe('OpenAI-compatible agent', () => {
  it('streams each chunk as a message.delta and records the turn in the transcript', async () => {
    const t = runtimeWith();
    const done = t.done('s1');
    expect(await t.runtime.send('s1', { id: 'm1', content: 'hello streaming world' })).toMatchObject({ status: 'accepted' });
    expect((await done).data).toMatchObject({ success: true, input_ids: ['m1'] });
    expect(t.text('s1')).toBe('hello streaming world');
    expect(t.events.filter((e) => e.type === 'message.delta')).toHaveLength(3);
    const second = t.done('s1');
    await t.runtime.send('s1', { id: 'm2', content: 'again' });
    await second;
    expect(requests.at(-1)?.messages).toEqual([
      { role: 'user', content: 'hello streaming world' },
      { role: 'assistant', content: 'hello streaming world' },
      { role: 'user', content: 'again' },
    ]);
    await t.runtime.shutdown();
  });

  it('cancels the HTTP request when the turn is stopped, and marks the reply interrupted', async () => {
    const t = runtimeWith();
    const streaming = t.next((e) => e.type === 'message.delta' && e.sessionId === 's2');
    await t.runtime.send('s2', { id: 'm1', content: 'go #slow' });
    await streaming;
    const served = requests.at(-1)!;
    const done = t.done('s2');
    await t.runtime.send('s2', { id: 'c1', content: '/stop' });
    expect((await done).data).toMatchObject({ success: false, reason: 'stopped_by_user' });
    const after = t.done('s2');
    await t.runtime.send('s2', { id: 'm2', content: 'after' });
    await after;
    expect(served.closedEarly).toBe(true);
    const history = requests.at(-1)!.messages;
    expect(history[0]).toEqual({ role: 'user', content: 'go #slow' });
    expect(history[1]?.content).toMatch(/^t0 [\s\S]*\[reply interrupted\]$/);
    await t.runtime.shutdown();
  });

  it.each([
    ['#429', 'RATE_LIMITED', /HTTP 429/],
    ['#500', 'WORKER_CRASH', /HTTP 500/],
  ])('turns %s into a typed turn error (%s) and goes on', async (marker, code, message) => {
    const t = runtimeWith();
    const error = t.next((e) => e.type === 'error' && e.sessionId === `e${marker}`);
    const done = t.done(`e${marker}`);
    await t.runtime.send(`e${marker}`, { id: 'm1', content: `please ${marker}` });
    expect((await error).data).toMatchObject({ code, message: expect.stringMatching(message) });
    expect((await done).data).toMatchObject({ success: false, reason: 'failed' });
    const next = t.done(`e${marker}`);
    await t.runtime.send(`e${marker}`, { id: 'm2', content: 'fine now' });
    expect((await next).data).toMatchObject({ success: true });
    expect(requests.at(-1)?.messages.at(-2)?.content).toMatch(/\[reply failed\]$/);
    await t.runtime.shutdown();
  });

  it('sends only the last historyWindow transcript entries', async () => {
    const t = runtimeWith({ historyWindow: 2 });
    for (const [i, word] of ['one', 'two', 'three'].entries()) {
      const done = t.done('s4');
      await t.runtime.send('s4', { id: `m${i}`, content: word });
      await done;
    }
    expect(requests.at(-1)?.messages).toEqual([
      { role: 'user', content: 'two' },
      { role: 'assistant', content: 'two' },
      { role: 'user', content: 'three' },
    ]);
    await t.runtime.shutdown();
  });

  it('keeps the transcript across a restart', async () => {
    const path = join(dir, 'transcript.db');
    const before = runtimeWith({ store: new SqliteStore(path) });
    const first = before.done('s5');
    await before.runtime.send('s5', { id: 'm1', content: 'remember me' });
    await first;
    await before.runtime.shutdown();
    const after = runtimeWith({ store: new SqliteStore(path) });
    const second = after.done('s5');
    await after.runtime.send('s5', { id: 'm2', content: 'do you?' });
    await second;
    expect(requests.at(-1)?.messages.slice(0, 2)).toEqual([
      { role: 'user', content: 'remember me' },
      { role: 'assistant', content: 'remember me' },
    ]);
    await after.runtime.shutdown();
  });

  it('steers: an input sent while the reply streams goes into the next request of the same turn', async () => {
    const t = runtimeWith({ busyPolicy: 'steer' });
    const streaming = t.next((e) => e.type === 'message.delta' && e.sessionId === 's6');
    await t.runtime.send('s6', { id: 'm1', content: 'tell me #slow' });
    await streaming;
    const finished = t.done('s6');
    expect((await t.runtime.send('s6', { id: 'm2', content: 'and shorter' })).mode).toBe('injected');
    const done = await finished;
    expect(done.data).toMatchObject({ success: true, input_ids: ['m1', 'm2'] });
    const last = requests.at(-1)!.messages;
    expect(last.map((m) => m.role)).toEqual(['user', 'assistant', 'user']);
    expect(last[2]).toEqual({ role: 'user', content: 'and shorter' });
    await t.runtime.shutdown();
  });
});

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { firstValueFrom, filter } from 'rxjs';
import { createRuntime, type RuntimeOptions, type SessionEvent } from '../src/index.ts';
import { openaiAgent } from '../src/openai.ts';
import { SqliteStore } from '../src/sqlite.ts';

/**
 * A local stand-in for an OpenAI-compatible server: chat completions streamed as
 * server-sent events in the API's format. What a request gets depends on its last user
 * message: `#429` and `#500` fail, `#slow` streams 200 chunks 10 ms apart; anything else
 * streams its words back.
 */
interface Seen {
  messages: { role: string; content: string }[];
  closedEarly: boolean;
}
const requests: Seen[] = [];
let server: Server;
let baseURL: string;
const dir = mkdtempSync(join(tmpdir(), 'baton-openai-'));

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const { messages } = JSON.parse(body) as { messages: Seen['messages'] };
      const seen: Seen = { messages, closedEarly: false };
      requests.push(seen);
      const last = [...messages].reverse().find((m) => m.role === 'user')?.content ?? '';
      if (last.includes('#429') || last.includes('#500')) {
        const status = last.includes('#429') ? 429 : 500;
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: status === 429 ? 'Rate limit reached' : 'Upstream exploded', type: 'server_error' } }));
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const chunks = last.includes('#slow') ? Array.from({ length: 200 }, (_, i) => `t${i} `) : last.split(' ').map((w, i) => (i ? ` ${w}` : w));
      let i = 0;
      let finished = false;
      res.on('close', () => {
        if (!finished) seen.closedEarly = true;
      });
      const tick = () => {
        if (res.destroyed) return;
        if (i === chunks.length) {
          finished = true;
          res.end('data: [DONE]\n\n');
          return;
        }
        const chunk = { id: 'c1', object: 'chat.completion.chunk', created: 0, model: 'fake', choices: [{ index: 0, delta: { content: chunks[i++] }, finish_reason: null }] };
        res.write(`data: ${JSON.stringify(chunk)}\n\n`);
        setTimeout(tick, last.includes('#slow') ? 10 : 0);
      };
      tick();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseURL = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

function runtimeWith(options: Partial<RuntimeOptions> = {}) {
  const runtime = createRuntime({ agent: openaiAgent({ model: 'fake', baseURL, apiKey: 'test' }), debounceMs: 0, ...options });
  const events: SessionEvent[] = [];
  runtime.events$.subscribe((e) => events.push(e));
  const next = (match: (e: SessionEvent) => boolean) => firstValueFrom(runtime.events$.pipe(filter(match)));
  const done = (sessionId: string) => next((e) => e.type === 'done' && e.sessionId === sessionId);
  const text = (sessionId: string) =>
    events.flatMap((e) => (e.type === 'message.delta' && e.sessionId === sessionId ? [e.data.content] : [])).join('');
  return { runtime, events, next, done, text };
}

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

import { Readable, Writable } from 'node:stream';
import { filter, firstValueFrom } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { chat } from '../../src/chat.ts';
import { gatewayPerTest } from './client.ts';

const gateway = gatewayPerTest();

/** `chat()` with piped lines that end, as `printf … | npm run chat` gives it; resolves with its exit code and what it printed. */
async function pipe(url: string, lines: string[], options: { sessionId?: string; onboarding?: boolean } = {}) {
  let printed = '';
  const output = new Writable({
    write(chunk, _encoding, callback) {
      printed += String(chunk);
      callback();
    },
  });
  const input = Readable.from(lines.map((line) => `${line}\n`));
  const code = await chat({ url, onboarding: options.onboarding ?? false, ...(options.sessionId && { sessionId: options.sessionId }), input, output });
  return { code, printed };
}

// A hang here is the bug: chat() never resolves, and the test times out.
describe('chat client: at end of input it leaves once every input it sent is answered (C13, C15)', { timeout: 10_000 }, () => {
  it('C13: exits 0 after CONVERSATION_ALREADY_COMPLETE, which names the input it rejects', async () => {
    const { runtime, url } = await gateway();
    const complete = firstValueFrom(runtime.eventsOf('o').pipe(filter((e) => e.type === 'state' && e.data.message === 'onboarding_complete')));
    await runtime.open('o', { kind: 'onboarding' });
    await runtime.control('o', 'start');
    const receipts = await Promise.all(['I bake bread', 'open a second shop', 'brief'].map((content, i) => runtime.send('o', { id: `a${i}`, content })));
    expect(receipts.map((r) => r.status)).toEqual(['accepted', 'accepted', 'accepted']);
    await complete;
    const { code, printed } = await pipe(url, ['one more thing', 'and another'], { sessionId: 'o', onboarding: true });
    expect(code).toBe(0);
    expect(printed.match(/\[error CONVERSATION_ALREADY_COMPLETE/g)).toHaveLength(2);
  });

  it('C13: answers the three onboarding questions and exits once the last is reflected on', async () => {
    const { url } = await gateway();
    const { code, printed } = await pipe(url, ['I bake bread', 'open a second shop', 'brief'], { onboarding: true });
    expect(code).toBe(0);
    expect(printed).toMatch(/\[terminated: onboarding_complete\]/);
    expect(printed.match(/^< /gm)).toHaveLength(3);
  });

  it('waits for the reply to a piped line before it exits', async () => {
    const { url } = await gateway();
    const { code, printed } = await pipe(url, ['hi']);
    expect(code).toBe(0);
    expect(printed).toMatch(/< echo: hi\n/);
  });

  it('C19: shows a tool call and its result', async () => {
    const { url } = await gateway();
    const { code, printed } = await pipe(url, ['tool hi']);
    expect(code).toBe(0);
    expect(printed).toMatch(/\[tool call_1_1: echo_upper\(\{"text":"hi"\}\)\]/);
    expect(printed).toMatch(/\[tool call_1_1 ok: "HI"\]/);
    expect(printed).toMatch(/echo_upper: HI/);
  });

  it('C15: exits after a rejection naming its input (RATE_LIMITED)', async () => {
    const { url } = await gateway({ gateway: { rateLimit: { perSecond: 0.001, burst: 1 } } });
    const { code, printed } = await pipe(url, ['first', 'second']);
    expect(code).toBe(0);
    // The error may come while the reply streams: look for each, not for their layout.
    expect(printed).toMatch(/echo: first/);
    expect(printed).toMatch(/\[error RATE_LIMITED/);
  });

  it('C6: owes /stop no answer of its own: exits once the input before it is done', async () => {
    const { url } = await gateway();
    const words = Array.from({ length: 200 }, (_, i) => `w${i}`).join(' ');
    const { code, printed } = await pipe(url, [words, '/stop']);
    expect(code).toBe(0);
    expect(printed).toMatch(/disconnected: 1000/);
  });
});

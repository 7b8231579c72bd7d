/**
 * The chat client's approval prompts (C19) without a socket: what it asks, what it sends,
 * what it takes back. The round trip over a real gateway is in test/gateway/chat.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { PermissionPrompts, parseAnswer } from '../src/chat-permissions.ts';

function prompts() {
  const printed: string[] = [];
  const sent: { frame: string; id: string; allowed: boolean; reason?: string }[] = [];
  let asked = '';
  const prompts = new PermissionPrompts({
    line: (text) => printed.push(text),
    ask: (question) => (asked = question),
    unask: () => (asked = ''),
    respond: (data) => {
      const frame = `frame-${sent.length + 1}`;
      sent.push({ frame, ...data });
      return frame;
    },
    now: () => 1_000_000,
  });
  return { prompts, printed, sent, asked: () => asked };
}
const request = (id: string) => ({ id, tool_name: 'echo_upper', input: { text: 'hi' }, description: 'Upper case', expires_at: 1_000_000 + 90_000 });

describe('parseAnswer (C19)', () => {
  it.each([
    ['y', { allowed: true }],
    ['YES', { allowed: true }],
    ['', { allowed: false }],
    ['n', { allowed: false }],
    ['no  too risky ', { allowed: false, reason: 'too risky' }],
    ['maybe later', { allowed: false, reason: 'maybe later' }],
    ['yeah', { allowed: false, reason: 'yeah' }],
    ['y  fine by me', { allowed: true, reason: 'fine by me' }],
  ])('%j → %j', (text, answer) => {
    expect(parseAnswer(text)).toEqual(answer);
  });
});

describe('chat permission prompts (C19)', () => {
  it('asks one request at a time, oldest first; each answer goes to the request on screen', () => {
    const p = prompts();
    p.prompts.request(request('call_1_1'));
    p.prompts.request(request('call_1_2'));
    expect(p.printed).toEqual(['[permission call_1_1: echo_upper({"text":"hi"}) — Upper case; expires ' + new Date(1_090_000).toLocaleTimeString() + ' (in 90 s)]']);
    expect(p.asked()).toBe('allow call_1_1? [y/N] ');
    expect(p.prompts.answer('y')).toBe(true);
    expect(p.asked()).toBe('allow call_1_2? [y/N] ');
    expect(p.prompts.answer('n no')).toBe(true);
    expect(p.asked()).toBe('');
    expect(p.sent.map(({ id, allowed, reason }) => ({ id, allowed, reason }))).toEqual([
      { id: 'call_1_1', allowed: true, reason: undefined },
      { id: 'call_1_2', allowed: false, reason: 'no' },
    ]);
    expect(p.prompts.answer('hello')).toBe(false); // nothing asked: an ordinary message
  });

  it('a line starting with / stays a command while a request waits', () => {
    const p = prompts();
    p.prompts.request(request('call_1_1'));
    expect(p.prompts.answer('/stop')).toBe(false);
    expect(p.sent).toEqual([]);
    expect(p.asked()).toBe('allow call_1_1? [y/N] ');
  });

  it('a request settled by its tool_result is taken back and never answered; the next one is asked', () => {
    const p = prompts();
    p.prompts.request(request('call_1_1'));
    p.prompts.request(request('call_1_2'));
    p.prompts.result({ id: 'call_1_2', status: 'cancelled' }); // never shown: nothing said
    p.prompts.result({ id: 'call_1_1', status: 'denied', error: { code: 'approval_timeout' } });
    expect(p.printed.at(-1)).toBe('[permission call_1_1 closed without your answer (denied: approval_timeout); a line typed now is a message]');
    expect(p.asked()).toBe('');
    expect(p.prompts.answer('y')).toBe(false);
    expect(p.sent).toEqual([]);
  });

  it('an answer the gateway refuses (it crossed the result on the wire) is shown as a refused answer, naming the call', () => {
    const p = prompts();
    p.prompts.request(request('call_1_1'));
    p.prompts.answer('y');
    expect(p.prompts.refused({ code: 'INVALID_MESSAGE', message: 'no permission request call_1_1 waits', event_id: 'frame-1' })).toBe(true);
    expect(p.printed.at(-1)).toBe('[your answer to call_1_1 was refused: INVALID_MESSAGE — no permission request call_1_1 waits]');
    expect(p.prompts.refused({ code: 'RATE_LIMITED', message: 'x', event_id: 'some-input' })).toBe(false);
  });

  it('at end of input, what is asked now or later is denied at once', () => {
    const p = prompts();
    p.prompts.request(request('call_1_1'));
    p.prompts.endInput();
    p.prompts.request(request('call_2_1'));
    expect(p.sent.map(({ id, allowed }) => ({ id, allowed }))).toEqual([
      { id: 'call_1_1', allowed: false },
      { id: 'call_2_1', allowed: false },
    ]);
    expect(p.asked()).toBe('');
  });
});

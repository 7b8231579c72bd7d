/** Edges found in the gateway/protocol review; each misbehaved before. */
import { describe, expect, it } from 'vitest';
import { createActor } from 'xstate';
import { connectionMachine, InvalidMessageError, type AnalyzerInput, type Analysis } from '../src/index.ts';
import { settle, testRuntime } from './helpers.ts';

describe('review edges', () => {
  it('C13: an answer labelled for q2 is not applied to q1 when q1 is asked again after a failure', async () => {
    const calls: { input: AnalyzerInput; resolve(a: Analysis): void; reject(e: unknown): void }[] = [];
    const analyzer = (input: AnalyzerInput) => new Promise<Analysis>((resolve, reject) => calls.push({ input, resolve, reject }));
    const t = testRuntime({ agent: async () => undefined, onboarding: { analyzer } });
    await t.runtime.open('o', { kind: 'onboarding' });
    await t.runtime.control('o', 'start');
    const receipts = await Promise.all([
      t.runtime.send('o', { id: 'a1', content: 'my role' }),
      t.runtime.respond('o', { id: 'a2', questionId: 'q2', answers: { q: 'my goal' } }),
    ]);
    expect(receipts.map((r) => r.status)).toEqual(['accepted', 'accepted']);
    await settle();
    calls[0]!.reject(new Error('down'));
    await settle();
    expect(calls).toHaveLength(1); // q1 is asked again; the q2 answer keeps waiting for q2
    await t.runtime.send('o', { id: 'a3', content: 'my role, again' });
    await settle();
    calls[1]!.resolve({ reflection: 'ok' });
    await settle();
    expect(calls.map((c) => [c.input.questionId, c.input.answer])).toEqual([
      ['q1', 'my role'],
      ['q1', 'my role, again'],
      ['q2', 'my goal'],
    ]);
  });

  it('C15: control a session cannot take is a typed error, not silence', async () => {
    const t = testRuntime({ agent: async () => undefined });
    await t.runtime.open('o', { kind: 'onboarding' });
    const control = t.runtime.control('o', 'stop');
    await expect(control).rejects.toBeInstanceOf(InvalidMessageError);
    await expect(control).rejects.toThrow(expect.objectContaining({ code: 'INVALID_MESSAGE' }));
  });

  it('C15: commands count against the backlog cap', async () => {
    const t = testRuntime({ agent: async () => undefined, backlogCap: 2, commandLane: 'ordered', debounceMs: 0, commands: { hang: () => new Promise<never>(() => {}) } });
    await t.runtime.send('s', { id: 'c0', content: '/hang' });
    await settle();
    const [c1, c2, c3, c4] = await Promise.all([
      t.runtime.send('s', { id: 'c1', content: '/status' }),
      t.runtime.send('s', { id: 'c2', content: '/status' }),
      t.runtime.send('s', { id: 'c3', content: '/status' }),
      t.runtime.send('s', { id: 'c4', content: '/stop' }),
    ]);
    expect(c1!.status).toBe('accepted');
    expect(c2!.status).toBe('accepted');
    expect(c3).toMatchObject({ status: 'rejected', code: 'SESSION_BUSY' });
    expect(c4!.status).toBe('accepted');
  });

  it('C9: a handshake cut short still answers with init_ack and 1008', () => {
    const actor = createActor(connectionMachine, { input: { initTimeoutMs: 1000 } });
    const effects: { type: string }[] = [];
    actor.on('*', (e) => effects.push(e));
    actor.start();
    actor.send({ type: 'init' });
    actor.send({ type: 'close' });
    expect(effects).toEqual([
      { type: 'write', frame: expect.objectContaining({ type: 'init_ack', data: expect.objectContaining({ state: 'deleted', code: 'GATEWAY_OVERLOAD' }) }) },
      { type: 'close', code: 1008, reason: 'GATEWAY_OVERLOAD' },
    ]);
  });
});

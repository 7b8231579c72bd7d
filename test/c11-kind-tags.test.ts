import { describe, expect, it } from 'vitest';
import { emit, setup } from 'xstate';
import { MemoryStore, SessionTags, type SessionKind } from '../src/index.ts';
import { settle, testRuntime } from './helpers.ts';

// The README's rating kind: asks for a rating from 1 to 5, once. `tagged: false` leaves the
// tags out, as every custom kind had to before the runtime read them.
function ratingMachine(tagged: boolean) {
  return setup({
    types: { events: {} as { type: 'input'; input: { id: string; content: string } } },
    guards: { isRating: ({ event }) => /^[1-5]$/.test(event.input.content.trim()) },
    actions: {
      accept: emit({ type: 'receipt', receipt: { status: 'accepted', mode: 'primary' } }),
      refuse: emit({ type: 'receipt', receipt: { status: 'rejected', code: 'INVALID_MESSAGE', message: 'a rating is 1 to 5' } }),
      thank: emit(({ event }) => ({
        type: 'output',
        event: { type: 'message', data: { id: `${event.input.id}:thanks`, role: 'assistant', content: 'Thanks!' } },
      })),
    },
  }).createMachine({
    id: 'rating',
    initial: 'asking',
    states: {
      asking: {
        tags: tagged ? ['waiting-for-user', 'quiescent'] : [],
        on: { input: [{ guard: 'isRating', target: 'rated', actions: ['accept', 'thank'] }, { actions: 'refuse' }] },
      },
      rated: { tags: tagged ? ['quiescent'] : [] },
    },
  });
}

const rating: SessionKind = { machine: ratingMachine(true), input: () => ({}) };
const untagged: SessionKind = { machine: ratingMachine(false), input: () => ({}) };

// A kind that thinks for 5 s (a timer on the runtime's clock) before it answers.
const thinkingMachine = setup({
  types: { events: {} as { type: 'input'; input: { id: string; content: string } } },
  actions: {
    accept: emit({ type: 'receipt', receipt: { status: 'accepted', mode: 'primary' } }),
    answer: emit({ type: 'output', event: { type: 'message', data: { id: 'answer', role: 'assistant', content: '42' } } }),
  },
}).createMachine({
  id: 'thinking',
  initial: 'ready',
  states: {
    ready: { tags: ['quiescent'], on: { input: { target: 'thinking', actions: 'accept' } } },
    thinking: { tags: ['busy'], after: { 5000: { target: 'ready', actions: 'answer' } } },
  },
});
const thinking: SessionKind = { machine: thinkingMachine, input: () => ({}) };

const agent = async () => undefined;

describe('C11 passivation of custom kinds, read from state tags', () => {
  it('passivates a custom kind tagged quiescent after idleTimeoutMs, and its next input brings it back', async () => {
    const t = testRuntime({ agent, kinds: { rating }, idleTimeoutMs: 1000 });
    await t.runtime.open('r', { kind: 'rating' });
    await t.advance(2000);
    expect(t.runtime.sessionIds()).toEqual([]);
    expect(await t.runtime.status('r')).toMatchObject({ kind: 'rating', state: 'passivated', busy: false, waitingForUser: true });

    expect(await t.runtime.send('r', { id: 'm1', content: '5' })).toMatchObject({ status: 'accepted', mode: 'primary' });
    await settle();
    expect(await t.runtime.status('r')).toMatchObject({ kind: 'rating', state: 'rated', busy: false, waitingForUser: false });
    expect(t.of('r').map((e) => [e.seq, e.type])).toEqual([[1, 'message']]);

    // Rated is quiescent too: passivated again, and still answers (idempotency kept, C10).
    await t.advance(2000);
    expect((await t.runtime.status('r'))?.state).toBe('passivated');
    expect((await t.runtime.send('r', { id: 'm1', content: '5' })).status).toBe('duplicate');
  });

  it('passivates the least recently active custom sessions tagged quiescent under maxLiveSessions, and they come back', async () => {
    const t = testRuntime({ agent, kinds: { rating }, maxLiveSessions: 2, idleTimeoutMs: 1000 });
    for (const id of ['a', 'b', 'c', 'd']) {
      await t.runtime.open(id, { kind: 'rating' });
      await t.advance(10);
      expect(t.runtime.sessionIds().length).toBeLessThanOrEqual(2);
    }
    expect((await t.runtime.status('a'))?.state).toBe('passivated');
    expect((await t.runtime.status('d'))?.state).toBe('asking');
    expect((await t.runtime.send('a', { id: 'm1', content: '4' })).status).toBe('accepted');
    await settle();
    expect((await t.runtime.status('a'))?.state).toBe('rated');
    expect(t.of('a').map((e) => e.type)).toEqual(['message']);
  });

  it('never passivates a custom kind without the quiescent tag, by idle timeout or by cap', async () => {
    const store = new MemoryStore();
    const t = testRuntime({ agent, kinds: { rating, untagged }, maxLiveSessions: 2, idleTimeoutMs: 1000, store });
    await t.runtime.open('u1', { kind: 'untagged' });
    await t.runtime.open('u2', { kind: 'untagged' });
    await t.runtime.open('tagged', { kind: 'rating' });
    await t.advance(5000);
    expect(t.runtime.sessionIds().sort()).toEqual(['u1', 'u2']);
    expect(await t.runtime.status('u1')).toMatchObject({ state: 'asking', busy: false, waitingForUser: false });
    expect((await t.runtime.status('tagged'))?.state).toBe('passivated');
  });

  it('never passivates a custom kind while its state is tagged busy, and reports it busy', async () => {
    const t = testRuntime({ agent, kinds: { thinking }, idleTimeoutMs: 1000 });
    await t.runtime.send('k', { id: 'm1', content: 'the question' }, { kind: 'thinking' });
    await t.advance(3000);
    expect(await t.runtime.status('k')).toMatchObject({ state: 'thinking', busy: true });
    await t.advance(2000);
    expect(t.of('k').map((e) => e.type)).toEqual(['message']);
    expect(await t.runtime.status('k')).toMatchObject({ state: 'ready', busy: false });
    await t.advance(2000);
    expect((await t.runtime.status('k'))?.state).toBe('passivated');
  });

  it('reports the built-in kinds from the same tags: onboarding waits for the user, and is busy while it analyzes', async () => {
    let release: () => void = () => {};
    const analyzer = () => new Promise<{ reflection: string }>((resolve) => (release = () => resolve({ reflection: 'noted' })));
    const t = testRuntime({ agent, onboarding: { analyzer }, idleTimeoutMs: 1000 });
    await t.runtime.open('o', { kind: 'onboarding' });
    await t.runtime.control('o', 'start');
    await settle();
    expect(await t.runtime.status('o')).toMatchObject({ state: 'idle', busy: false, waitingForUser: true });
    await t.runtime.respond('o', { id: 'a1', questionId: 'q1', answers: { x: 'I write compilers' } });
    await t.advance(5000);
    expect(await t.runtime.status('o')).toMatchObject({ state: 'busy', busy: true, waitingForUser: false });
    release();
    await settle();
    await t.advance(2000);
    expect(await t.runtime.status('o')).toMatchObject({ state: 'passivated', busy: false, waitingForUser: true });
  });

  it('names the protocol tags', () => {
    expect(SessionTags).toEqual({ quiescent: 'quiescent', busy: 'busy', waitingForUser: 'waiting-for-user' });
  });
});

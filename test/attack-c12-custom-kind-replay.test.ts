/**
 * C11/C12 for custom kinds. An input a custom kind accepts enters the durable inbox, and only
 * a `done` naming it ever takes it out again (session-host `#report`). A custom kind — the
 * README's `rating` kind, say — has no turns and emits no `done`, so its inputs stay
 * "pending" for ever. Every activation (after passivation, or at every restart, which also
 * activates every such session through `sessionsWithPending`) then offers them to the
 * restored machine again (`start()` → `offerStored`): an input processed once is processed
 * again at every activation, or, if the machine no longer takes it, reported as an `error`
 * plus a `done{cancelled_input_ids}` for an input that was accepted and handled long ago.
 * (Such sessions are also never pruned: retention skips sessions with waiting inputs.)
 */
import { describe, expect, it } from 'vitest';
import { assign, emit, setup } from 'xstate';
import { type SessionKind } from '../src/index.ts';
import { SqliteStore } from '../src/sqlite.ts';
import { testRuntime } from './helpers.ts';

/** A kind that accepts every input and says how many it has seen. */
const counter = setup({
  types: { context: {} as { n: number }, events: {} as { type: 'input'; input: { id: string; content: string } } },
  actions: {
    accept: emit({ type: 'receipt', receipt: { status: 'accepted', mode: 'primary' } }),
    count: assign({ n: ({ context }) => context.n + 1 }),
    say: emit(({ context, event }) => ({
      type: 'output',
      event: { type: 'message', data: { id: `${event.input.id}:n`, role: 'assistant', content: `#${context.n}` } },
    })),
  },
}).createMachine({ context: { n: 0 }, initial: 'counting', states: { counting: { tags: ['quiescent'], on: { input: { actions: ['accept', 'count', 'say'] } } } } });

/** The README's rating kind. */
const rating = setup({
  types: { events: {} as { type: 'input'; input: { id: string; content: string } } },
  guards: { isRating: ({ event }) => /^[1-5]$/.test(event.input.content.trim()) },
  actions: {
    accept: emit({ type: 'receipt', receipt: { status: 'accepted', mode: 'primary' } }),
    refuse: emit({ type: 'receipt', receipt: { status: 'rejected', code: 'INVALID_MESSAGE', message: 'a rating is 1 to 5' } }),
    thank: emit(({ event }) => ({ type: 'output', event: { type: 'message', data: { id: `${event.input.id}:thanks`, role: 'assistant', content: 'Thanks!' } } })),
  },
}).createMachine({
  initial: 'asking',
  states: {
    asking: { tags: ['waiting-for-user', 'quiescent'], on: { input: [{ guard: 'isRating', target: 'rated', actions: ['accept', 'thank'] }, { actions: 'refuse' }] } },
    rated: { tags: ['quiescent'] },
  },
});

function runtimeWith(kinds: Record<string, SessionKind>, store = new SqliteStore(':memory:')) {
  return testRuntime({ agent: async () => 'ok', store, kinds, idleTimeoutMs: 1000, onError: () => {} });
}

describe('C12 a custom kind processes each input once, across passivation', () => {
  it('an input handled before passivation is not handled again when the session re-activates', async () => {
    const t = runtimeWith({ counter: { machine: counter, input: () => ({}) } });
    await t.runtime.send('c', { id: 'm1', content: 'a' }, { kind: 'counter' });
    await t.runtime.send('c', { id: 'm2', content: 'b' }, { kind: 'counter' });
    await t.advance(1000);
    await t.advance(1000);
    expect((await t.runtime.status('c'))?.state).toBe('passivated');
    await t.runtime.send('c', { id: 'm3', content: 'c' }, { kind: 'counter' });
    const said = t.of('c').map((e) => (e.data as { id: string; content: string }).id + ' ' + (e.data as { content: string }).content);
    expect(said).toEqual(['m1:n #1', 'm2:n #2', 'm3:n #3']);
  });

  it("the README's rating session reports nothing about its old input when it re-activates", async () => {
    const t = runtimeWith({ rating: { machine: rating, input: () => ({}) } });
    expect((await t.runtime.send('survey-1', { id: 'm1', content: '5' }, { kind: 'rating' })).status).toBe('accepted');
    await t.advance(1000);
    await t.advance(1000);
    expect((await t.runtime.status('survey-1'))?.state).toBe('passivated');
    await t.runtime.open('survey-1', { kind: 'rating' }); // an attach re-activates it
    expect(t.of('survey-1').map((e) => e.type)).toEqual(['message']);
  });

  it('a restart does not re-activate and replay every custom session that ever took an input', async () => {
    const store = new SqliteStore(':memory:');
    const first = runtimeWith({ counter: { machine: counter, input: () => ({}) } }, store);
    await first.runtime.send('c', { id: 'm1', content: 'a' }, { kind: 'counter' });
    // The same store, a new runtime (as after a restart): nothing waits in the session.
    const second = runtimeWith({ counter: { machine: counter, input: () => ({}) } }, store);
    await second.advance(0);
    expect(second.runtime.sessionIds()).toEqual([]);
    expect(second.of('c')).toEqual([]);
  });
});

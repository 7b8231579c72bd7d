import { describe, expect, it } from 'vitest';
import { emit, setup } from 'xstate';
import type { SessionKind } from '../src/index.ts';
import { settle, testRuntime } from './helpers.ts';

// The README's example of a kind of one's own: asks for a rating from 1 to 5, once.
const ratingMachine = setup({
  types: {
    events: {} as { type: 'input'; input: { id: string; content: string } },
  },
  guards: {
    isRating: ({ event }) => /^[1-5]$/.test(event.input.content.trim()),
  },
  actions: {
    accept: emit({ type: 'receipt', receipt: { status: 'accepted', mode: 'primary' } }),
    refuse: emit({ type: 'receipt', receipt: { status: 'rejected', code: 'INVALID_MESSAGE', message: 'a rating is 1 to 5' } }),
    thank: emit(({ event }) => ({
      type: 'output',
      event: { type: 'message', data: { id: `${event.input.id}:thanks`, role: 'assistant', content: `Thanks for the ${event.input.content.trim()}!` } },
    })),
  },
}).createMachine({
  id: 'rating',
  initial: 'asking',
  states: {
    asking: {
      tags: ['waiting-for-user', 'quiescent'],
      on: { input: [{ guard: 'isRating', target: 'rated', actions: ['accept', 'thank'] }, { actions: 'refuse' }] },
    },
    rated: { tags: ['quiescent'] },
  },
});

const ratingKind: SessionKind = { machine: ratingMachine, input: () => ({}) };

describe('session kinds', () => {
  it('hosts a machine of your own with receipts, numbered events and idempotency', async () => {
    const t = testRuntime({ agent: async () => undefined, kinds: { rating: ratingKind } });
    expect(await t.runtime.send('r', { id: 'm1', content: 'great' }, { kind: 'rating' })).toMatchObject({
      status: 'rejected',
      code: 'INVALID_MESSAGE',
    });
    expect(await t.runtime.send('r', { id: 'm2', content: '5' })).toEqual({ status: 'accepted', mode: 'primary', durability: 'volatile' });
    expect(await t.runtime.send('r', { id: 'm2', content: '5' })).toEqual({ status: 'duplicate', durability: 'volatile' });
    // `rated` handles no input: no receipt, so the runtime says so instead of dropping it.
    expect((await t.runtime.send('r', { id: 'm3', content: '4' })).error?.message).toMatch(/does not take this input/);
    await settle();
    expect(t.of('r')).toEqual([
      { sessionId: 'r', seq: 1, type: 'message', data: { id: 'm2:thanks', role: 'assistant', content: 'Thanks for the 5!' } },
    ]);
    expect(await t.runtime.status('r')).toMatchObject({ kind: 'rating', state: 'rated' });
  });

  it('releases a kind that ignores shutdown once drainMs is up', async () => {
    const t = testRuntime({ agent: async () => undefined, kinds: { rating: ratingKind } });
    await t.runtime.open('r', { kind: 'rating' });
    const done = t.runtime.shutdown({ drainMs: 50 });
    await t.advance(50);
    await done;
    expect(t.runtime.sessionIds()).toEqual([]);
  });

  it('refuses to replace a built-in kind', () => {
    expect(() => testRuntime({ agent: async () => undefined, kinds: { onboarding: ratingKind } })).toThrow(/built in/);
  });
});

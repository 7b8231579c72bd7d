import { describe, expect, it } from 'vitest';
import { MemoryStore, type Store } from '../src/index.ts';
import { SqliteStore } from '../src/sqlite.ts';
import { controlledAgent, settle, stored, testRuntime } from './helpers.ts';

const DAY = 24 * 3_600_000;
const stores: [string, () => Store][] = [
  ['MemoryStore', () => new MemoryStore()],
  ['SqliteStore', () => new SqliteStore(':memory:')],
];

describe.each(stores)('C11 retention (%s)', (_name, make) => {
  it('a stored session nobody wrote for retentionMs goes with its inbox, events and transcript; one written since stays', async () => {
    const store = make();
    const control = controlledAgent();
    const t = testRuntime({ agent: control.agent, store, debounceMs: 0, idleTimeoutMs: DAY, retentionMs: 2 * DAY });
    for (const id of ['old', 'kept']) {
      await t.runtime.send(id, { id: `${id}-1`, content: 'hi' });
      await settle();
      control.last(id)!.resolve('reply');
      await settle();
    }
    await t.runtime.control('old', 'terminate');
    await settle();
    // A day passes: both are passivated (quiescent). "kept" is written again the next day.
    await t.advance(DAY);
    expect(t.runtime.sessionIds()).toEqual([]);
    await t.advance(DAY / 2);
    await t.runtime.send('kept', { id: 'kept-2', content: 'still here' });
    await settle();
    control.last('kept')!.resolve('ok');
    await settle();
    // "old" was last written when it was passivated (day 1); "kept" on day 2.5. Day 3 + 1 h:
    // more than two days of silence for "old" only.
    await t.advance(DAY);
    await t.advance(DAY / 2 + 3_600_000);
    expect(await stored(store, 'old')).toBeUndefined();
    expect(await store.eventsAfter('old', 0)).toEqual([]);
    expect(await store.sessionsWithPending()).toEqual([]);
    expect(await t.runtime.status('old')).toBeUndefined();
    expect((await stored(store, 'kept'))?.history.length).toBeGreaterThan(0);
    await t.runtime.shutdown({ drainMs: 0 });
  });
});

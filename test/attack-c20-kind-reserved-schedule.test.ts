/**
 * Attack on the runtime's own schedule ids (commit 41cf121), severity LOW.
 *
 * `baton:` ids are refused by `parseSchedule` — the check of `runtime.schedule`, the
 * gateway's `schedule` frame and `turn.schedule` — but a kind's driver sets schedules through
 * `DriverContext.setSchedule`, whose only check is the host's `scheduleRefusal`. A kind of
 * one's own could so set `baton:wake`: it shared the runtime's store row, fired as the
 * kind's schedule while the session was live, and once the session was passivated it came
 * back as the runtime's wake — hidden, never fired, never cleared (the kind has no `wakeAt`):
 * seen with a plain kind, the row stayed due and the process timer asked the store for it
 * every second, for good. `scheduleRefusal`, the check every way in passes, refuses them.
 */
import { describe, expect, it } from 'vitest';
import { setup } from 'xstate';
import type { DriverContext, SessionKind } from '../src/index.ts';
import { SqliteStore } from '../src/sqlite.ts';
import { settle, stored, testRuntime } from './helpers.ts';

const machine = setup({}).createMachine({ id: 'plain', initial: 'idle', states: { idle: { tags: ['quiescent'] } } });

describe('C20 schedule ids a kind of its own may set', () => {
  it('C20: a kind\'s driver cannot set a schedule whose id the runtime reserves (baton:…): INVALID_MESSAGE, nothing stored', async () => {
    let context: DriverContext | undefined;
    const kind: SessionKind = {
      machine,
      input: () => ({}),
      schedules: true,
      driver: (session) => {
        context = session;
        return { effect: () => {}, stop: () => {} };
      },
    };
    const store = new SqliteStore(':memory:');
    const t = testRuntime({ agent: async () => undefined, kinds: { plain: kind }, store });
    await t.runtime.open('p', { kind: 'plain' });
    await settle();
    for (const id of ['baton:wake', 'baton:mine']) {
      expect(() => context!.setSchedule({ id, dueAt: 60_000 })).toThrow(expect.objectContaining({ code: 'INVALID_MESSAGE' }));
    }
    context!.setSchedule({ id: 'mine', dueAt: 60_000 });
    await settle();
    expect((await stored(store, 'p'))?.schedules?.map((s) => s.id)).toEqual(['mine']);
  });
});

/**
 * Attack on C20 (issue 19), severity LOW–MEDIUM.
 *
 * One process timer for all sessions, and one wake at a time: `Waker.#wake` awaits
 * `fire()` — every due session's activation and commit — before it looks at the store
 * again, and `note()` is ignored while a wake runs. A read the store lost (the case
 * `loadTimeoutMs` exists for: a `postgres` query whose connection died is never answered)
 * holds that wake until the load times out, 30 s by default, and every schedule of every
 * other session due meanwhile waits with it — here another session's schedule, due 1 s
 * after the stuck one, fires 30 s late (at 36 000 instead of 6 000). A stuck session
 * should delay only itself.
 */
import { describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import { MemoryStore, type Agent, type LoadOptions } from '../src/index.ts';
import { settle, testRuntime } from './helpers.ts';

/** A memory store whose reads of one session, once `stall` is set, are never answered. */
class OneStuckSession extends MemoryStore {
  stall: string | undefined;
  override load(sessionId: string, options: LoadOptions) {
    if (sessionId === this.stall) return new Promise<never>(() => {}) as never;
    return super.load(sessionId, options);
  }
}

describe('C20 one stuck session and the process timer', () => {
  it('C20: a session whose read never comes back does not hold up the schedules of other sessions', async () => {
    const store = new OneStuckSession();
    const clock = new SimulatedClock();
    const fired: { id: string; at: number }[] = [];
    const agent: Agent = (turn) => {
      for (const i of turn.inputs) fired.push({ id: i.id, at: clock.now() });
      return 'ok';
    };
    const t = testRuntime({ agent, debounceMs: 0, store, clock, idleTimeoutMs: 500, onError: () => {} });
    await t.runtime.open('stuck');
    await t.runtime.schedule('stuck', { id: 'a', afterMs: 5000 });
    clock.increment(500);
    await settle();
    clock.increment(500);
    await settle();
    expect(t.runtime.sessionIds()).toEqual([]); // passivated
    store.stall = 'stuck'; // its next read is lost
    await t.runtime.open('other');
    await t.runtime.schedule('other', { id: 'b', afterMs: 5000 }); // due 1 s after the stuck one
    for (let i = 0; i < 12; i++) {
      clock.increment(500);
      await settle();
    }
    const otherFired = fired.find((f) => f.id.startsWith('timer:b:'));
    expect(otherFired?.at).toBeLessThanOrEqual(7000); // due at 6000
  });
});

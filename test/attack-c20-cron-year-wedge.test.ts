/**
 * Attack on C20 (issue 19), severity HIGH.
 *
 * `parseSchedule` hands the cron string to croner, which accepts a 7th field: a year
 * (`0 0 0 1 1 * 2030`). README and protocol.md promise "5 or 6 fields", but the 7-field
 * string is accepted because it has a next run. When it fires, `fireDue` re-arms it with
 * `nextDueAfter` → `cronAfter`, which throws ("never fires after …") in the middle of the
 * fire's step: the timer input was already accepted, but the schedule is neither re-armed
 * nor removed. It stays due in the store, first in due order, so every later wake throws
 * on it again before reaching the session's other schedules: a recurring schedule of the
 * same session never fires again, the process timer retries every `storeRetryMs` forever,
 * and `onError` gets the same error at every retry. Any client can plant it (a
 * `schedule` frame with `cron`), and so can an agent (`turn.schedule`).
 */
import { describe, expect, it } from 'vitest';
import type { Agent, SessionInput } from '../src/index.ts';
import { testRuntime } from './helpers.ts';

describe('C20 cron expressions with a year field', () => {
  it('C20: a cron that has a last run (a year field) is refused, or fires once and leaves the session\'s other schedules working', async () => {
    const seen: SessionInput[] = [];
    const agent: Agent = (turn) => {
      seen.push(...turn.inputs);
      return 'ok';
    };
    const errors: unknown[] = [];
    const t = testRuntime({ agent, debounceMs: 0, onError: (e) => errors.push(e) });
    const start = Date.UTC(2029, 11, 31, 23, 59, 59); // one second before 2030
    t.clock.set(start);
    await t.runtime.open('s');
    let accepted = true;
    try {
      await t.runtime.schedule('s', { id: 'new-year-2030', cron: '0 0 0 1 1 * 2030' });
    } catch (error) {
      // Refusing a cron with a last run (or any 7-field cron, as documented) is a fine answer.
      accepted = false;
      expect(error).toMatchObject({ code: 'INVALID_MESSAGE' });
    }
    await t.runtime.schedule('s', { id: 'tick', every: 2000 });
    for (let i = 0; i < 10; i++) await t.advance(1000);
    const timers = seen.filter((i) => i.kind === 'timer').map((i) => i.schedule!.id);
    // 10 s passed: `tick` (every 2 s) is due 5 times.
    expect(timers.filter((id) => id === 'tick').length).toBeGreaterThanOrEqual(4);
    if (accepted) expect(timers.filter((id) => id === 'new-year-2030')).toEqual(['new-year-2030']);
    // The same error, reported at every retry, is the symptom of the wedged schedule.
    expect(errors).toEqual([]);
  });
});

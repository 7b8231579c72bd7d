/**
 * Attack on C20 (issue 19), severity LOW.
 *
 * A fire's input id is `timer:<schedule id>:<due time>`, and `fireDue` skips any fire whose
 * id the session has seen (`recent.check(...) !== undefined`) — even when the content
 * differs, which for a client input would be a conflict worth reporting. So a schedule
 * replaced by id with the same `at` (a reminder corrected while its first fire still
 * waits in the backlog, or set again for the same time with a new payload) is accepted by
 * `runtime.schedule`, listed by `runtime.schedules`, and then dropped without a fire, an
 * error event, or an `onError` report: the new payload is never delivered.
 */
import { describe, expect, it } from 'vitest';
import type { SessionInput } from '../src/index.ts';
import { controlledAgent, settle, testRuntime } from './helpers.ts';

describe('C20 a schedule replaced with the same due time', () => {
  it('C20: a schedule replaced (same id, same at, new payload) while its first fire waits in the backlog fires with the new payload, or is refused', async () => {
    const c = controlledAgent();
    const errors: unknown[] = [];
    const t = testRuntime({ agent: c.agent, debounceMs: 0, busyPolicy: 'collect', onError: (e) => errors.push(e) });
    await t.runtime.send('s', { id: 'm1', content: 'long task' });
    await settle();
    await t.runtime.schedule('s', { id: 'remind', at: 1000, payload: 'call Bob' });
    await t.advance(1000); // fired; it waits behind the running turn
    let refused = false;
    try {
      const replaced = await t.runtime.schedule('s', { id: 'remind', at: 1000, payload: 'call Alice, not Bob' });
      expect(replaced).toMatchObject({ id: 'remind', dueAt: 1000 });
    } catch (error) {
      refused = true;
      expect(error).toMatchObject({ code: 'INVALID_MESSAGE' });
    }
    await t.advance(10);
    // The long turn ends; what waited runs.
    c.last('s')!.resolve('done');
    await settle(20);
    for (const call of c.calls.slice(1)) call.resolve('ok');
    await settle(20);
    for (const call of c.calls.slice(2)) call.resolve('ok');
    await settle(20);
    const timers = c.calls.flatMap((call) => call.turn.inputs.filter((i: SessionInput) => i.kind === 'timer').map((i) => i.content));
    if (refused) expect(timers).toEqual(['call Bob']);
    else expect(timers).toEqual(['call Bob', 'call Alice, not Bob']);
  });
});

/**
 * Attack on C20 (issue 19), severity LOW.
 *
 * A schedule's id is at most 256 characters and its payload 64 KiB, but its `cron` string
 * has no limit: `parseSchedule` hands any string to croner. A valid 2 MB expression
 * (`0,0,0,…,0 * * * *`) blocks the event loop ~300 ms to parse — and again at every fire,
 * since `nextDueAfter` parses it anew — and is stored with the session, up to 100 times
 * (`MAX_SCHEDULES_PER_SESSION`), and returned whole by `runtime.status().schedules` and
 * `runtime.schedules()`. The gateway's frame limit hides it from AEP clients; an agent's
 * `turn.schedule` (model output) and server code are not limited.
 */
import { describe, expect, it } from 'vitest';
import { testRuntime } from './helpers.ts';

describe('C20 the size of a cron expression', () => {
  it('C20: a cron expression of a megabyte is refused as INVALID_MESSAGE, like an oversized id or payload', async () => {
    const t = testRuntime({ agent: () => 'ok', debounceMs: 0 });
    await t.runtime.open('s');
    const huge = `${Array(500_000).fill('0').join(',')} * * * *`; // about 1 MB, and a valid expression
    await expect(t.runtime.schedule('s', { id: 'hourly', cron: huge })).rejects.toMatchObject({ code: 'INVALID_MESSAGE' });
  });
});

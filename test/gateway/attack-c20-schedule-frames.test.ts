/**
 * Attack on C20 (issue 19), severity LOW.
 *
 * docs/protocol.md, "Schedules": "Both frames cost an input token (rate limit)". In
 * src/gateway/connection.ts only `schedule` takes from the connection's bucket;
 * `schedule_cancel` goes straight to `runtime.cancelSchedule` — and each cancel that finds
 * its schedule is a commit. A client under its input rate limit keeps writing to the store
 * by alternating `schedule` (limited) with cancels (not), and the documented limit is not
 * the one enforced.
 */
import { describe, expect, it } from 'vitest';
import { Client, gatewayPerTest } from './client.ts';

const gateway = gatewayPerTest();

describe('C20 schedule frames and the input rate limit', () => {
  it('C20: schedule_cancel frames cost an input token, as protocol.md says: past the limit they are RATE_LIMITED', async () => {
    const { url } = await gateway({ gateway: { rateLimit: { perSecond: 1, burst: 2 } } });
    const { client } = await Client.attach(url, { session_id: 'cancels' });
    const ids = Array.from({ length: 8 }, (_, i) => client.send('schedule_cancel', { id: `none-${i}` }));
    for (const id of ids) {
      await client.until((f) => (f.event.type === 'schedule.ack' && f.event.data.client_message_id === id) || (f.event.type === 'error' && f.event.data.event_id === id));
    }
    const limited = client.frames.filter((f) => f.event.type === 'error' && f.event.data.code === 'RATE_LIMITED');
    expect(limited.length).toBeGreaterThan(0);
    await client.close();
  });

  it('C20 (control): schedule frames past the limit are RATE_LIMITED', async () => {
    const { url } = await gateway({ gateway: { rateLimit: { perSecond: 1, burst: 2 } } });
    const { client } = await Client.attach(url, { session_id: 'schedules' });
    const ids = Array.from({ length: 8 }, (_, i) => client.send('schedule', { id: `s-${i}`, after_ms: 3_600_000 }));
    for (const id of ids) {
      await client.until((f) => (f.event.type === 'schedule.ack' && f.event.data.client_message_id === id) || (f.event.type === 'error' && f.event.data.event_id === id));
    }
    const limited = client.frames.filter((f) => f.event.type === 'error' && f.event.data.code === 'RATE_LIMITED');
    expect(limited.length).toBeGreaterThan(0);
    await client.close();
  });
});

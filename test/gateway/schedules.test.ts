import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { Client, gatewayPerTest, type Frame } from './client.ts';
import { serve } from './process.ts';

const dir = mkdtempSync(join(tmpdir(), 'baton-schedules-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const gateway = gatewayPerTest();

const timerDone = (id: string) => (f: Frame) => f.event.type === 'done' && (f.event.data.input_ids as string[]).some((i) => i.startsWith(`timer:${id}:`));

describe('C20 schedules over the wire (Baton extension)', () => {
  it('C20: a client schedules a wake-up of its session; it fires as a turn once due; cancel and bad specs are answered by name', async () => {
    const { url, runtime } = await gateway();
    const { client } = await Client.attach(url, { session_id: 'wake' });
    const frameId = client.send('schedule', { id: 'soon', after_ms: 50, payload: 'ping me' });
    const ack = await client.until((f) => f.event.type === 'schedule.ack' && f.event.data.client_message_id === frameId);
    expect(ack.seq).toBe(0);
    expect(ack.event.data).toMatchObject({ id: 'soon', due_at: expect.any(Number) });
    const done = await client.until(timerDone('soon'));
    expect(done.event.data).toMatchObject({ success: true, input_ids: [`timer:soon:${ack.event.data.due_at}`] });
    const reply = client.frames.filter((f) => f.event.type === 'message.delta' && f.seq < done.seq).map((f) => f.event.data.content).join('');
    expect(reply).toBe('echo: ping me');
    expect(await runtime.schedules('wake')).toEqual([]);

    const later = client.send('schedule', { id: 'later', every_ms: 60_000 });
    await client.until((f) => f.event.type === 'schedule.ack' && f.event.data.client_message_id === later);
    const cancel = client.send('schedule_cancel', { id: 'later' });
    const cancelled = await client.until((f) => f.event.type === 'schedule.ack' && f.event.data.client_message_id === cancel);
    expect(cancelled.event.data).toEqual({ client_message_id: cancel, id: 'later', cancelled: true });
    const bad = client.send('schedule', { id: 'x', every_ms: 5 });
    const error = await client.until((f) => f.event.type === 'error' && f.event.data.event_id === bad);
    expect(error.event.data.code).toBe('INVALID_MESSAGE');
    expect(error.event.data.message).toMatch(/every must be at least/);
    await client.close();
  });

  it('C20: a schedule due while the process is down (kill -9) fires exactly once after the restart', async () => {
    const db = join(dir, `schedules-${process.pid}-${Date.now()}.db`);
    const args = ['--store', `sqlite:${db}`, '--demo-delay-ms', '1', '--debounce-ms', '0'];
    const first = await serve(args);
    const a = await Client.attach(first.url, { session_id: 'down' });
    const frameId = a.client.send('schedule', { id: 'wake', after_ms: 300, payload: 'back?' });
    const ack = await a.client.until((f) => f.event.type === 'schedule.ack' && f.event.data.client_message_id === frameId);
    const killed = once(first.child, 'exit');
    first.child.kill('SIGKILL');
    await killed;
    await a.client.closed;
    expect(a.client.frames.some(timerDone('wake'))).toBe(false);
    // Down until the schedule is due: real time has to pass (the process that fires it is not this one).
    while (Date.now() <= ack.event.data.due_at) await delay(ack.event.data.due_at - Date.now() + 1);

    const second = await serve(args);
    try {
      const lastSeen = Math.max(0, ...a.client.frames.map((f) => f.seq));
      const b = await Client.attach(second.url, { session_id: 'down', last_seq: lastSeen });
      const done = await b.client.until(timerDone('wake'));
      expect(done.event.data.input_ids).toEqual([`timer:wake:${ack.event.data.due_at}`]);
      await b.client.sync();
      const fires = [...a.client.frames, ...b.client.frames].filter(timerDone('wake'));
      expect(fires).toHaveLength(1);
      await b.client.close();
    } finally {
      const exited = once(second.child, 'exit');
      second.child.kill('SIGTERM');
      expect((await exited)[0]).toBe(0);
    }
  });
});

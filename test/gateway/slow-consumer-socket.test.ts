import { filter, firstValueFrom } from 'rxjs';
import { describe, expect, it } from 'vitest';
import type { Turn } from '../../src/index.ts';
import { Client, gatewayPerTest } from './client.ts';

const gateway = gatewayPerTest();

/** More than loopback's kernel buffers (send + receive, autotuned) can hold, so the gateway must buffer. */
const FLOOD_BYTES = 24 * 1024 * 1024;
const DELTA = 'x'.repeat(1024);

describe('C15 slow consumers over a real socket', () => {
  it('drops deltas for a client that does not read, says so in done.dropped, and keeps the connection', async () => {
    const deltas = FLOOD_BYTES / DELTA.length;
    const { url } = await gateway({
      runtime: {
        agent: (turn: Turn) => {
          for (let i = 0; i < deltas; i++) turn.emit(DELTA);
        },
      },
    });
    const { client } = await Client.attach(url);
    client.ws.pause();
    client.send('input', { content: 'flood me' });
    client.ws.resume();
    const done = await client.type('done');
    expect(done.event.data).toMatchObject({ success: true, dropped: true });
    const turnDeltas = client.frames.filter((f) => f.event.type === 'message.delta');
    expect(turnDeltas.length).toBeGreaterThan(0);
    expect(turnDeltas.length).toBeLessThan(deltas);
    // The one documented exception to gapless seq: the dropped deltas' numbers are missing, nothing else.
    const start = client.frames.find((f) => f.event.type === 'message.start')!.seq;
    const missing = done.seq - start - 1 - turnDeltas.length - 1; // minus message.end
    expect(missing).toBe(deltas - turnDeltas.length);
    await client.sync(); // still open
    await client.close();
  });

  it('closes a client that falls further behind than maxBufferedBytes with 1013', async () => {
    const { url, runtime } = await gateway({ runtime: { commands: { big: () => 'y'.repeat(FLOOD_BYTES) } } });
    const { client, ack } = await Client.attach(url);
    // The command's reply comes in a step after the one that took the command: wait for it on
    // the server's side, so that the pong is the frame written behind it.
    const replied = firstValueFrom(runtime.eventsOf(ack.session_id).pipe(filter((e) => e.type === 'message')));
    client.ws.pause();
    client.send('input', { content: '/big' });
    await replied;
    client.send('ping');
    client.ws.resume();
    expect(await client.closed).toEqual({ code: 1013, reason: 'slow consumer' });
  });
});

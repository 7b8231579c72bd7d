import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { Client } from './client.ts';
import { serve as serveProcess } from './process.ts';

/** The gateway process, in memory: at shutdown it cancels and reports what waits. */
const serve = (args: string[]) => serveProcess(['--store', 'memory', ...args]);

describe('C14 graceful shutdown of the gateway process', () => {
  it('on SIGTERM with a turn in flight: control{reconnect} to clients, the turn ends, exit code 0', async () => {
    const { child, url, stderr } = await serve(['--demo-delay-ms', '20', '--drain-ms', '200']);
    const { client } = await Client.attach(url);
    client.send('input', { content: Array.from({ length: 500 }, (_, i) => `w${i}`).join(' ') });
    await client.type('message.delta');
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const control = await client.type('control');
    expect(control).toMatchObject({ priority: 'control', seq: 0, event: { data: { action: 'reconnect', reason: 'shutdown' } } });
    const done = await client.type('done');
    expect(done.event.data).toMatchObject({ success: false, reason: 'shutdown' });
    expect(await client.closed).toEqual({ code: 1001, reason: 'shutdown' });
    const [code, signal] = await exited;
    expect({ code, signal, stderr: stderr() }).toEqual({ code: 0, signal: null, stderr: '' });
  });

  it('lets a short turn finish within the drain time before closing', async () => {
    const { child, url } = await serve(['--demo-delay-ms', '5', '--drain-ms', '5000']);
    const { client } = await Client.attach(url);
    client.send('input', { content: 'a few words to finish' });
    await client.type('message.delta');
    const exited = once(child, 'exit');
    child.kill('SIGINT');
    const done = await client.type('done');
    expect(done.event.data.success).toBe(true);
    expect((await client.closed).code).toBe(1001);
    expect((await exited)[0]).toBe(0);
  });
});

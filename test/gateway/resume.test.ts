import { afterEach, describe, expect, it } from 'vitest';
import { demoAgent } from '../../src/index.ts';
import { Client, startGateway } from './client.ts';

let stop: (() => Promise<void>) | undefined;
afterEach(async () => {
  await stop?.();
  stop = undefined;
});

describe('resume after a dropped connection (init.data.last_seq)', () => {
  it('replays what the client missed, right after init_ack: nothing missed, nothing repeated', async () => {
    const g = await startGateway({ runtime: { agent: demoAgent({ delayMs: 2 }) } });
    stop = () => g.gateway.close();
    const first = await Client.attach(g.url, { session_id: 'r' });
    first.client.send('input', { content: Array.from({ length: 40 }, (_, i) => `w${i}`).join(' ') });
    await first.client.until((f) => f.event.type === 'message.delta' && f.seq >= 8);
    first.client.ws.terminate(); // the connection drops mid-turn
    const lastSeen = Math.max(...first.client.frames.map((f) => f.seq));
    const second = await Client.attach(g.url, { session_id: 'r', last_seq: lastSeen });
    expect(second.client.frames[0]).toBe(second.ack);
    expect(second.ack.event.data).toMatchObject({ resume: { from: lastSeen, complete: true } });
    expect(second.ack.event.data.server_caps.supports_resume).toBe(true);
    await second.client.type('done');
    const seen = [...first.client.frames, ...second.client.frames].filter((f) => f.seq > 0).map((f) => f.seq);
    // Across both connections: every seq once, from 1, without a gap.
    expect(seen).toEqual(seen.map((_, i) => i + 1));
    const text = [...first.client.frames, ...second.client.frames]
      .filter((f) => f.event.type === 'message.delta')
      .map((f) => f.event.data.content)
      .join('');
    expect(text).toBe(`echo: ${Array.from({ length: 40 }, (_, i) => `w${i}`).join(' ')}`);
    await second.client.close();
  });

  it('says so when it no longer holds everything the client missed', async () => {
    const { MemoryStore } = await import('../../src/index.ts');
    const g = await startGateway({ runtime: { store: new MemoryStore({ keepEvents: 3 }), agent: demoAgent({ delayMs: 0 }) } });
    stop = () => g.gateway.close();
    const first = await Client.attach(g.url, { session_id: 'r' });
    first.client.send('input', { content: 'a b c d e f' });
    await first.client.type('done');
    await first.client.close();
    const second = await Client.attach(g.url, { session_id: 'r', last_seq: 1 });
    expect(second.ack.event.data.resume).toMatchObject({ from: 1, complete: false, replayed: 3 });
    await second.client.close();
  });
});

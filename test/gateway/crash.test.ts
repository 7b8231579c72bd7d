import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Client, type Frame } from './client.ts';
import { serve } from './process.ts';

const dir = mkdtempSync(join(tmpdir(), 'baton-crash-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const words = (i: number) => Array.from({ length: 12 }, (_, k) => `i${i}w${k}`).join(' ');

describe('C12 crash recovery of the gateway process (SIGKILL)', () => {
  it('processes every durable-acked input exactly once across a kill and a restart', async () => {
    const db = join(dir, `crash-${process.pid}-${Date.now()}.db`);
    const args = ['--store', `sqlite:${db}`, '--demo-delay-ms', '4', '--debounce-ms', '0'];
    const first = await serve(args);
    const a = await Client.attach(first.url, { session_id: 'crash' });
    const sent: string[] = [];
    for (let i = 0; i < 8; i++) sent.push(a.client.send('input', { content: words(i) }, `in-${i}`));
    const acked = new Set<string>();
    while (acked.size < sent.length) {
      const ack = await a.client.type('input.ack');
      expect(ack.event.data.durability).toBe('durable');
      acked.add(ack.event.data.client_message_id);
    }
    // Kill it in the middle of a turn: after the first turn is done and the next has started.
    await a.client.type('done');
    await a.client.until((f) => f.event.type === 'message.delta');
    const killed = once(first.child, 'exit');
    first.child.kill('SIGKILL');
    await killed;
    await a.client.closed;

    const second = await serve(args);
    try {
      const lastSeen = Math.max(0, ...a.client.frames.map((f) => f.seq));
      const b = await Client.attach(second.url, { session_id: 'crash', last_seq: lastSeen });
      const successes = (frames: Frame[]) =>
        frames.filter((f) => f.event.type === 'done' && f.event.data.success).flatMap((f) => f.event.data.input_ids as string[]);
      while (!sent.every((id) => [...successes(a.client.frames), ...successes(b.client.frames)].includes(id))) {
        await b.client.type('done');
      }
      const all = [...successes(a.client.frames), ...successes(b.client.frames)];
      for (const id of acked) expect(all.filter((x) => x === id), id).toHaveLength(1);
      // And the client saw one gapless numbering across both processes.
      const seqs = [...a.client.frames, ...b.client.frames].filter((f) => f.seq > 0).map((f) => f.seq);
      expect(seqs).toEqual(seqs.map((_, i) => i + 1));
      await b.client.close();
    } finally {
      const exited = once(second.child, 'exit');
      second.child.kill('SIGTERM');
      expect((await exited)[0]).toBe(0);
    }
  });
});

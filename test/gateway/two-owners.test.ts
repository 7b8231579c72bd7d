import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Client, type Frame } from './client.ts';
import { serve } from './process.ts';

const dir = mkdtempSync(join(tmpdir(), 'baton-owners-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const words = (i: number) => Array.from({ length: 30 }, (_, k) => `i${i}w${k}`).join(' ');

describe('C17 one owner per store: two gateway processes on one SQLite file', () => {
  it('the second fences the first, which exits 1 naming the holder; no input is in two dones', { timeout: 90_000 }, async () => {
    const db = join(dir, `owners-${process.pid}-${Date.now()}.db`);
    const args = ['--store', `sqlite:${db}`, '--demo-delay-ms', '15', '--debounce-ms', '0', '--max-wait-ms', '0', '--busy-policy', 'followup'];
    const first = await serve(args);
    const firstExit = once(first.child, 'exit');
    const a = await Client.attach(first.url, { session_id: 'shared' });
    const sent: string[] = [];
    for (let i = 0; i < 6; i++) sent.push(a.client.send('input', { content: words(i) }, `in-${i}`));
    for (let acked = 0; acked < sent.length; acked++) expect((await a.client.type('input.ack')).event.data.durability).toBe('durable');
    await a.client.until((f) => f.event.type === 'message.delta');

    // A second process on the same file, while the first is in the middle of a turn.
    const second = await serve(args);
    try {
      const [code] = await firstExit;
      expect(code).toBe(1);
      const lines = first.stderr().trim().split('\n');
      expect(lines, first.stderr()).toHaveLength(1);
      expect(lines[0]).toMatch(new RegExp(`^baton: the store .* was taken over by pid ${second.child.pid} on .* must stop$`));

      const b = await Client.attach(second.url, { session_id: 'shared', last_seq: 0 });
      const dones = (frames: Frame[]) => frames.filter((f) => f.event.type === 'done');
      const byInput = () => {
        // A done the first committed is replayed by the second with the same seq: count it once.
        const unique = new Map<number, Frame>();
        for (const f of [...dones(a.client.frames), ...dones(b.client.frames)]) unique.set(f.seq, f);
        return [...unique.values()].flatMap((f) => f.event.data.input_ids as string[]);
      };
      while (!sent.every((id) => byInput().includes(id))) await b.client.type('done');
      for (const id of sent) expect(byInput().filter((x) => x === id), id).toHaveLength(1);
      // Everything the first published was committed: the second's history contains it, seq for seq.
      const second$ = new Map(b.client.frames.filter((f) => f.seq > 0).map((f) => [f.seq, f.event.type]));
      for (const f of a.client.frames.filter((f) => f.seq > 0)) expect(second$.get(f.seq), `seq ${f.seq}`).toBe(f.event.type);
      await b.client.close();
    } finally {
      if (first.child.exitCode === null) first.child.kill('SIGKILL'); // never leave it running
      const exited = once(second.child, 'exit');
      second.child.kill('SIGTERM');
      expect((await exited)[0]).toBe(0);
    }
  });
});

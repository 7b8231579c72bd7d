import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/sqlite.ts';
import { Client, startGateway, type Frame } from './client.ts';

const dir = mkdtempSync(join(tmpdir(), 'baton-full-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const text = (i: number) => `input ${i} ` + 'x'.repeat(600);

describe('C16 a full disk over a real socket (SQLite max_page_count)', () => {
  it('durable acks, fill, free, restart: every durable-acked input in exactly one done, no seq reused, resume truthful', async () => {
    const db = join(dir, `full-${Date.now()}.db`);
    // 1. A store with a quota, as a disk that fills up.
    const full = new SqliteStore(db, { maxBytes: 96 * 1024 });
    const g1 = await startGateway({ runtime: { store: full, storeRetryMs: 60_000, onError: () => {} } });
    const clients: Client[] = [];
    const acked: string[] = [];
    let refused = 0;
    // Send until the store refuses: an error naming the input, or the session's close (1013).
    let client = (await Client.attach(g1.url, { session_id: 'full' })).client;
    clients.push(client);
    for (let i = 0; i < 400 && refused === 0; i++) {
      const id = client.send('input', { content: text(i) }, `in-${i}`);
      const answer = await client
        .until((f) => (f.event.type === 'input.ack' && f.event.data.client_message_id === id) || f.event.type === 'error')
        .catch(() => undefined);
      if (answer?.event.type === 'input.ack') {
        expect(answer.event.data.durability).toBe('durable');
        acked.push(id);
      } else refused++;
    }
    const a = { client: clients[0]! };
    expect(refused, 'the quota was reached').toBeGreaterThan(0);
    expect(acked.length).toBeGreaterThan(0);
    // While it is full, the gateway says so: a commit has failed and its session is out of service.
    // The first refusal may be the inbox's (an input that does not fit): then the running turn's
    // next commit is the one that fails, a moment later.
    await expect.poll(() => g1.runtime.health().ok, { timeout: 5000, interval: 10 }).toBe(false);
    expect((await fetch(`${g1.http}/healthz`)).status).toBe(503);
    await g1.gateway.close();
    await a.client.closed; // every frame it was sent has arrived
    const seenBefore = Math.max(0, ...a.client.frames.map((f) => f.seq));
    full.close();

    // 2. Room again, and a restart on the same file.
    const store = new SqliteStore(db);
    const g2 = await startGateway({ runtime: { store } });
    try {
      const b = await Client.attach(g2.url, { session_id: 'full', last_seq: seenBefore });
      // Resume is truthful: it starts right after what the client saw, or says it is incomplete.
      const resume = b.ack.event.data.resume as { from: number; complete: boolean };
      expect(resume.from).toBe(seenBefore);
      expect(b.ack.event.data.seq).toBeGreaterThanOrEqual(seenBefore); // no seq the client saw is handed out again
      const done = (frames: Frame[]) => frames.filter((f) => f.event.type === 'done').flatMap((f) => f.event.data.input_ids as string[]);
      while (!acked.every((id) => [...done(a.client.frames), ...done(b.client.frames)].includes(id))) await b.client.type('done');
      const all = [...done(a.client.frames), ...done(b.client.frames)];
      for (const id of acked) expect(all.filter((x) => x === id), id).toHaveLength(1);
      const seqs = [...a.client.frames, ...b.client.frames].filter((f) => f.seq > 0).map((f) => f.seq);
      // No seq reused: a seq seen twice (before and after the restart) is the same event.
      const bySeq = new Map<number, string>();
      for (const f of [...a.client.frames, ...b.client.frames].filter((f) => f.seq > 0)) {
        const event = JSON.stringify(f.event);
        expect(bySeq.get(f.seq) ?? event, `seq ${f.seq}`).toBe(event);
        bySeq.set(f.seq, event);
      }
      expect(b.client.frames.filter((f) => f.seq > 0 && f.seq <= seenBefore), 'nothing the client saw is sent again').toEqual([]);
      expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
      await b.client.close();
    } finally {
      await g2.gateway.close();
      store.close();
    }
  }, 60_000);
});

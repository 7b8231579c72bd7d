/**
 * C8: "a turn's events come between its start and its done, and turns' events never
 * interleave"; PROTOCOL: every turn is `state{running}` → message.start → delta* →
 * message.end → `done`. After a crash mid-stream the restarted process re-runs the turn
 * (C12) under a new `state{running}` and `message.start`, but the interrupted turn — whose
 * `state{running}`, `message.start` and deltas were committed and are replayed on resume —
 * never gets its `message.end` or `done`: a resumed client sees a turn start while another
 * is still open, and a message that never ends.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createRuntime, type SessionEvent, type Turn } from '../src/index.ts';
import { SqliteStore } from '../src/sqlite.ts';
import { turnOverlaps } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'baton-unclosed-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('C8 a turn interrupted by a crash is closed before it runs again', () => {
  it('the stored and the new events together never open a turn inside another', async () => {
    const file = join(dir, 'crash.db');
    // The first process: its turn streams one delta and never finishes (the process "dies").
    const first = createRuntime({
      agent: (turn: Turn) => new Promise<void>(() => turn.emit('partial ')),
      store: new SqliteStore(file),
      debounceMs: 0,
      ownerCheckMs: 60_000,
      onError: () => {},
    });
    const seen: SessionEvent[] = [];
    first.eventsOf('s').subscribe((e) => seen.push(e));
    await first.send('s', { id: 'm1', content: 'hello' });
    await expect.poll(() => seen.some((e) => e.type === 'message.delta'), { timeout: 3000, interval: 2 }).toBe(true);

    // The restart: a new owner of the same file re-runs the turn.
    const second = createRuntime({ agent: async () => 'whole reply', store: new SqliteStore(file), debounceMs: 0, onError: () => {} });
    const after: SessionEvent[] = [];
    second.eventsOf('s').subscribe((e) => after.push(e));
    await expect.poll(() => after.some((e) => e.type === 'done' && e.data.success), { timeout: 3000, interval: 2 }).toBe(true);
    const stored = await second.eventsAfter('s', 0);
    const all = [...stored.filter((e) => e.seq < (after[0]?.seq ?? Infinity)), ...after];
    expect(all.map((e) => e.seq)).toEqual(all.map((_, i) => i + 1));
    expect(turnOverlaps(all), all.map((e) => `${e.seq}:${e.type}`).join(' ')).toEqual([]);
    const starts = all.filter((e) => e.type === 'message.start').map((e) => (e.data as { id: string }).id);
    const ends = all.filter((e) => e.type === 'message.end').map((e) => (e.data as { message_id: string }).message_id);
    expect(ends.sort()).toEqual(starts.sort());
    await second.shutdown({ drainMs: 0 });
    await first.shutdown({ drainMs: 0 }).catch(() => {});
  });
});

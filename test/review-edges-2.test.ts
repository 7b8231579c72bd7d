/** Regressions found by the second review (each failed before its fix). */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type Receipt, type Turn } from '../src/index.ts';
import { SqliteStore } from '../src/sqlite.ts';
import { Client, gatewayPerTest } from './gateway/client.ts';
import { controlledAgent, settle, testRuntime } from './helpers.ts';

const gateway = gatewayPerTest();

describe('review edges, second round', () => {
  it('C12: a restored turn still runs when an input re-sent after the restart is refused', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'baton-edges-')), 'b.db');
    const hang = () => new Promise<string>(() => undefined);
    const before = testRuntime({ agent: hang, debounceMs: 0, store: new SqliteStore(path) });
    await before.runtime.send('s', { id: 'm1', content: 'one' });
    await settle();
    // The process dies mid-turn. Inputs its snapshot does not hold wait in the inbox (as a
    // store written by an older release can have them), and the new process rejects input
    // while busy: the re-sent ones are refused.
    const store = new SqliteStore(path);
    store.commit([{ sessionId: 's', accepted: ['m2', 'm3'].map((id) => ({ id, content: id })), events: [], consumed: [] }]);
    const calls: Turn[] = [];
    const after = testRuntime({
      agent: (turn: Turn) => (calls.push(turn), new Promise<string>(() => undefined)),
      debounceMs: 0,
      busyPolicy: 'reject',
      turnTimeoutMs: 1000,
      store,
    });
    await settle();
    const refused = after.of('s').filter((e) => e.type === 'error' && /could not be taken after a restart/.test(e.data.message));
    expect(refused.map((e) => e.type === 'error' && e.data.event_id)).toEqual(['m2', 'm3']);
    expect(calls.map((turn) => turn.inputs.map((i) => i.id))).toEqual([['m1']]); // the re-run turn reached the agent
    await after.advance(1000);
    expect(after.dones('s').filter((d) => d.reason === 'timeout').map((d) => d.input_ids)).toEqual([['m1']]); // and is timed
  });

  it('C1: a subscriber that sends to its session while the session is being created reaches the same actor', async () => {
    const a = controlledAgent();
    const { runtime } = testRuntime({ agent: a.agent, debounceMs: 0 });
    let first = true;
    const fromSubscriber: Promise<Receipt>[] = [];
    runtime.eventsOf('s').subscribe((e) => {
      if (e.type === 'state' && e.data.state === 'idle' && first) {
        first = false;
        fromSubscriber.push(runtime.send('s', { id: 'm1', content: 'one' }));
      }
    });
    // Both in one tick: m2 arrives while the session is still being created.
    const opened = runtime.open('s');
    const m2 = runtime.send('s', { id: 'm2', content: 'two' });
    await opened;
    expect((await m2).status).toBe('accepted');
    await settle();
    expect(fromSubscriber).toHaveLength(1);
    expect((await fromSubscriber[0]!).status).toBe('accepted');
    expect(a.maxConcurrent('s')).toBe(1);
    expect(runtime.sessionIds()).toEqual(['s']);
  });

  it('C15: a client that reads promptly is not judged slow for bytes still corked in the gateway', async () => {
    const { url } = await gateway({
      runtime: { agent: (turn: Turn) => { for (let i = 0; i < 12; i++) turn.emit('d'.repeat(1000)); } },
      gateway: { maxBufferedBytes: 16384 },
    });
    const { client } = await Client.attach(url);
    client.send('input', { content: 'hi' });
    const done = await client.type('done');
    expect(done.event.data.dropped).toBe(false);
    expect(client.frames.filter((f) => f.event.type === 'message.delta')).toHaveLength(12);
    await client.close();
  });
});

import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { setup } from 'xstate';
import { createRuntime, type SessionEvent, type SessionKind } from '../src/index.ts';
import { SqliteStore } from '../src/sqlite.ts';
import { controlledAgent, settle, stored } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'baton-versions-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const fixture = fileURLToPath(new URL('./fixtures/previous-release.db', import.meta.url));

describe('snapshot versions (C12)', () => {
  it('a database written by the previous release: every session comes back, and its waiting work runs once', async () => {
    // Written by the previous release's machines (bb494d6): schema v3, snapshots without a version.
    const db = join(dir, 'previous.db');
    copyFileSync(fixture, db);
    const store = new SqliteStore(db);
    const control = controlledAgent();
    const runtime = createRuntime({ commitDelayMs: 0, agent: control.agent, store, debounceMs: 0, maxWaitMs: 0 });
    const events: SessionEvent[] = [];
    runtime.events$.subscribe((e) => events.push(e));
    await settle(); // recovery: busy-1 had a turn in flight (b1) and b2 waiting
    expect(control.calls.map((c) => c.turn.inputs.map((i) => i.id))).toEqual([['b1']]);
    control.last('busy-1')!.resolve('one');
    await settle();
    expect(control.calls.map((c) => c.turn.inputs.map((i) => i.id))).toEqual([['b1'], ['b2']]);
    control.last('busy-1')!.resolve('two');
    await settle();
    const done = events.filter((e) => e.type === 'done' && e.sessionId === 'busy-1');
    // The turn the previous process left running is closed first (interrupted), then re-run.
    expect(done.map((e) => e.type === 'done' && e.data.input_ids)).toEqual([[], ['b1'], ['b2']]);
    // Numbering goes on after what the previous release published.
    expect(Math.min(...events.filter((e) => e.sessionId === 'busy-1').map((e) => e.seq))).toBeGreaterThan(4);

    expect(await runtime.status('idle-1')).toMatchObject({ kind: 'agent', state: 'passivated' });
    await runtime.send('idle-1', { id: 'a2', content: 'again' });
    await settle();
    expect(await runtime.status('idle-1')).toMatchObject({ state: 'busy' });
    expect(control.last('idle-1')!.turn.history.map((h) => h.content)).toEqual(['hello', 'echo hello']);
    control.last('idle-1')!.resolve('fine');

    // Onboarding at q2 with q1 answered: the q2 answer moves it on.
    expect(await runtime.respond('onb-1', { id: 'q2a', questionId: 'q2', answers: { q: 'cats' } })).toMatchObject({ status: 'accepted' });
    expect(await runtime.status('term-1')).toMatchObject({ state: 'passivated' });
    expect(await runtime.send('term-1', { id: 't2', content: 'hi' })).toMatchObject({ status: 'rejected', code: 'SESSION_TERMINATED' });
    await settle();
    await runtime.shutdown({ drainMs: 0 });
    store.close();
  });

  it('a kind whose version changed without a migrate hook rebuilds its sessions from the inbox and transcript', async () => {
    const db = join(dir, 'rebuild.db');
    const counter = (version: number, extra: object = {}): SessionKind => ({
      version,
      input: () => ({}),
      machine: setup({}).createMachine({
        id: 'counter',
        initial: version === 1 ? 'old' : 'fresh',
        states: { old: { tags: ['quiescent'] }, fresh: { tags: ['quiescent'] } },
      }),
      ...extra,
    });
    const store1 = new SqliteStore(db);
    const r1 = createRuntime({ commitDelayMs: 0, agent: async () => {}, store: store1, kinds: { counter: counter(1) } });
    await r1.open('c', { kind: 'counter' });
    await settle();
    await r1.shutdown({ drainMs: 0 });
    store1.close();
    expect((await stored(new SqliteStore(db), 'c'))?.session).toMatchObject({ version: 1 });

    // Version 2 has no state "old": without migrate the session is rebuilt, not lost.
    const store2 = new SqliteStore(db);
    const r2 = createRuntime({ commitDelayMs: 0, agent: async () => {}, store: store2, kinds: { counter: counter(2) } });
    expect(await r2.open('c', { kind: 'counter' })).toMatchObject({ kind: 'counter', state: 'fresh' });
    await r2.shutdown({ drainMs: 0 });
    expect((await stored(store2, 'c'))?.session).toMatchObject({ version: 2 });
    store2.close();

    // With migrate, the old snapshot is carried over.
    const store3 = new SqliteStore(db);
    const migrated: number[] = [];
    const kind3 = counter(3, { migrate: (snapshot: { value: unknown }, from: number) => (migrated.push(from), { ...snapshot, value: 'fresh' }) });
    const r3 = createRuntime({ commitDelayMs: 0, agent: async () => {}, store: store3, kinds: { counter: kind3 } });
    expect(await r3.open('c', { kind: 'counter' })).toMatchObject({ state: 'fresh' });
    expect(migrated).toEqual([2]);
    await r3.shutdown({ drainMs: 0 });
    store3.close();
  });
});

/**
 * Recovery edges found in review: each of these lost or doubled something before.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SessionNotFoundError, type StepRecord } from '../src/index.ts';
import { SqliteStore } from '../src/sqlite.ts';
import { controlledAgent, settle, stored, testRuntime } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'baton-edges-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const path = () => join(dir, `e${n++}.db`);
const hang = () => new Promise<never>(() => {});

describe('C12 recovery edges', () => {
  it('keeps a durable onboarding answer across a crash: the session resumes at the question it had asked', async () => {
    const p = path();
    const before = testRuntime({ agent: async () => undefined, onboarding: { analyzer: hang }, store: new SqliteStore(p) });
    await before.runtime.open('o', { kind: 'onboarding' });
    await before.runtime.control('o', 'start');
    expect(await before.runtime.respond('o', { id: 'a1', questionId: 'q1', answers: { x: 'I write compilers' } })).toMatchObject({
      status: 'accepted',
      durability: 'durable',
    });
    await settle();
    // The process dies while the answer is being analyzed.
    const seen: string[] = [];
    const after = testRuntime({
      agent: async () => undefined,
      onboarding: { analyzer: async ({ answer }) => (seen.push(answer), { reflection: 'noted' }) },
      store: new SqliteStore(p),
    });
    await settle();
    await settle();
    expect(seen).toEqual(['I write compilers']);
    expect(after.of('o').filter((e) => e.type === 'error')).toEqual([]);
    expect(after.dones('o')).toEqual([expect.objectContaining({ success: true, input_ids: ['a1'] })]);
    expect((await stored(new SqliteStore(p), 'o'))?.pending).toEqual([]);
  });

  it('reports, and takes out of the inbox, an input the restored session refuses', async () => {
    const p = path();
    const before = testRuntime({ agent: controlledAgent().agent, debounceMs: 0, store: new SqliteStore(p) });
    await before.runtime.open('s');
    await before.runtime.control('s', 'terminate');
    await settle();
    // An input in the inbox that the saved session no longer takes (it was terminated).
    const store = new SqliteStore(p);
    store.commit([{ sessionId: 's', accepted: [{ id: 'm3', content: 'three' }], events: [], consumed: [] }]);
    const after = testRuntime({ agent: controlledAgent().agent, debounceMs: 0, store });
    await settle();
    const refused = after.of('s').find((e) => e.type === 'error');
    expect(refused?.data).toMatchObject({ code: 'SESSION_TERMINATED', event_id: 'm3' });
    expect(after.dones('s')).toContainEqual(expect.objectContaining({ success: false, cancelled_input_ids: ['m3'] }));
    expect((await stored(store, 's'))?.pending.map((e) => e.id)).not.toContain('m3');
  });

  it('answers and controls a passivated session (C11)', async () => {
    const t = testRuntime({ agent: async () => undefined, onboarding: { analyzer: hang }, idleTimeoutMs: 1000 });
    await t.runtime.open('o', { kind: 'onboarding' });
    await t.runtime.control('o', 'start');
    await t.advance(2000);
    expect((await t.runtime.status('o'))?.state).toBe('passivated');
    expect((await t.runtime.respond('o', { id: 'a1', questionId: 'q1', answers: { x: 'hello there friend' } })).status).toBe('accepted');
    await t.advance(2000);
    await t.runtime.control('o', 'terminate');
    expect((await t.runtime.status('o'))?.state).toBe('terminated');
    const missing = t.runtime.control('nobody', 'stop');
    await expect(missing).rejects.toBeInstanceOf(SessionNotFoundError);
    await expect(missing).rejects.toThrow(/no session/);
  });

  it('writes a turn to the transcript only with its done: a crash before that step is stored leaves no trace', async () => {
    const p = path();
    class DiesAtTheDone extends SqliteStore {
      dead = false;
      override commit(steps: readonly StepRecord[]) {
        if (steps.some((step) => step.consumed.length > 0)) this.dead = true;
        if (!this.dead) super.commit(steps);
      }
    }
    const first = controlledAgent();
    await testRuntime({ agent: first.agent, debounceMs: 0, store: new DiesAtTheDone(p) }).runtime.send('s', { id: 'm1', content: 'hi' });
    await settle();
    first.calls[0]!.resolve('lost answer');
    await settle();
    const store = new SqliteStore(p);
    const second = controlledAgent();
    testRuntime({ agent: second.agent, debounceMs: 0, store });
    await settle();
    expect(second.calls[0]?.turn.history).toEqual([]);
    second.calls[0]!.resolve('answer');
    await settle();
    expect((await stored(store, 's'))?.history).toEqual([
      { role: 'user', content: 'hi', inputId: 'm1' },
      { role: 'assistant', content: 'answer' },
    ]);
  });
});

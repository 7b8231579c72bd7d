import { describe, expect, it } from 'vitest';
import { createActor } from 'xstate';
import { sessionMachine, type SessionMachineEvent } from '../src/index.ts';
import { controlledAgent, settle, testRuntime, turnOverlaps } from './helpers.ts';
import { settings } from './machine-helpers.ts';

describe('C1 one turn at a time', () => {
  it('does not start a second turn while the first awaits its agent', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 0 });
    expect(await t.runtime.send('s', { id: 'm1', content: 'one' })).toMatchObject({ status: 'accepted', mode: 'primary' });
    await settle();
    expect(await t.runtime.send('s', { id: 'm2', content: 'two' })).toMatchObject({ status: 'accepted', mode: 'queued' });
    await settle();
    expect(a.calls).toHaveLength(1);
    a.calls[0]!.resolve('ok');
    await settle();
    expect(a.calls).toHaveLength(2);
    expect(a.calls[1]!.turn.inputs.map((i) => i.id)).toEqual(['m2']);
    a.calls[1]!.resolve('ok');
    await settle();
    expect(a.maxConcurrent('s')).toBe(1);
    expect(turnOverlaps(t.events)).toEqual([]);
  });

  it('claims the session when send is called, before its receipt (no await between check and claim)', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 0 });
    expect(await t.runtime.status('s')).toBeUndefined();
    const first = t.runtime.send('s', { id: 'm1', content: 'one' });
    // Synchronously, before anything is awaited: the key is claimed by one actor.
    expect(t.runtime.sessionIds()).toEqual(['s']);
    const second = t.runtime.send('s', { id: 'm2', content: 'two' });
    expect(t.runtime.sessionIds()).toEqual(['s']);
    // In call order: the first input starts the turn, the second waits behind it.
    expect(await first).toMatchObject({ status: 'accepted', mode: 'primary' });
    expect(await second).toMatchObject({ status: 'accepted', mode: 'queued' });
    await settle();
    expect(a.calls).toHaveLength(1);
    expect(a.calls[0]!.turn.inputs.map((i) => i.id)).toEqual(['m1']);
    expect(await t.runtime.status('s')).toMatchObject({ state: 'busy', backlog: 1 });
  });

  it('processes inputs sent in one tick in call order while the session re-activates from the store (C11)', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 0, idleTimeoutMs: 1000, busyPolicy: 'followup' });
    await t.runtime.send('s', { id: 'm0', content: 'zero' });
    await settle();
    a.calls[0]!.resolve();
    await settle();
    await t.advance(2000);
    expect(await t.runtime.status('s')).toMatchObject({ state: 'passivated' });
    expect(t.runtime.sessionIds()).toEqual([]);
    const receipts = ['m1', 'm2', 'm3'].map((id) => t.runtime.send('s', { id, content: id }));
    // Claimed by the first send, before anything is awaited: the others find the same actor.
    expect(t.runtime.sessionIds()).toEqual(['s']);
    expect((await Promise.all(receipts)).map((r) => r.mode)).toEqual(['primary', 'queued', 'queued']);
    for (let i = 1; i <= 3; i++) {
      await settle();
      a.calls[i]!.resolve();
    }
    await settle();
    expect(a.calls.map((c) => c.turn.inputs.map((i) => i.id))).toEqual([['m0'], ['m1'], ['m2'], ['m3']]);
    expect(a.maxConcurrent('s')).toBe(1);
    expect(turnOverlaps(t.events)).toEqual([]);
  });

  it('runs different sessions concurrently, each one at a time', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 0 });
    const receipts = ['a', 'b', 'c'].flatMap((s) => [
      t.runtime.send(s, { id: `${s}1`, content: 'x' }),
      t.runtime.send(s, { id: `${s}2`, content: 'y' }),
    ]);
    expect((await Promise.all(receipts)).map((r) => r.status)).toEqual(Array(6).fill('accepted'));
    await settle();
    expect(a.calls.map((c) => c.turn.sessionId)).toEqual(['a', 'b', 'c']);
    for (const c of [...a.calls]) c.resolve();
    await settle();
    expect(a.calls).toHaveLength(6);
    for (const s of ['a', 'b', 'c']) expect(a.maxConcurrent(s)).toBe(1);
  });

  it('has no transition out of busy that starts a turn without ending the running one', () => {
    // Every event the machine knows, sent while busy: a `turn.start` is only ever preceded by a `done`.
    const events: SessionMachineEvent[] = [
      { type: 'input', input: { id: 'x', content: 'x' } },
      { type: 'command', command: { id: 'c', name: 'status', args: '' } },
      { type: 'command', command: { id: 'u', name: 'user', args: '' } },
      { type: 'agent.delta', turnId: 1, text: 'a' },
      { type: 'agent.delta', turnId: 7, text: 'a' },
      { type: 'agent.done', turnId: 7 },
      { type: 'agent.error', turnId: 7, message: 'x' },
      { type: 'agent.steering', turnId: 1 },
      { type: 'command.done', commandId: 'u' },
      { type: 'activate' },
    ];
    for (const policy of ['collect', 'followup', 'interrupt', 'reject', 'steer'] as const) {
      const actor = createActor(sessionMachine, { input: { sessionId: 's', settings: settings({ busyPolicy: policy, debounceMs: 0 }) } });
      const log: string[] = [];
      actor.on('*', (e) => log.push(e.type === 'output' ? e.event.type : e.type));
      actor.start();
      actor.send({ type: 'activate' });
      actor.send({ type: 'input', input: { id: 'first', content: 'a' } });
      expect(actor.getSnapshot().matches({ running: 'busy' })).toBe(true);
      for (const event of events) actor.send(event);
      const starts = log.flatMap((t, i) => (t === 'turn.start' ? [i] : []));
      for (const [n, at] of starts.entries()) {
        if (n === 0) continue;
        expect(log.slice(starts[n - 1], at), `${policy}: second turn without done`).toContain('done');
      }
      actor.stop();
    }
  });
});

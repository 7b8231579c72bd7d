import { describe, expect, it } from 'vitest';
import { createActor } from 'xstate';
import { sessionMachine, type SessionEffect } from '../src/index.ts';
import { controlledAgent, settle, testRuntime, turnOverlaps } from './helpers.ts';
import { settings } from './machine-helpers.ts';

describe('C6 stop', () => {
  for (const via of ['/stop', 'control'] as const) {
    it(`${via} aborts the turn, clears the backlog and reports both`, async () => {
      const a = controlledAgent();
      const t = testRuntime({ agent: a.agent, debounceMs: 0 });
      await Promise.all(['one', 'two', 'three'].map((content, i) => t.runtime.send('s', { id: `m${i + 1}`, content })));
      await settle(); // m1's turn runs, m2 and m3 wait
      expect(a.calls[0]!.turn.signal.aborted).toBe(false);
      if (via === '/stop') expect(await t.runtime.send('s', { id: 'c1', content: '/stop' })).toMatchObject({ status: 'accepted', mode: 'command' });
      else await t.runtime.control('s', 'stop');
      await settle();
      expect(a.calls[0]!.turn.signal.aborted).toBe(true);
      expect(t.dones('s')).toEqual([
        expect.objectContaining({ success: false, reason: 'stopped_by_user', input_ids: ['m1'], cancelled_input_ids: ['m2', 'm3'] }),
      ]);
      expect(await t.runtime.status('s')).toMatchObject({ state: 'idle', backlog: 0 });
      expect(a.calls).toHaveLength(1);
    });
  }

  it('discards the late result and late deltas of a stopped turn', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 0 });
    await t.runtime.send('s', { id: 'm1', content: 'one' });
    await settle();
    const turn = a.calls[0]!;
    turn.turn.emit('early ');
    await t.runtime.control('s', 'stop');
    turn.turn.emit('late');
    turn.resolve('late result');
    await settle();
    const after = t.of('s').slice(t.of('s').findIndex((e) => e.type === 'done'));
    expect(after.map((e) => e.type)).toEqual(['done', 'state']);
    expect(t.of('s').filter((e) => e.type === 'message.delta').map((e) => e.data)).toEqual([
      { message_id: 'msg_1', content: 'early ' },
    ]);
  });

  it('cancels the open batch while collecting', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 300 });
    await Promise.all([
      t.runtime.send('s', { id: 'm1', content: 'one' }),
      t.runtime.send('s', { id: 'm2', content: 'two' }),
      t.runtime.send('s', { id: 'c1', content: '/stop' }),
    ]);
    await t.advance(5000);
    expect(a.calls).toHaveLength(0);
    expect(t.dones('s')).toEqual([
      expect.objectContaining({ success: false, reason: 'stopped_by_user', input_ids: [], cancelled_input_ids: ['m1', 'm2'] }),
    ]);
  });

  it('answers a stop with nothing to stop without a done', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent });
    await t.runtime.send('s', { id: 'c1', content: '/stop' });
    await settle();
    expect(t.dones('s')).toEqual([]);
    expect((await t.runtime.status('s'))?.state).toBe('idle');
  });

  it('works while the session is still activating', () => {
    const actor = createActor(sessionMachine, { input: { sessionId: 's', settings: settings() } });
    const effects: SessionEffect[] = [];
    actor.on('*', (e) => effects.push(e));
    actor.start(); // not activated yet: `created`
    actor.send({ type: 'input', input: { id: 'm1', content: 'one' } });
    actor.send({ type: 'stop' });
    actor.send({ type: 'activate' });
    expect(actor.getSnapshot().matches({ running: 'idle' })).toBe(true);
    expect(effects.some((e) => e.type === 'turn.start')).toBe(false);
    const done = effects.find((e) => e.type === 'output' && e.event.type === 'done');
    expect(done).toMatchObject({ event: { data: { reason: 'stopped_by_user', cancelled_input_ids: ['m1'] } } });
  });

  it('discards machine events tagged with a stopped turn, so no host check is needed', () => {
    const actor = createActor(sessionMachine, { input: { sessionId: 's', settings: settings({ debounceMs: 0 }) } });
    const outputs: string[] = [];
    actor.on('output', (e) => outputs.push(e.event.type));
    actor.start();
    actor.send({ type: 'activate' });
    actor.send({ type: 'input', input: { id: 'm1', content: 'one' } });
    actor.send({ type: 'stop' });
    actor.send({ type: 'input', input: { id: 'm2', content: 'two' } }); // turn 2 runs
    const before = outputs.length;
    actor.send({ type: 'agent.delta', turnId: 1, text: 'late' });
    actor.send({ type: 'agent.done', turnId: 1, text: 'late' });
    actor.send({ type: 'agent.error', turnId: 1, message: 'late' });
    expect(outputs.length).toBe(before);
    expect(actor.getSnapshot().context.turn?.id).toBe(2);
    actor.stop();
  });

  it('applies a control stop in call order between the inputs sent in the same tick', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 0 });
    const [first, , second] = await Promise.all([
      t.runtime.send('s', { id: 'm1', content: 'one' }),
      t.runtime.control('s', 'stop'),
      t.runtime.send('s', { id: 'm2', content: 'two' }),
    ]);
    expect(first!.status).toBe('accepted');
    expect(second!.status).toBe('accepted');
    await settle();
    // m1's turn was stopped (its agent, if it started, aborted); m2 runs a turn of its own.
    expect(t.dones('s')).toEqual([expect.objectContaining({ success: false, reason: 'stopped_by_user', input_ids: ['m1'] })]);
    expect(a.calls.filter((c) => !c.turn.signal.aborted).map((c) => c.turn.inputs.map((i) => i.id))).toEqual([['m2']]);
    a.last('s')!.resolve('fine');
    await settle();
    expect(t.dones('s').at(-1)).toMatchObject({ success: true, input_ids: ['m2'] });
    expect(turnOverlaps(t.events)).toEqual([]);
  });

  it('runs the next input normally after a stop', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 0 });
    await t.runtime.send('s', { id: 'm1', content: 'one' });
    await settle();
    await t.runtime.control('s', 'stop');
    await t.runtime.send('s', { id: 'm2', content: 'two' });
    await settle();
    expect(a.calls).toHaveLength(2);
    a.calls[1]!.resolve('fine');
    await settle();
    expect(t.dones('s').at(-1)).toMatchObject({ success: true, input_ids: ['m2'] });
  });
});

import { describe, expect, it } from 'vitest';
import type { Receipt } from '../src/index.ts';
import { controlledAgent, seqGaps, settle, testRuntime, turnOverlaps } from './helpers.ts';

describe('C8 outbound order', () => {
  it('numbers every event of a session from 1 without gaps, across turns, commands and failures', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 0 });
    await t.runtime.send('s', { id: 'm1', content: 'one' });
    await settle();
    a.calls[0]!.turn.emit('a');
    // Inputs, a command and the agent's failure, all in one tick.
    const sent = [t.runtime.send('s', { id: 'c1', content: '/status' }), t.runtime.send('s', { id: 'm2', content: 'two' })];
    a.calls[0]!.reject(new Error('x'));
    await Promise.all(sent);
    await settle();
    a.calls[1]!.turn.emit('b');
    a.calls[1]!.resolve();
    await t.runtime.send('t', { id: 'm1', content: 'other session' });
    await settle();
    expect(t.dones('s').map((d) => d.input_ids)).toEqual([['m1'], ['m2']]);
    const s = t.of('s');
    expect(s.map((e) => e.seq)).toEqual(s.map((_, i) => i + 1));
    expect(seqGaps(t.events)).toEqual([]);
    expect(turnOverlaps(t.events)).toEqual([]);
  });

  it('emits a turn as state running, message.start, deltas, message.end, done, state idle', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 0 });
    await t.runtime.send('s', { id: 'm1', content: 'one' });
    await settle();
    a.calls[0]!.turn.emit('hel');
    a.calls[0]!.turn.emit('lo');
    a.calls[0]!.resolve();
    await settle();
    expect(t.of('s').map((e) => [e.seq, e.type])).toEqual([
      [1, 'state'],
      [2, 'state'],
      [3, 'state'],
      [4, 'message.start'],
      [5, 'message.delta'],
      [6, 'message.delta'],
      [7, 'message.end'],
      [8, 'done'],
      [9, 'state'],
    ]);
    expect(t.of('s').filter((e) => e.type === 'state').map((e) => e.data.state)).toEqual(['created', 'idle', 'running', 'idle']);
  });

  it('sends a returned text as one delta when nothing was streamed', async () => {
    const t = testRuntime({ agent: async () => 'whole reply', debounceMs: 0 });
    await t.runtime.send('s', { id: 'm1', content: 'one' });
    await settle();
    expect(t.of('s').filter((e) => e.type === 'message.delta').map((e) => e.data.content)).toEqual(['whole reply']);
  });

  it('goes straight from one turn to the next without an idle in between', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 0 });
    await Promise.all([t.runtime.send('s', { id: 'm1', content: 'one' }), t.runtime.send('s', { id: 'm2', content: 'two' })]);
    await settle();
    a.calls[0]!.resolve();
    await settle();
    const states = t.of('s').filter((e) => e.type === 'state').map((e) => e.data.state);
    expect(states).toEqual(['created', 'idle', 'running', 'running']);
  });

  it('delivers events in seq order to subscribers that send from inside their callback', async () => {
    const t = testRuntime({ agent: async (turn) => `re: ${turn.inputs[0]?.content}`, debounceMs: 0 });
    let n = 0;
    const sent: Promise<Receipt>[] = [];
    t.runtime.eventsOf('s').subscribe((e) => {
      if (e.type === 'done' && n < 3) sent.push(t.runtime.send('s', { id: `m${++n}`, content: `${n}` }));
    });
    await t.runtime.send('s', { id: 'm0', content: '0' });
    for (let i = 0; i < 5; i++) await settle();
    expect((await Promise.all(sent)).map((r) => r.status)).toEqual(['accepted', 'accepted', 'accepted']);
    expect(t.dones('s').map((d) => d.input_ids)).toEqual([['m0'], ['m1'], ['m2'], ['m3']]);
    expect(seqGaps(t.events)).toEqual([]);
  });
});

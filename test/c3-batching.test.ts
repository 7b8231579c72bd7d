import { describe, expect, it } from 'vitest';
import { controlledAgent, settle, testRuntime } from './helpers.ts';

describe('C3 batching', () => {
  it('seals the batch debounceMs after its latest input', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 300, maxWaitMs: 2000 });
    await t.runtime.send('s', { id: 'm1', content: 'one' });
    await t.advance(200);
    await t.runtime.send('s', { id: 'm2', content: 'two' });
    await t.advance(299);
    expect(a.calls).toHaveLength(0);
    expect((await t.runtime.status('s'))?.state).toBe('collecting');
    await t.advance(1);
    expect(a.contents()).toEqual([['one', 'two']]);
  });

  it('seals the batch maxWaitMs after its first input, however often inputs keep coming', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 300, maxWaitMs: 1000 });
    for (let i = 0; i < 4; i++) {
      await t.runtime.send('s', { id: `m${i}`, content: `${i}` });
      await t.advance(250);
    }
    // t = 1000: the max-wait timer fired although each input restarted the debounce.
    expect(a.contents()).toEqual([['0', '1', '2', '3']]);
  });

  it('never lets a sealed batch take in a later input', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 100, maxWaitMs: 1000 });
    await t.runtime.send('s', { id: 'm1', content: 'one' });
    await t.advance(100);
    expect(await t.runtime.send('s', { id: 'm2', content: 'two' })).toEqual({ status: 'accepted', mode: 'queued', durability: 'volatile' });
    expect(a.calls).toHaveLength(1);
    a.calls[0]!.resolve();
    await t.advance(0);
    expect(a.contents()).toEqual([['one'], ['two']]);
  });

  it('starts a turn at once when batching is off (debounceMs 0)', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 0 });
    expect(await t.runtime.send('s', { id: 'm1', content: 'one' })).toEqual({ status: 'accepted', mode: 'primary', durability: 'volatile' });
    // No time passes: the agent is called once the turn's start is committed.
    await settle();
    expect(a.contents()).toEqual([['one']]);
  });

  it('keeps the max-wait deadline when the debounce timer restarts', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 500, maxWaitMs: 600 });
    await t.runtime.send('s', { id: 'm1', content: 'one' });
    await t.advance(400);
    await t.runtime.send('s', { id: 'm2', content: 'two' });
    await t.advance(199);
    expect(a.calls).toHaveLength(0);
    await t.advance(1);
    expect(a.contents()).toEqual([['one', 'two']]);
  });
});

describe('C2 arrival order', () => {
  it('hands backlog inputs to the agent in arrival order', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 0, busyPolicy: 'followup' });
    await Promise.all([0, 1, 2, 3, 4].map((i) => t.runtime.send('s', { id: `m${i}`, content: `${i}` })));
    for (let i = 0; i < 5; i++) {
      await t.advance(0);
      a.calls[i]!.resolve();
    }
    await t.advance(0);
    expect(a.contents()).toEqual([['0'], ['1'], ['2'], ['3'], ['4']]);
    expect(t.dones('s').map((d) => d.input_ids)).toEqual([['m0'], ['m1'], ['m2'], ['m3'], ['m4']]);
  });

  it('lists each accepted input in exactly one done', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 0 });
    await Promise.all([0, 1, 2, 3].map((i) => t.runtime.send('s', { id: `m${i}`, content: `${i}` })));
    await settle();
    a.calls[0]!.resolve();
    await t.advance(0);
    a.calls[1]!.resolve();
    await t.advance(0);
    expect(t.dones('s').flatMap((d) => d.input_ids)).toEqual(['m0', 'm1', 'm2', 'm3']);
  });
});

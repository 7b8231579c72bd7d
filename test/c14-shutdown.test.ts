import { describe, expect, it } from 'vitest';
import { RuntimeShuttingDownError } from '../src/index.ts';
import { controlledAgent, settle, testRuntime } from './helpers.ts';

describe('C14 shutdown', () => {
  it('rejects new input with a typed error once shutdown starts', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent });
    const done = t.runtime.shutdown();
    const receipt = await t.runtime.send('s', { id: 'm1', content: 'late' });
    expect(receipt.error).toBeInstanceOf(RuntimeShuttingDownError);
    expect(receipt.code).toBe('GATEWAY_OVERLOAD');
    await done;
  });

  it('lets a running turn finish within drainMs and reports cancelled backlog in a final done', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 0 });
    await Promise.all([t.runtime.send('s', { id: 'm1', content: 'one' }), t.runtime.send('s', { id: 'm2', content: 'two' })]);
    await settle(); // m1's turn runs, m2 waits
    let resolved = false;
    const done = t.runtime.shutdown({ drainMs: 1000 }).then(() => (resolved = true));
    await t.advance(500);
    expect(resolved).toBe(false);
    a.calls[0]!.resolve('finished');
    await settle();
    expect(resolved).toBe(true);
    await done;
    expect(a.calls[0]!.turn.signal.aborted).toBe(false);
    expect(t.dones('s')).toEqual([
      expect.objectContaining({ success: true, input_ids: ['m1'] }),
      expect.objectContaining({ success: false, reason: 'shutdown', input_ids: [], cancelled_input_ids: ['m2'] }),
    ]);
    expect(a.calls).toHaveLength(1);
  });

  it('aborts turns still running after drainMs', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 0 });
    await Promise.all([t.runtime.send('s', { id: 'm1', content: 'one' }), t.runtime.send('s', { id: 'm2', content: 'two' })]);
    await settle(); // m1's turn runs, m2 waits
    const done = t.runtime.shutdown({ drainMs: 1000 });
    await t.advance(1000);
    await done;
    expect(a.calls[0]!.turn.signal.aborted).toBe(true);
    expect(t.dones('s')).toEqual([
      expect.objectContaining({ success: false, reason: 'shutdown', input_ids: ['m1'], cancelled_input_ids: ['m2'] }),
    ]);
  });

  it('copes with sessions in every state and completes the event streams', async () => {
    const a = controlledAgent();
    const gate: (() => void)[] = [];
    const t = testRuntime({
      agent: a.agent,
      debounceMs: 300,
      commands: { slow: () => new Promise<string>((resolve) => gate.push(() => resolve('slow done'))) },
    });
    await t.runtime.open('idle');
    await t.runtime.send('busy', { id: 'm1', content: 'x' });
    await t.advance(300);
    await t.runtime.send('collecting', { id: 'm1', content: 'x' });
    await t.runtime.send('commanding', { id: 'c1', content: '/slow' });
    await t.runtime.send('gone', { id: 'm1', content: 'x' });
    await t.runtime.control('gone', 'terminate');
    await settle(); // the agent and the command handler are running
    expect(a.calls).toHaveLength(1);
    expect(gate).toHaveLength(1);
    let completed = false;
    t.runtime.events$.subscribe({ complete: () => (completed = true) });
    const done = t.runtime.shutdown({ drainMs: 100 });
    await t.advance(100);
    await done;
    expect(completed).toBe(true);
    expect(t.runtime.sessionIds()).toEqual([]);
    expect(t.dones('collecting')).toEqual([expect.objectContaining({ reason: 'shutdown', cancelled_input_ids: ['m1'] })]);
    expect(t.dones('busy')).toEqual([expect.objectContaining({ reason: 'shutdown', input_ids: ['m1'] })]);
    expect(t.of('gone').filter((e) => e.type === 'state').map((e) => e.data.state)).toEqual(['created', 'idle', 'terminated']);
  });

  it('resolves every call with the same promise', async () => {
    const t = testRuntime({ agent: async () => undefined });
    const first = t.runtime.shutdown();
    expect(t.runtime.shutdown()).toBe(first);
    await first;
  });
});

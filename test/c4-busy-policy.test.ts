import { describe, expect, it } from 'vitest';
import { SessionBusyError, type Turn } from '../src/index.ts';
import { controlledAgent, settle, testRuntime } from './helpers.ts';

describe('C4 busy policy', () => {
  it('collect (default): the backlog becomes the next batch, one turn', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 0 });
    t.runtime.send('s', { id: 'm1', content: 'one' });
    expect(t.runtime.send('s', { id: 'm2', content: 'two' }).mode).toBe('queued');
    t.runtime.send('s', { id: 'm3', content: 'three' });
    a.calls[0]!.resolve();
    await settle();
    expect(a.contents()).toEqual([['one'], ['two', 'three']]);
  });

  it('followup: one turn per input, FIFO', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 0, busyPolicy: 'followup' });
    for (const id of ['m1', 'm2', 'm3']) t.runtime.send('s', { id, content: id });
    a.calls[0]!.resolve();
    await settle();
    a.calls[1]!.resolve();
    await settle();
    expect(a.contents()).toEqual([['m1'], ['m2'], ['m3']]);
  });

  it('interrupt: aborts the running turn, then runs the backlog', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 0, busyPolicy: 'interrupt' });
    t.runtime.send('s', { id: 'm1', content: 'one' });
    const first = a.calls[0]!;
    expect(t.runtime.send('s', { id: 'm2', content: 'two' })).toEqual({ status: 'accepted', mode: 'queued', durability: 'volatile' });
    await settle();
    expect(first.turn.signal.aborted).toBe(true);
    expect(t.dones('s')[0]).toMatchObject({ success: false, reason: 'interrupted', input_ids: ['m1'] });
    expect(a.contents()).toEqual([['one'], ['two']]);
    first.resolve('late'); // discarded
    a.calls[1]!.resolve('fresh');
    await settle();
    const deltas = t.of('s').flatMap((e) => (e.type === 'message.delta' ? [e.data.content] : []));
    expect(deltas).toEqual(['fresh']);
  });

  it('reject: SESSION_BUSY while a turn runs, nothing queued', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 0, busyPolicy: 'reject' });
    t.runtime.send('s', { id: 'm1', content: 'one' });
    const receipt = t.runtime.send('s', { id: 'm2', content: 'two' });
    expect(receipt.status).toBe('rejected');
    expect(receipt.code).toBe('SESSION_BUSY');
    expect(receipt.error).toBeInstanceOf(SessionBusyError);
    a.calls[0]!.resolve();
    await settle();
    expect(a.calls).toHaveLength(1);
    // A rejected id is not remembered: the client may resend it once the session is idle.
    expect(t.runtime.send('s', { id: 'm2', content: 'two' }).status).toBe('accepted');
  });

  it('steer: hands inputs to a turn that reads turn.steer; unpulled ones go to the next batch', async () => {
    const pulled: string[] = [];
    let finish!: () => void;
    const turns: Turn[] = [];
    const agent = async (turn: Turn) => {
      turns.push(turn);
      if (turns.length > 1) return 'second';
      const iterator = turn.steer![Symbol.asyncIterator]();
      const next = await iterator.next();
      if (!next.done) pulled.push(next.value.id);
      await new Promise<void>((resolve) => (finish = resolve));
      return 'first';
    };
    const t = testRuntime({ agent, debounceMs: 0, busyPolicy: 'steer' });
    t.runtime.send('s', { id: 'm1', content: 'one' });
    await settle();
    expect(t.runtime.send('s', { id: 'm2', content: 'two' }).mode).toBe('injected');
    await settle();
    expect(t.runtime.send('s', { id: 'm3', content: 'three' }).mode).toBe('injected');
    finish();
    await settle();
    expect(pulled).toEqual(['m2']);
    expect(t.dones('s').map((d) => d.input_ids)).toEqual([['m1', 'm2'], ['m3']]);
  });

  it('steer falls back to collect when the agent does not read turn.steer', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 0, busyPolicy: 'steer' });
    t.runtime.send('s', { id: 'm1', content: 'one' });
    expect(t.runtime.send('s', { id: 'm2', content: 'two' }).mode).toBe('queued');
    a.calls[0]!.resolve();
    await settle();
    expect(a.contents()).toEqual([['one'], ['two']]);
  });

  it('rejects the newest input past backlogCap, never dropping silently', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 0, backlogCap: 2 });
    t.runtime.send('s', { id: 'm0', content: '0' });
    expect(t.runtime.send('s', { id: 'm1', content: '1' }).status).toBe('accepted');
    expect(t.runtime.send('s', { id: 'm2', content: '2' }).status).toBe('accepted');
    const over = t.runtime.send('s', { id: 'm3', content: '3' });
    expect(over).toMatchObject({ status: 'rejected', code: 'SESSION_BUSY' });
    a.calls[0]!.resolve();
    await settle();
    expect(a.contents()).toEqual([['0'], ['1', '2']]);
  });

  it('caps the open batch too', () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, backlogCap: 1 });
    t.runtime.send('s', { id: 'm0', content: '0' });
    expect(t.runtime.send('s', { id: 'm1', content: '1' }).code).toBe('SESSION_BUSY');
  });

  it('takes per-session settings from settingsFor', async () => {
    const a = controlledAgent();
    const t = testRuntime({
      agent: a.agent,
      debounceMs: 0,
      settingsFor: (id) => (id.startsWith('strict') ? { busyPolicy: 'reject' } : {}),
    });
    t.runtime.send('strict-1', { id: 'm1', content: 'x' });
    t.runtime.send('lax-1', { id: 'm1', content: 'x' });
    expect(t.runtime.send('strict-1', { id: 'm2', content: 'y' }).status).toBe('rejected');
    expect(t.runtime.send('lax-1', { id: 'm2', content: 'y' }).status).toBe('accepted');
  });
});

import { describe, expect, it } from 'vitest';
import { SessionBusyError, type Turn } from '../src/index.ts';
import { controlledAgent, settle, testRuntime } from './helpers.ts';

describe('C4 busy policy', () => {
  it('collect (default): the backlog becomes the next batch, one turn', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 0 });
    const receipts = await Promise.all([
      t.runtime.send('s', { id: 'm1', content: 'one' }),
      t.runtime.send('s', { id: 'm2', content: 'two' }),
      t.runtime.send('s', { id: 'm3', content: 'three' }),
    ]);
    expect(receipts.map((r) => r.mode)).toEqual(['primary', 'queued', 'queued']);
    await settle();
    a.calls[0]!.resolve();
    await settle();
    expect(a.contents()).toEqual([['one'], ['two', 'three']]);
  });

  it('followup: one turn per input, FIFO', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 0, busyPolicy: 'followup' });
    await Promise.all(['m1', 'm2', 'm3'].map((id) => t.runtime.send('s', { id, content: id })));
    await settle();
    a.calls[0]!.resolve();
    await settle();
    a.calls[1]!.resolve();
    await settle();
    expect(a.contents()).toEqual([['m1'], ['m2'], ['m3']]);
  });

  it('interrupt: aborts the running turn, then runs the backlog', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 0, busyPolicy: 'interrupt' });
    await t.runtime.send('s', { id: 'm1', content: 'one' });
    await settle();
    const first = a.calls[0]!;
    expect(await t.runtime.send('s', { id: 'm2', content: 'two' })).toEqual({ status: 'accepted', mode: 'queued', durability: 'volatile' });
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
    // m2 comes in the same tick: the turn m1 claimed already makes the session busy.
    const [accepted, receipt] = await Promise.all([
      t.runtime.send('s', { id: 'm1', content: 'one' }),
      t.runtime.send('s', { id: 'm2', content: 'two' }),
    ]);
    expect(accepted.status).toBe('accepted');
    expect(receipt.status).toBe('rejected');
    expect(receipt.code).toBe('SESSION_BUSY');
    expect(receipt.error).toBeInstanceOf(SessionBusyError);
    await settle();
    a.calls[0]!.resolve();
    await settle();
    expect(a.calls).toHaveLength(1);
    // A rejected id is not remembered: the client may resend it once the session is idle.
    expect((await t.runtime.send('s', { id: 'm2', content: 'two' })).status).toBe('accepted');
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
    await t.runtime.send('s', { id: 'm1', content: 'one' });
    await settle();
    expect((await t.runtime.send('s', { id: 'm2', content: 'two' })).mode).toBe('injected');
    await settle();
    expect((await t.runtime.send('s', { id: 'm3', content: 'three' })).mode).toBe('injected');
    finish();
    await settle();
    expect(pulled).toEqual(['m2']);
    expect(t.dones('s').map((d) => d.input_ids)).toEqual([['m1', 'm2'], ['m3']]);
  });

  it('steer falls back to collect when the agent does not read turn.steer', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 0, busyPolicy: 'steer' });
    const [first, second] = await Promise.all([
      t.runtime.send('s', { id: 'm1', content: 'one' }),
      t.runtime.send('s', { id: 'm2', content: 'two' }),
    ]);
    expect(first.mode).toBe('primary');
    expect(second.mode).toBe('queued');
    await settle();
    a.calls[0]!.resolve();
    await settle();
    expect(a.contents()).toEqual([['one'], ['two']]);
  });

  it('rejects the newest input past backlogCap, never dropping silently', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 0, backlogCap: 2 });
    const [first, m1, m2, over] = await Promise.all(['0', '1', '2', '3'].map((n) => t.runtime.send('s', { id: `m${n}`, content: n })));
    expect(first!.status).toBe('accepted');
    expect(m1!.status).toBe('accepted');
    expect(m2!.status).toBe('accepted');
    expect(over).toMatchObject({ status: 'rejected', code: 'SESSION_BUSY' });
    await settle();
    a.calls[0]!.resolve();
    await settle();
    expect(a.contents()).toEqual([['0'], ['1', '2']]);
  });

  it('caps the open batch too', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, backlogCap: 1 });
    const [first, second] = await Promise.all([t.runtime.send('s', { id: 'm0', content: '0' }), t.runtime.send('s', { id: 'm1', content: '1' })]);
    expect(first.status).toBe('accepted');
    expect(second.code).toBe('SESSION_BUSY');
  });

  it('takes per-session settings from settingsFor', async () => {
    const a = controlledAgent();
    const t = testRuntime({
      agent: a.agent,
      debounceMs: 0,
      settingsFor: (id) => (id.startsWith('strict') ? { busyPolicy: 'reject' } : {}),
    });
    const receipts = await Promise.all([
      t.runtime.send('strict-1', { id: 'm1', content: 'x' }),
      t.runtime.send('lax-1', { id: 'm1', content: 'x' }),
      t.runtime.send('strict-1', { id: 'm2', content: 'y' }),
      t.runtime.send('lax-1', { id: 'm2', content: 'y' }),
    ]);
    expect(receipts.map((r) => r.status)).toEqual(['accepted', 'accepted', 'rejected', 'accepted']);
  });
});

import { describe, expect, it } from 'vitest';
import { createMachine } from 'xstate';
import { controlledAgent, settle, testRuntime } from './helpers.ts';

describe('C7 failure isolation', () => {
  it('turns a rejecting agent into error WORKER_CRASH then done, and goes on', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 0 });
    await Promise.all([t.runtime.send('s', { id: 'm1', content: 'one' }), t.runtime.send('s', { id: 'm2', content: 'two' })]);
    await settle();
    a.calls[0]!.reject(new Error('model exploded'));
    await settle();
    const types = t.types('s');
    const error = t.of('s').find((e) => e.type === 'error');
    expect(error?.data).toEqual({ code: 'WORKER_CRASH', message: 'model exploded' });
    expect(types.indexOf('done')).toBe(types.indexOf('error') + 1);
    expect(t.dones('s')[0]).toMatchObject({ success: false, reason: 'failed', input_ids: ['m1'] });
    expect(a.contents()).toEqual([['one'], ['two']]);
  });

  it('catches an agent that throws synchronously', async () => {
    let calls = 0;
    const t = testRuntime({
      agent: () => {
        calls++;
        if (calls === 1) throw new TypeError('sync boom');
        return 'ok';
      },
      debounceMs: 0,
    });
    await Promise.all([t.runtime.send('s', { id: 'm1', content: 'one' }), t.runtime.send('s', { id: 'm2', content: 'two' })]);
    await settle();
    expect(t.dones('s').map((d) => d.success)).toEqual([false, true]);
  });

  it('aborts a turn past turnTimeoutMs with TURN_TIMEOUT and runs the next batch', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 0, turnTimeoutMs: 1000 });
    await Promise.all([t.runtime.send('s', { id: 'm1', content: 'one' }), t.runtime.send('s', { id: 'm2', content: 'two' })]);
    await settle(); // m1's turn runs before the clock moves
    await t.advance(999);
    expect(a.calls[0]!.turn.signal.aborted).toBe(false);
    await t.advance(1);
    expect(a.calls[0]!.turn.signal.aborted).toBe(true);
    expect(t.of('s').find((e) => e.type === 'error')?.data.code).toBe('TURN_TIMEOUT');
    expect(t.dones('s')[0]).toMatchObject({ success: false, reason: 'timeout', input_ids: ['m1'] });
    expect(a.contents()).toEqual([['one'], ['two']]);
    // The second turn has its own, fresh timeout.
    await t.advance(999);
    expect(a.calls[1]!.turn.signal.aborted).toBe(false);
    a.calls[0]!.resolve('too late'); // ignored
    a.calls[1]!.resolve('in time');
    await settle();
    expect(t.dones('s')[1]).toMatchObject({ success: true, input_ids: ['m2'] });
  });

  it("never lets one session's failure touch another", async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 0 });
    await Promise.all([t.runtime.send('bad', { id: 'm1', content: 'x' }), t.runtime.send('good', { id: 'm1', content: 'y' })]);
    await settle();
    expect(a.calls).toHaveLength(2);
    a.last('bad')!.reject('string rejection');
    await settle();
    expect(t.of('good').map((e) => e.type)).not.toContain('error');
    a.last('good')!.resolve('fine');
    await settle();
    expect(t.dones('good')).toEqual([expect.objectContaining({ success: true })]);
    expect(t.of('bad').find((e) => e.type === 'error')?.data.message).toBe('string rejection');
  });

  it('a command handler that throws (sync or async) is reported on its session and the session goes on', async () => {
    const a = controlledAgent();
    const t = testRuntime({
      agent: a.agent,
      debounceMs: 0,
      commands: {
        boom: () => {
          throw new Error('handler bug');
        },
        later: async () => Promise.reject(new Error('async handler bug')),
      },
    });
    const receipts = await Promise.all([t.runtime.send('s', { id: 'c1', content: '/boom' }), t.runtime.send('s', { id: 'c2', content: '/later' })]);
    expect(receipts).toMatchObject([
      { status: 'accepted', mode: 'command' },
      { status: 'accepted', mode: 'command' },
    ]);
    await settle();
    const errors = t.of('s').flatMap((e) => (e.type === 'error' ? [e.data] : []));
    expect(errors).toEqual([
      expect.objectContaining({ event_id: 'c1', message: expect.stringContaining('handler bug') }),
      expect.objectContaining({ event_id: 'c2', message: expect.stringContaining('async handler bug') }),
    ]);
    await t.runtime.send('s', { id: 'm1', content: 'still here' });
    await settle();
    a.last('s')!.resolve('yes');
    await settle();
    expect(t.dones('s').at(-1)).toMatchObject({ success: true, input_ids: ['m1'] });
  });

  it('an onboarding analyzer that throws asks the question again; the session goes on', async () => {
    let calls = 0;
    const t = testRuntime({
      agent: async () => undefined,
      onboarding: {
        analyzer: async () => {
          if (++calls === 1) throw new Error('analyzer bug');
          return { reflection: 'noted', profile: {} };
        },
      },
    });
    await t.runtime.open('o', { kind: 'onboarding' });
    await t.runtime.control('o', 'start');
    await settle();
    await t.runtime.respond('o', { id: 'a1', questionId: 'q1', answers: { q: 'x' } });
    await settle();
    expect(t.of('o').some((e) => e.type === 'error')).toBe(true);
    expect(await t.runtime.respond('o', { id: 'a2', questionId: 'q1', answers: { q: 'y' } })).toMatchObject({ status: 'accepted' });
    await settle();
    const asked = t.of('o').flatMap((e) => (e.type === 'question_request' ? [e.data.id] : []));
    expect(asked).toEqual(['q1', 'q1', 'q2']);
  });

  it('a user kind that throws while its session starts: that send is rejected by name, other sessions go on', async () => {
    const errors: unknown[] = [];
    const broken = { machine: createMachine({}), input: () => { throw new Error('kind bug'); } };
    const t = testRuntime({ agent: async () => 'ok', debounceMs: 0, kinds: { broken }, onError: (e) => errors.push(e) });
    const receipt = await t.runtime.send('b', { id: 'm1', content: 'x' }, { kind: 'broken' });
    expect(receipt).toMatchObject({ status: 'rejected', code: 'INTERNAL_ERROR' });
    expect(receipt.error?.message).toMatch(/could not be started: kind bug/);
    expect(errors).toHaveLength(1);
    expect(t.runtime.sessionIds()).toEqual([]);
    expect(await t.runtime.send('a', { id: 'm1', content: 'x' })).toMatchObject({ status: 'accepted' });
  });
});

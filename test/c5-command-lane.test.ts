import { describe, expect, it } from 'vitest';
import { controlledAgent, settle, testRuntime } from './helpers.ts';

const typesAndIds = (events: ReturnType<typeof testRuntime>['events']) =>
  events.map((e) => (e.type === 'message' ? `message:${e.data.id}` : e.type === 'done' ? `done:${e.data.input_ids.join(',')}` : e.type));

describe('C5 command lane', () => {
  it('never merges a command into a batch', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 100 });
    const receipts = await Promise.all([
      t.runtime.send('s', { id: 'm1', content: 'one' }),
      t.runtime.send('s', { id: 'c1', content: '/status' }),
      t.runtime.send('s', { id: 'm2', content: 'two' }),
    ]);
    expect(receipts[1]).toEqual({ status: 'accepted', mode: 'command' });
    await t.advance(100);
    expect(a.contents()).toEqual([['one', 'two']]);
  });

  it('priority (default): a command runs at once, even during a turn', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 0 });
    await Promise.all([t.runtime.send('s', { id: 'm1', content: 'one' }), t.runtime.send('s', { id: 'c1', content: '/status' })]);
    await settle();
    const status = t.of('s').find((e) => e.type === 'message');
    expect(status?.data).toMatchObject({ role: 'system', content: 'state: busy; backlog: 0; turns: 1' });
    expect(t.dones('s')).toHaveLength(0); // the turn is still running
  });

  it('ordered: a command waits for the work that arrived before it, and later work waits for it', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 0, commandLane: 'ordered' });
    await Promise.all([
      t.runtime.send('s', { id: 'm1', content: 'one' }),
      t.runtime.send('s', { id: 'c1', content: '/status' }),
      t.runtime.send('s', { id: 'm2', content: 'two' }),
    ]);
    await settle();
    expect(t.of('s').some((e) => e.type === 'message')).toBe(false);
    a.calls[0]!.resolve();
    await settle();
    a.calls[1]!.resolve();
    await settle();
    expect(typesAndIds(t.of('s')).filter((x) => x.startsWith('message:') || x.startsWith('done:'))).toEqual([
      'done:m1',
      'message:c1:reply',
      'done:m2',
    ]);
  });

  it('ordered: a command seals the open batch so later inputs cannot overtake it', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 300, commandLane: 'ordered' });
    await Promise.all([
      t.runtime.send('s', { id: 'm1', content: 'one' }),
      t.runtime.send('s', { id: 'c1', content: '/status' }),
      t.runtime.send('s', { id: 'm2', content: 'two' }),
    ]);
    await settle(); // no time passes: the command, not the debounce, sealed m1's batch
    expect(a.contents()).toEqual([['one']]);
    a.calls[0]!.resolve();
    await settle();
    expect(a.contents()).toEqual([['one'], ['two']]);
  });

  it('serializes commands among themselves, async handlers included', async () => {
    const a = controlledAgent();
    const log: string[] = [];
    const gates: (() => void)[] = [];
    const slow = (name: string) => () => {
      log.push(`start ${name}`);
      return new Promise<string>((resolve) => gates.push(() => {
        log.push(`end ${name}`);
        resolve(name);
      }));
    };
    const t = testRuntime({ agent: a.agent, commands: { one: slow('one'), two: { description: 'the second', handler: slow('two') } } });
    await Promise.all([
      t.runtime.send('s', { id: 'c1', content: '/one' }),
      t.runtime.send('s', { id: 'c2', content: '/two' }),
      t.runtime.send('s', { id: 'c3', content: '/status' }),
    ]);
    await settle();
    expect(log).toEqual(['start one']);
    gates[0]!();
    await settle();
    expect(log).toEqual(['start one', 'end one', 'start two']);
    gates[1]!();
    await settle();
    const replies = t.of('s').flatMap((e) => (e.type === 'message' ? [e.data.content] : []));
    expect(replies[0]).toBe('one');
    expect(replies[1]).toBe('two');
    expect(replies[2]).toMatch(/^state: idle/);
  });

  it('passes args, lists registered commands in /help, and reports a failing handler as INTERNAL_ERROR', async () => {
    const a = controlledAgent();
    const t = testRuntime({
      agent: a.agent,
      commands: {
        echo: { description: 'repeat the args', handler: ({ args }) => `you said ${args}` },
        boom: () => {
          throw new Error('kaput');
        },
      },
    });
    await Promise.all([
      t.runtime.send('s', { id: 'c1', content: '/echo  hello there ' }),
      t.runtime.send('s', { id: 'c2', content: '/help' }),
      t.runtime.send('s', { id: 'c3', content: '/boom' }),
    ]);
    await settle();
    const out = t.of('s').filter((e) => e.type === 'message' || e.type === 'error').map((e) => e.data);
    expect(out[0]).toMatchObject({ content: 'you said hello there' });
    expect(out[1]).toMatchObject({ content: expect.stringContaining('/echo — repeat the args') });
    expect(out[2]).toMatchObject({ code: 'INTERNAL_ERROR', message: '/boom failed: kaput' });
    // The session is not wedged by the failure.
    await t.runtime.send('s', { id: 'c4', content: '/echo again' });
    await settle();
    expect(t.of('s').at(-1)?.data).toMatchObject({ content: 'you said again' });
  });

  it('rejects an unknown command with INVALID_MESSAGE and emits nothing', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent });
    await t.runtime.open('s');
    await settle();
    const before = t.events.length;
    expect(await t.runtime.send('s', { id: 'c1', content: '/nope' })).toMatchObject({ status: 'rejected', code: 'INVALID_MESSAGE' });
    await settle();
    expect(t.events.length).toBe(before);
  });

  it('honours a custom command prefix', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 0, commandPrefix: '!' });
    expect((await t.runtime.send('s', { id: 'c1', content: '!status' })).mode).toBe('command');
    expect((await t.runtime.send('s', { id: 'm1', content: '/status' })).mode).toBe('primary');
  });

  it('a handler that never settles times out after turnTimeoutMs: TURN_TIMEOUT, its signal aborted, the lane free again', async () => {
    const a = controlledAgent();
    const signals: AbortSignal[] = [];
    const t = testRuntime({
      agent: a.agent,
      debounceMs: 0,
      turnTimeoutMs: 1000,
      commands: { hang: ({ signal }) => (signals.push(signal), new Promise<string>(() => undefined)), ping: () => 'pong' },
    });
    await Promise.all([t.runtime.send('s', { id: 'c1', content: '/hang' }), t.runtime.send('s', { id: 'c2', content: '/ping' })]);
    await settle(); // /hang runs before the clock moves
    expect(signals).toHaveLength(1);
    await t.advance(999);
    expect(signals[0]!.aborted).toBe(false);
    expect(t.of('s').some((e) => e.type === 'message')).toBe(false); // /ping waits for the lane
    await t.advance(1);
    expect(signals[0]!.aborted).toBe(true);
    const error = t.of('s').find((e) => e.type === 'error');
    expect(error?.data).toMatchObject({ code: 'TURN_TIMEOUT', event_id: 'c1' });
    expect(t.of('s').find((e) => e.type === 'message')?.data).toMatchObject({ id: 'c2:reply', content: 'pong' });
  });
});

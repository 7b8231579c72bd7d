import { describe, expect, it } from 'vitest';
import { createRuntime, runtimeDefaults, type RuntimeOptions } from '../src/index.ts';
import { MAX_METADATA_DEPTH } from '../src/runtime/validate-input.ts';
import { controlledAgent, testRuntime } from './helpers.ts';

const agent = async () => undefined;
const nested = (levels: number): Record<string, unknown> => (levels <= 1 ? {} : { next: nested(levels - 1) });
const cyclic = () => {
  const value: Record<string, unknown> = {};
  value.self = value;
  return value;
};

describe('createRuntime options', () => {
  it('documents its defaults in one place', () => {
    expect(runtimeDefaults).toEqual({
      debounceMs: 300,
      maxWaitMs: 2000,
      busyPolicy: 'collect',
      backlogCap: 100,
      turnTimeoutMs: 120_000,
      commandLane: 'priority',
      commandPrefix: '/',
      idempotencyWindow: 1000,
      idleTimeoutMs: 600_000,
      maxLiveSessions: 50_000,
      historyWindow: 50,
      storeRetryMs: 1000,
      ownerCheckMs: 1000,
      retentionMs: 2_592_000_000,
    });
  });

  it.each([
    [{ debounceMs: -1 }, /option "debounceMs" .* got -1/],
    [{ maxWaitMs: 1.5 }, /option "maxWaitMs" .* got 1.5/],
    [{ busyPolicy: 'queue' }, /option "busyPolicy" .* got "queue"/],
    [{ backlogCap: 0 }, /option "backlogCap" .* got 0/],
    [{ commandLane: 'fast' }, /option "commandLane" .* got "fast"/],
    [{ commandPrefix: '' }, /option "commandPrefix" .* got ""/],
    [{ agent: 'not a function' }, /option "agent" .* got "not a function"/],
    [{ debounce: 10 }, /unknown option "debounce"/],
  ])('rejects %o with a TypeError naming the option and the value', (bad, message) => {
    expect(() => createRuntime({ agent, ...bad } as unknown as RuntimeOptions)).toThrow(TypeError);
    expect(() => createRuntime({ agent, ...bad } as unknown as RuntimeOptions)).toThrow(message);
  });

  it('rejects commands that replace a built-in or have no handler', () => {
    expect(() => createRuntime({ agent, commands: { stop: () => 'x' } })).toThrow(/built in/);
    expect(() => createRuntime({ agent, commands: { 'bad name': () => 'x' } })).toThrow(/must match/);
    expect(() => createRuntime({ agent, commands: { x: {} as never } })).toThrow(/needs a handler/);
  });

  it('validates per-session settings when a session is created', () => {
    const t = testRuntime({ agent, settingsFor: () => ({ busyPolicy: 'nope' as never }) });
    expect(() => t.runtime.send('s', { id: 'm', content: 'x' })).toThrow(/settingsFor: option "busyPolicy"/);
  });
});

describe('inspection', () => {
  it('attaches the inspect observer to every session actor, for live inspection tools', () => {
    const seen: string[] = [];
    const t = testRuntime({ agent, inspect: (e) => seen.push(`${e.type}`) });
    t.runtime.send('s', { id: 'm', content: 'x' });
    expect(seen).toContain('@xstate.actor');
    expect(seen).toContain('@xstate.event');
    expect(seen).toContain('@xstate.snapshot');
  });
});

describe('send input validation', () => {
  it.each([
    ['', { id: 'm', content: 'x' }, /sessionId/],
    ['s', { id: '', content: 'x' }, /input.id/],
    ['s', { id: 'm', content: 42 }, /input.content/],
    ['s', null, /input must be an object/],
    ['s', { id: 'm', content: 'x', metadata: 'meta' }, /input.metadata/],
    // C15: a store could not serialize these (a stack overflow, a cycle): refused here instead.
    ['s', { id: 'm', content: 'x', metadata: nested(MAX_METADATA_DEPTH + 1) }, /input.metadata must not nest more than/],
    ['s', { id: 'm', content: 'x', metadata: cyclic() }, /input.metadata must not nest more than/],
  ])('answers bad input (%s, %o) with INVALID_MESSAGE instead of throwing', (sessionId, input, message) => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent });
    const receipt = t.runtime.send(sessionId, input as never);
    expect(receipt).toMatchObject({ status: 'rejected', code: 'INVALID_MESSAGE' });
    expect(receipt.error?.message).toMatch(message);
    expect(a.calls).toHaveLength(0);
  });

  it('passes metadata through to the agent', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 0 });
    t.runtime.send('s', { id: 'm', content: 'x', metadata: { lang: 'en' } });
    expect(a.calls[0]?.turn.inputs[0]).toEqual({ id: 'm', content: 'x', metadata: { lang: 'en' } });
  });

  it('throws SessionNotFoundError for control on an unknown session', () => {
    const t = testRuntime({ agent });
    expect(() => t.runtime.control('nobody', 'stop')).toThrow(expect.objectContaining({ code: 'SESSION_NOT_FOUND' }));
  });
});

describe('session lifecycle', () => {
  it('terminates a session: inputs are then rejected with SESSION_TERMINATED', () => {
    const t = testRuntime({ agent });
    t.runtime.open('s');
    t.runtime.control('s', 'terminate');
    expect(t.runtime.status('s')?.state).toBe('terminated');
    expect(t.runtime.send('s', { id: 'm', content: 'x' })).toMatchObject({ status: 'rejected', code: 'SESSION_TERMINATED' });
  });

  it('deletes a session: it is forgotten and its stream completes', async () => {
    const t = testRuntime({ agent });
    t.runtime.open('s');
    let completed = false;
    t.runtime.eventsOf('s').subscribe({ complete: () => (completed = true) });
    t.runtime.control('s', 'delete');
    await Promise.resolve();
    expect(t.runtime.status('s')).toBeUndefined();
    expect(completed).toBe(true);
    expect(t.of('s').map((e) => (e.type === 'state' ? e.data.state : e.type))).toEqual(['created', 'idle', 'deleted']);
  });
});

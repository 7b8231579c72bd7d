import { describe, expect, it } from 'vitest';
import { createRuntime, InputLimitError, runtimeDefaults, SessionNotFoundError, type RuntimeOptions } from '../src/index.ts';
import { MAX_METADATA_DEPTH } from '../src/runtime/validate-input.ts';
import { controlledAgent, settle, testRuntime } from './helpers.ts';

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
      approvalTimeoutMs: 300_000,
      storeRetryMs: 1000,
      loadTimeoutMs: 30_000,
      ownerCheckMs: 1000,
      retentionMs: 2_592_000_000,
      clusterSweepMs: 2000,
      commitDelayMs: 4,
      maxContentBytes: 262_144,
      maxInputIdLength: 256,
      maxSessionIdLength: 4096,
      maxMetadataDepth: 32,
      maxMetadataBytes: 65_536,
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
    expect(() => createRuntime({ commitDelayMs: 0, agent, ...bad } as unknown as RuntimeOptions)).toThrow(TypeError);
    expect(() => createRuntime({ commitDelayMs: 0, agent, ...bad } as unknown as RuntimeOptions)).toThrow(message);
  });

  it('rejects commands that replace a built-in or have no handler', () => {
    expect(() => createRuntime({ commitDelayMs: 0, agent, commands: { stop: () => 'x' } })).toThrow(/built in/);
    expect(() => createRuntime({ commitDelayMs: 0, agent, commands: { 'bad name': () => 'x' } })).toThrow(/must match/);
    expect(() => createRuntime({ commitDelayMs: 0, agent, commands: { x: {} as never } })).toThrow(/needs a handler/);
  });

  it('validates per-session settings when a session is created', async () => {
    const errors: unknown[] = [];
    const t = testRuntime({ agent, settingsFor: () => ({ busyPolicy: 'nope' as never }), onError: (e) => errors.push(e) });
    // A configuration bug: the session is not had, the call says why, onError gets the TypeError.
    const receipt = await t.runtime.send('s', { id: 'm', content: 'x' });
    expect(receipt).toMatchObject({ status: 'rejected', code: 'INTERNAL_ERROR' });
    expect(receipt.error?.message).toMatch(/settingsFor: option "busyPolicy"/);
    expect(errors).toEqual([expect.any(TypeError)]);
    expect(t.runtime.sessionIds()).toEqual([]);
  });
});

describe('inspection', () => {
  it('attaches the inspect observer to every session actor, for live inspection tools', async () => {
    const seen: string[] = [];
    const t = testRuntime({ agent, inspect: (e) => seen.push(`${e.type}`) });
    await t.runtime.send('s', { id: 'm', content: 'x' });
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
  ])('answers bad input (%s, %o) with INVALID_MESSAGE instead of throwing', async (sessionId, input, message) => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent });
    const receipt = await t.runtime.send(sessionId, input as never);
    expect(receipt).toMatchObject({ status: 'rejected', code: 'INVALID_MESSAGE' });
    expect(receipt.error?.message).toMatch(message);
    await settle();
    expect(a.calls).toHaveLength(0);
  });

  it.each([
    ['maxContentBytes', { maxContentBytes: 1000 }, 's', { id: 'big', content: 'x'.repeat(1001) }],
    // Bytes, not characters: 400 three-byte characters are 1200 bytes.
    ['maxContentBytes', { maxContentBytes: 1000 }, 's', { id: 'big', content: '€'.repeat(400) }],
    ['maxContentBytes', {}, 's', { id: 'big', content: 'x'.repeat(10 * 1024 * 1024) }],
    ['maxSessionIdLength', {}, 's'.repeat(100_000), { id: 'big', content: 'x' }],
    ['maxSessionIdLength', { maxSessionIdLength: 8 }, 'sessionXY', { id: 'big', content: 'x' }],
    ['maxInputIdLength', { maxInputIdLength: 8 }, 's', { id: 'big'.repeat(3), content: 'x' }],
    ['maxMetadataDepth', { maxMetadataDepth: 3 }, 's', { id: 'big', content: 'x', metadata: nested(5) }],
    ['maxMetadataBytes', { maxMetadataBytes: 100 }, 's', { id: 'big', content: 'x', metadata: { text: 'x'.repeat(100) } }],
  ])('C15: refuses an input over %s with InputLimitError naming it, and runs nothing', async (limit, options, sessionId, input) => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 0, ...options });
    const receipt = await t.runtime.send(sessionId, input);
    expect(receipt).toMatchObject({ status: 'rejected', code: 'INVALID_MESSAGE' });
    expect(receipt.error).toBeInstanceOf(InputLimitError);
    expect(receipt.error).toMatchObject({ limit, inputId: expect.stringMatching(/^big/) });
    expect(receipt.error?.message).toContain(limit);
    await settle();
    expect(a.calls).toHaveLength(0);
    expect(t.runtime.sessionIds()).toEqual([]);
  });

  it('C15: takes an input exactly at every limit', async () => {
    const a = controlledAgent();
    const limits = { maxContentBytes: 12, maxInputIdLength: 4, maxSessionIdLength: 4, maxMetadataDepth: 2, maxMetadataBytes: 22 };
    const t = testRuntime({ agent: a.agent, debounceMs: 0, ...limits });
    const receipt = await t.runtime.send('ssss', { id: 'iiii', content: '€€€€', metadata: { a: { b: 'xxxxxxxx' } } });
    expect(receipt).toMatchObject({ status: 'accepted' });
  });

  it('C15: refuses an answer over maxContentBytes with InputLimitError naming it', async () => {
    const t = testRuntime({ agent, maxContentBytes: 10 });
    await t.runtime.open('onb', { kind: 'onboarding' });
    const receipt = await t.runtime.respond('onb', { id: 'ans-1', questionId: 'q1', answers: { q: 'x'.repeat(11) } });
    expect(receipt.error).toBeInstanceOf(InputLimitError);
    expect(receipt.error).toMatchObject({ inputId: 'ans-1', limit: 'maxContentBytes' });
  });

  it('passes metadata through to the agent', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 0 });
    await t.runtime.send('s', { id: 'm', content: 'x', metadata: { lang: 'en' } });
    await settle();
    expect(a.calls[0]?.turn.inputs[0]).toEqual({ id: 'm', content: 'x', metadata: { lang: 'en' } });
  });

  it('rejects control on an unknown session with SessionNotFoundError', async () => {
    const t = testRuntime({ agent });
    const control = t.runtime.control('nobody', 'stop');
    await expect(control).rejects.toBeInstanceOf(SessionNotFoundError);
    await expect(control).rejects.toThrow(expect.objectContaining({ code: 'SESSION_NOT_FOUND' }));
  });
});

describe('session lifecycle', () => {
  it('terminates a session: inputs are then rejected with SESSION_TERMINATED', async () => {
    const t = testRuntime({ agent });
    await t.runtime.open('s');
    await t.runtime.control('s', 'terminate');
    expect((await t.runtime.status('s'))?.state).toBe('terminated');
    expect(await t.runtime.send('s', { id: 'm', content: 'x' })).toMatchObject({ status: 'rejected', code: 'SESSION_TERMINATED' });
  });

  it('deletes a session: it is forgotten and its stream completes', async () => {
    const t = testRuntime({ agent });
    await t.runtime.open('s');
    let completed = false;
    t.runtime.eventsOf('s').subscribe({ complete: () => (completed = true) });
    await t.runtime.control('s', 'delete');
    await settle();
    expect(await t.runtime.status('s')).toBeUndefined();
    expect(completed).toBe(true);
    expect(t.of('s').map((e) => (e.type === 'state' ? e.data.state : e.type))).toEqual(['created', 'idle', 'deleted']);
  });
});

import { describe, expect, it } from 'vitest';
import { InvalidMessageError } from '../src/index.ts';
import { controlledAgent, settle, testRuntime } from './helpers.ts';

describe('C10 idempotent input', () => {
  it('acknowledges a resend as duplicate and never runs it twice', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 0 });
    expect(t.runtime.send('s', { id: 'm1', content: 'hello' }).status).toBe('accepted');
    expect(t.runtime.send('s', { id: 'm1', content: 'hello' })).toEqual({ status: 'duplicate' });
    a.calls[0]!.resolve();
    await settle();
    expect(t.runtime.send('s', { id: 'm1', content: 'hello' })).toEqual({ status: 'duplicate' });
    await settle();
    expect(a.calls).toHaveLength(1);
    expect(t.dones('s').flatMap((d) => d.input_ids)).toEqual(['m1']);
  });

  it('rejects the same id with different content as INVALID_MESSAGE', () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent });
    t.runtime.send('s', { id: 'm1', content: 'hello' });
    const receipt = t.runtime.send('s', { id: 'm1', content: 'goodbye' });
    expect(receipt).toMatchObject({ status: 'rejected', code: 'INVALID_MESSAGE' });
    expect(receipt.error).toBeInstanceOf(InvalidMessageError);
  });

  it('scopes ids to their session', () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent });
    t.runtime.send('s1', { id: 'm1', content: 'x' });
    expect(t.runtime.send('s2', { id: 'm1', content: 'x' }).status).toBe('accepted');
  });

  it('deduplicates commands too', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent });
    t.runtime.send('s', { id: 'c1', content: '/status' });
    expect(t.runtime.send('s', { id: 'c1', content: '/status' }).status).toBe('duplicate');
    await settle();
    expect(t.of('s').filter((e) => e.type === 'message')).toHaveLength(1);
  });

  it('remembers a bounded window of ids, forgetting the oldest first', () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, idempotencyWindow: 3, backlogCap: 1000 });
    for (let i = 0; i < 4; i++) t.runtime.send('s', { id: `m${i}`, content: 'x' });
    expect(t.runtime.send('s', { id: 'm3', content: 'x' }).status).toBe('duplicate');
    expect(t.runtime.send('s', { id: 'm1', content: 'x' }).status).toBe('duplicate');
    expect(t.runtime.send('s', { id: 'm0', content: 'x' }).status).toBe('accepted');
  });
});

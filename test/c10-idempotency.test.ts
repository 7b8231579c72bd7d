import { describe, expect, it } from 'vitest';
import { InvalidMessageError } from '../src/index.ts';
import { controlledAgent, settle, testRuntime } from './helpers.ts';

describe('C10 idempotent input', () => {
  it('acknowledges a resend as duplicate and never runs it twice', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 0 });
    // The resend comes in the same tick, before the first one's receipt.
    const [first, resend] = await Promise.all([
      t.runtime.send('s', { id: 'm1', content: 'hello' }),
      t.runtime.send('s', { id: 'm1', content: 'hello' }),
    ]);
    expect(first.status).toBe('accepted');
    expect(resend).toEqual({ status: 'duplicate', durability: 'volatile' });
    await settle();
    a.calls[0]!.resolve();
    await settle();
    expect(await t.runtime.send('s', { id: 'm1', content: 'hello' })).toEqual({ status: 'duplicate', durability: 'volatile' });
    await settle();
    expect(a.calls).toHaveLength(1);
    expect(t.dones('s').flatMap((d) => d.input_ids)).toEqual(['m1']);
  });

  it('rejects the same id with different content as INVALID_MESSAGE', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent });
    const [first, receipt] = await Promise.all([
      t.runtime.send('s', { id: 'm1', content: 'hello' }),
      t.runtime.send('s', { id: 'm1', content: 'goodbye' }),
    ]);
    expect(first.status).toBe('accepted');
    expect(receipt).toMatchObject({ status: 'rejected', code: 'INVALID_MESSAGE' });
    expect(receipt.error).toBeInstanceOf(InvalidMessageError);
  });

  it('scopes ids to their session', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent });
    expect((await t.runtime.send('s1', { id: 'm1', content: 'x' })).status).toBe('accepted');
    expect((await t.runtime.send('s2', { id: 'm1', content: 'x' })).status).toBe('accepted');
  });

  it('deduplicates commands too', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent });
    const [first, resend] = await Promise.all([
      t.runtime.send('s', { id: 'c1', content: '/status' }),
      t.runtime.send('s', { id: 'c1', content: '/status' }),
    ]);
    expect(first.status).toBe('accepted');
    expect(resend.status).toBe('duplicate');
    await settle();
    expect(t.of('s').filter((e) => e.type === 'message')).toHaveLength(1);
  });

  it('remembers a bounded window of ids, forgetting the oldest first', async () => {
    const a = controlledAgent();
    const t = testRuntime({ agent: a.agent, idempotencyWindow: 3, backlogCap: 1000 });
    const sent = await Promise.all([0, 1, 2, 3].map((i) => t.runtime.send('s', { id: `m${i}`, content: 'x' })));
    expect(sent.map((r) => r.status)).toEqual(['accepted', 'accepted', 'accepted', 'accepted']);
    expect((await t.runtime.send('s', { id: 'm3', content: 'x' })).status).toBe('duplicate');
    expect((await t.runtime.send('s', { id: 'm1', content: 'x' })).status).toBe('duplicate');
    expect((await t.runtime.send('s', { id: 'm0', content: 'x' })).status).toBe('accepted');
  });
});

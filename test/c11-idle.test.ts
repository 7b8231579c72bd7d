import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../src/index.ts';
import { testRuntime } from './helpers.ts';

const agent = async () => 'ok';

describe('C11 idle passivation counts from activation', () => {
  it('a session opened (or re-activated) and not yet sent anything stays live for idleTimeoutMs', async () => {
    const store = new MemoryStore();
    const t = testRuntime({ agent, store, idleTimeoutMs: 1000 });
    // Long after the clock's start: a session whose activity counted from 0 would look idle at once.
    await t.advance(60_000);
    await t.runtime.open('s', {});
    // The sweep runs every idleTimeoutMs / 2: the first one after the open finds it active.
    await t.advance(600);
    expect(t.runtime.sessionIds()).toEqual(['s']);
    await t.advance(1000);
    expect((await t.runtime.status('s'))?.state).toBe('passivated');
    // Re-activated by a status-only open: live again for idleTimeoutMs, not passivated by the next sweep.
    await t.runtime.open('s', {});
    await t.advance(600);
    expect(t.runtime.sessionIds()).toEqual(['s']);
  });
});

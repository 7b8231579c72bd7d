import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineTool, MemoryStore, type Agent } from '../src/index.ts';
import { settle, testRuntime } from './helpers.ts';

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

describe('C11 a parked turn (C19) does not hide a running command', () => {
  it('C11/C19: a session whose turn waits for approval is not passivated while a command runs; the command finishes', async () => {
    const guarded = defineTool({ name: 'guarded', description: 'needs the user', parameters: z.object({}), needsApproval: true, run: () => 'ran' });
    const waitsForTool: Agent = async (turn) => (await turn.callTool('guarded', {})).status;
    let finish: (text: string) => void = () => {};
    let signal: AbortSignal | undefined;
    const slow = (ctx: { signal: AbortSignal }) => new Promise<string>((resolve) => ((finish = resolve), (signal = ctx.signal)));
    const t = testRuntime({ agent: waitsForTool, tools: [guarded], commands: { slow }, debounceMs: 0, store: new MemoryStore(), idleTimeoutMs: 1000 });
    await t.runtime.send('s', { id: 'm1', content: 'go' });
    await settle();
    await t.runtime.send('s', { id: 'c1', content: '/slow' });
    await settle();
    expect(await t.runtime.status('s')).toMatchObject({ waitingForUser: true });
    await t.advance(3000); // past idleTimeoutMs, long before the command's turnTimeoutMs
    expect(t.runtime.sessionIds()).toEqual(['s']);
    expect(signal?.aborted).toBe(false);
    finish('slow done');
    await settle();
    expect(t.of('s').find((e) => e.type === 'message')?.data).toMatchObject({ id: 'c1:reply', content: 'slow done' });
    // With the command done, the parked turn may passivate as before.
    await t.advance(3000);
    expect(t.runtime.sessionIds()).toEqual([]);
  });
});

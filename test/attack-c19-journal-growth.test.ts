/**
 * Attack on C19's journal: it is stored as part of the session's snapshot, and the whole of
 * it is rewritten at every commit of the turn. A turn of n tool calls commits about 2n
 * times, each with all the calls so far: O(n²) bytes. Measured: 100 calls write 2 MB of
 * snapshots, 1000 calls 200 MB (4.7 s of commits on this machine, the largest snapshot
 * 200 kB) — and nothing bounds the calls of one turn (only the OpenAI agent bounds its
 * rounds). Doubling the calls should about double what a turn writes, not quadruple it.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineTool, type Agent, type StepRecord } from '../src/index.ts';
import { SqliteStore } from '../src/sqlite.ts';
import { settle, testRuntime } from './helpers.ts';

/** Bytes of snapshot a turn of `calls` tool calls hands the store. */
async function snapshotBytes(calls: number): Promise<number> {
  const store = new SqliteStore(':memory:');
  let bytes = 0;
  const commit = store.commit.bind(store);
  store.commit = (steps: readonly StepRecord[]) => {
    for (const step of steps) if (step.session) bytes += JSON.stringify(step.session.snapshot).length;
    return commit(steps);
  };
  const lookup = defineTool({ name: 'lookup', description: 'd', parameters: z.object({ i: z.number() }), run: ({ i }) => ({ i, row: 'x'.repeat(40) }) });
  const agent: Agent = async (turn) => {
    for (let i = 0; i < calls; i++) await turn.callTool('lookup', { i });
    return 'done';
  };
  const t = testRuntime({ agent, tools: [lookup], debounceMs: 0, store });
  await t.runtime.send('s', { id: 'm1', content: 'go' });
  while (t.dones('s').length === 0) await settle(1);
  await t.runtime.shutdown();
  return bytes;
}

describe('C19 attack: the journal of a long turn', () => {
  it('C19: what a turn writes grows linearly with its tool calls (twice the calls, at most three times the bytes)', async () => {
    const small = await snapshotBytes(100);
    const large = await snapshotBytes(200);
    expect(large / small, `${small} bytes for 100 calls, ${large} for 200`).toBeLessThan(3);
  });
});

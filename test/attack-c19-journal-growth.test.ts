/**
 * Attack on C19's journal: it is stored with the session's snapshot, and the whole of it is
 * rewritten at every commit of the turn — a turn of n calls writes O(n²) bytes. Measured
 * before the fix: 100 calls 2 MB of snapshots, 1000 calls 200 MB (4.7 s of commits), and
 * nothing bounded the calls of one turn. Now a turn may make MAX_TOOL_CALLS_PER_TURN calls;
 * past that a call is refused at once (`too_many_calls`, no event, nothing journaled), so
 * what a turn writes is bounded, however many calls its agent makes.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineTool, type Agent, type StepRecord } from '../src/index.ts';
import { SqliteStore } from '../src/sqlite.ts';
import { MAX_TOOL_CALLS_PER_TURN } from '../src/runtime/tool-calls.ts';
import { settle, testRuntime } from './helpers.ts';

/** Bytes of snapshot a turn of `calls` tool calls hands the store. */
async function snapshotBytes(calls: number, refused: string[] = []): Promise<number> {
  const store = new SqliteStore(':memory:');
  let bytes = 0;
  const commit = store.commit.bind(store);
  store.commit = (steps: readonly StepRecord[]) => {
    for (const step of steps) if (step.session) bytes += JSON.stringify(step.session.snapshot).length;
    return commit(steps);
  };
  const lookup = defineTool({ name: 'lookup', description: 'd', parameters: z.object({ i: z.number() }), run: ({ i }) => ({ i, row: 'x'.repeat(40) }) });
  const agent: Agent = async (turn) => {
    for (let i = 0; i < calls; i++) {
      const result = await turn.callTool('lookup', { i });
      if (result.status !== 'ok') refused.push(result.error.code);
    }
    return 'done';
  };
  const t = testRuntime({ agent, tools: [lookup], debounceMs: 0, store });
  await t.runtime.send('s', { id: 'm1', content: 'go' });
  while (t.dones('s').length === 0) await settle(1);
  await t.runtime.shutdown();
  return bytes;
}

describe('C19 attack: the journal of a long turn', () => {
  it('C19: a turn\'s calls are bounded (MAX_TOOL_CALLS_PER_TURN), so what it writes is too', async () => {
    const atCap = await snapshotBytes(MAX_TOOL_CALLS_PER_TURN);
    const refused: string[] = [];
    const far = await snapshotBytes(3 * MAX_TOOL_CALLS_PER_TURN, refused);
    expect(refused).toEqual(Array(2 * MAX_TOOL_CALLS_PER_TURN).fill('too_many_calls'));
    expect(far / atCap, `${atCap} bytes at the cap, ${far} for three times the calls`).toBeLessThan(1.2);
    // Below the cap it grows no worse than quadratically (twice the calls, at most 4.5 times the bytes).
    const half = await snapshotBytes(MAX_TOOL_CALLS_PER_TURN / 2);
    expect(atCap / half).toBeLessThan(4.5);
  });
});

/**
 * C16: "nothing of a step — its events, a durable receipt, the effects it starts (an agent
 * call) — is visible before the step is committed". The onboarding kind's analyzer — its
 * agent call, often an LLM request — is an XState `invoke` (`fromPromise` in
 * onboarding-kind.ts), which XState starts inside the machine step itself, not through the
 * output gate (`defer`) the agent kind uses. So the analyzer runs before the step that
 * started it is committed, and when that commit fails it has run for an answer the store
 * never took: the client's answer is rejected, yet the analyzer (LLM) was called; a retry of
 * the answer calls it again.
 */
import { describe, expect, it } from 'vitest';
import type { AnalyzerInput } from '../src/index.ts';
import { SqliteStore } from '../src/sqlite.ts';
import { FaultStore } from '../src/testing/index.ts';
import { settle, testRuntime } from './helpers.ts';

describe('C16 the onboarding analyzer starts only after its step is committed', () => {
  it('an answer whose step fails to commit never reaches the analyzer', async () => {
    const store = new FaultStore(new SqliteStore(':memory:'), { latencyMs: 0 });
    const analyzed: string[] = [];
    const t = testRuntime({
      agent: async () => 'unused',
      store,
      storeRetryMs: 60_000,
      onError: () => {},
      onboarding: {
        analyzer: async (input: AnalyzerInput) => {
          analyzed.push(input.answer);
          return { reflection: 'noted' };
        },
      },
    });
    await t.runtime.open('o', { kind: 'onboarding' });
    await t.runtime.control('o', 'start');
    store.failing = new Error('database or disk is full');
    const receipt = await t.runtime.send('o', { id: 'a1', content: 'I run a bakery in town' });
    await settle();
    expect(receipt.status).toBe('rejected'); // the store never took it…
    expect(analyzed).toEqual([]); // …so nothing of its step ran
  });
});

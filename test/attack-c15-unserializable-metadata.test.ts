/**
 * C15 (bad input gets a typed error) vs C16 (a failed commit takes the session out of
 * service). `validate()` checks metadata's depth but not that it can be stored: metadata
 * that JSON cannot serialize (a BigInt, a throwing `toJSON`) passes, is accepted by the
 * machine, and makes the session's commit throw in `SqliteStore.#step`
 * (`JSON.stringify(input.metadata)`). That is treated as a store failure: the input is
 * rejected `INTERNAL_ERROR` (not `INVALID_MESSAGE`), the session — with any other input of
 * the same tick — is taken out of service, and `health().ok` (`/healthz` 503 "store_failing")
 * says the store is failing although it is fine. A throwing getter in metadata makes `send`
 * throw synchronously, though `send` "does not reject for bad input".
 */
import { describe, expect, it } from 'vitest';
import { createRuntime, type Receipt } from '../src/index.ts';
import { SqliteStore } from '../src/sqlite.ts';

function runtime() {
  return createRuntime({ agent: async () => 'ok', store: new SqliteStore(':memory:'), debounceMs: 0, storeRetryMs: 60_000, onError: () => {} });
}

describe('C15 metadata a store cannot keep is a bad input, not a store failure', () => {
  it('a BigInt in metadata is refused INVALID_MESSAGE; the session and the store stay healthy', async () => {
    const rt = runtime();
    const good = rt.send('s', { id: 'm1', content: 'fine' });
    const bad = await rt.send('s', { id: 'm2', content: 'x', metadata: { n: 10n as unknown as number } });
    expect(bad).toMatchObject({ status: 'rejected', code: 'INVALID_MESSAGE' });
    expect((await good).status, 'an input of the same session and tick').toBe('accepted');
    expect(rt.health().ok).toBe(true);
    await rt.shutdown({ drainMs: 0 });
  });

  it('a throwing getter in metadata is answered, not thrown', async () => {
    const rt = runtime();
    let answer: Receipt | string;
    try {
      answer = await rt.send('t', { id: 'm1', content: 'x', metadata: { get boom(): string { throw new Error('getter'); } } });
    } catch (error) {
      answer = `threw: ${(error as Error).message}`;
    }
    expect(answer).toMatchObject({ status: 'rejected', code: 'INVALID_MESSAGE' });
    await rt.shutdown({ drainMs: 0 });
  });
});

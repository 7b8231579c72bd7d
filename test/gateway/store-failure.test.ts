import { describe, expect, it } from 'vitest';
import type { StepRecord, Turn } from '../../src/index.ts';
import { SqliteStore } from '../../src/sqlite.ts';
import { Client, gatewayPerTest } from './client.ts';

/** SQLite in memory whose writes throw while `failing` is set. */
class FailingStore extends SqliteStore {
  failing = false;
  constructor() {
    super(':memory:');
  }
  override commit(steps: readonly StepRecord[]): void {
    if (this.failing) throw new Error('database or disk is full');
    super.commit(steps);
  }
}

const gateway = gatewayPerTest();

describe('C16 a store failure over a real socket', () => {
  it('attached clients get error{INTERNAL_ERROR} then 1013; a client attaching meanwhile is told to retry (1013), not that its session was deleted', async () => {
    const store = new FailingStore();
    let release: () => void = () => {};
    const agent = (turn: Turn) => new Promise<void>((resolve) => {
      turn.emit('working ');
      release = resolve;
    });
    const { url, http } = await gateway({ runtime: { agent, store, storeRetryMs: 60_000, onError: () => {} } });
    const a = await Client.attach(url, { session_id: 'x' });
    a.client.send('input', { content: 'go' }, 'm1');
    await a.client.until((f) => f.event.type === 'message.delta');
    store.failing = true;
    release();
    const error = await a.client.until((f) => f.event.type === 'error');
    expect(error.seq).toBe(0);
    expect(error.event.data.code).toBe('INTERNAL_ERROR');
    expect((await a.client.closed).code).toBe(1013);
    expect(a.client.frames.some((f) => f.event.type === 'done')).toBe(false); // its commit failed: never published
    expect((await fetch(`${http}/healthz`)).status).toBe(503);

    const b = await Client.attach(url, { session_id: 'x', last_seq: 3 });
    expect(b.ack.event.data).toMatchObject({ state: 'deleted', code: 'INTERNAL_ERROR' });
    expect((await b.client.closed).code).toBe(1013);
  });
});

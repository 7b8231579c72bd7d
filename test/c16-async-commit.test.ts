/**
 * C16 with a store whose commit is asynchronous (a network database): nothing of a step is
 * published, and no agent starts, before its commit's promise resolves; a rejection fails the
 * session as a throw does; groups stay in order.
 */
import { describe, expect, it } from 'vitest';
import { StoreUnavailableError, type StepRecord } from '../src/index.ts';
import { SqliteStore } from '../src/sqlite.ts';
import { controlledAgent, seqGaps, settle, testRuntime } from './helpers.ts';

/** SQLite in memory whose commits are acknowledged only when the test says so. */
class SlowStore extends SqliteStore {
  readonly acks: { steps: readonly StepRecord[]; ok(): void; fail(error: Error): void }[] = [];
  constructor() {
    super(':memory:');
  }
  override commit(steps: readonly StepRecord[]): Promise<void> {
    return new Promise((resolve, reject) =>
      this.acks.push({
        steps,
        ok: () => {
          super.commit(steps);
          resolve();
        },
        fail: reject,
      }),
    );
  }
}

async function ackAll(store: SlowStore): Promise<void> {
  while (store.acks.length > 0) {
    store.acks.shift()!.ok();
    await settle();
  }
}

describe('C16 with an asynchronous commit', () => {
  it('publishes a step and starts its agent only once its commit resolved; one group in flight at a time', async () => {
    const store = new SlowStore();
    const control = controlledAgent();
    const t = testRuntime({ agent: control.agent, store, debounceMs: 0, maxWaitMs: 0 });
    // Not awaited: the receipt waits for the commit, which waits for the test's ack.
    const receipt = t.runtime.send('s', { id: 'm1', content: 'hi' });
    await settle();
    expect(t.events).toEqual([]); // activation and the turn's start wait for their commit
    expect(control.calls).toHaveLength(0);
    expect(store.acks).toHaveLength(1); // the next group waits for this one
    await ackAll(store);
    expect(await receipt).toMatchObject({ status: 'accepted', durability: 'durable' });
    expect(control.calls).toHaveLength(1);
    expect(t.types('s')).toContain('message.start');
    control.last('s')!.turn.emit('a');
    control.last('s')!.turn.emit('b');
    control.last('s')!.resolve('c');
    await settle();
    expect(t.types('s')).not.toContain('done');
    await ackAll(store);
    expect(t.dones('s')).toEqual([expect.objectContaining({ success: true, input_ids: ['m1'] })]);
    expect(seqGaps(t.events)).toEqual([]);
    const deltas = t.of('s').flatMap((e) => (e.type === 'message.delta' ? [e.data.content] : []));
    expect(deltas.join('')).toBe('ab'); // a returned text is used only when nothing was streamed
  });

  it('a rejected commit fails the session as a throw does: nothing of it is published', async () => {
    const store = new SlowStore();
    const control = controlledAgent();
    const t = testRuntime({ agent: control.agent, store, debounceMs: 0, maxWaitMs: 0, onError: () => {} });
    const errors: unknown[] = [];
    t.runtime.eventsOf('s').subscribe({ error: (e) => errors.push(e) });
    void t.runtime.send('s', { id: 'm1', content: 'hi' }); // its commit is refused: nothing to wait for
    await settle();
    store.acks.shift()!.fail(new Error('connection reset'));
    await settle();
    expect(t.events).toEqual([]);
    expect(control.calls).toHaveLength(0);
    expect(errors).toEqual([expect.any(StoreUnavailableError)]);
    expect(t.runtime.health()).toMatchObject({ ok: false, failedSessions: 1 });
  });
});

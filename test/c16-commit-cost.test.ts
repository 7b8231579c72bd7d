import { describe, expect, it } from 'vitest';
import { createRuntime, type Turn } from '../src/index.ts';
import type { StepRecord } from '../src/index.ts';
import { SqliteStore } from '../src/sqlite.ts';
import { settle } from './helpers.ts';

/** Counts what the host writes. */
class CountingStore extends SqliteStore {
  commits = 0;
  snapshots = 0;
  constructor() {
    super(':memory:');
  }
  override commit(steps: readonly StepRecord[]): void {
    this.commits++;
    this.snapshots += steps.filter((step) => step.session).length;
    super.commit(steps);
  }
}

/** One turn streaming `n` deltas, each in its own tick; returns what the store wrote for it. */
async function turnWith(n: number) {
  const store = new CountingStore();
  const agent = async (turn: Turn) => {
    for (let i = 0; i < n; i++) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      turn.emit(`d${i} `);
    }
  };
  const runtime = createRuntime({ commitDelayMs: 0, agent, store, debounceMs: 0 });
  await runtime.open('s');
  await settle();
  const before = { commits: store.commits, snapshots: store.snapshots };
  const done = new Promise<void>((resolve) => runtime.eventsOf('s').subscribe((e) => e.type === 'done' && resolve()));
  expect((await runtime.send('s', { id: 'm1', content: 'go' })).status).toBe('accepted');
  await done;
  await settle();
  const deltas = store.eventsAfter('s', 0).filter((e) => e.type === 'message.delta').length;
  await runtime.shutdown({ drainMs: 0 });
  return { deltas, commits: store.commits - before.commits, snapshots: store.snapshots - before.snapshots };
}

describe('C16 commit cost', () => {
  it('a streamed delta changes no machine state, so it never rewrites the snapshot: snapshot writes per turn do not grow with its deltas', async () => {
    const short = await turnWith(5);
    const long = await turnWith(100);
    expect(short.deltas).toBe(5);
    expect(long.deltas).toBe(100);
    // The same handful either way (which steps a group commit meets can move one by one; a
    // delta that rewrote the snapshot would add a hundred).
    expect(long.snapshots).toBeLessThanOrEqual(short.snapshots + 1);
    expect(long.snapshots).toBeLessThanOrEqual(4);
  });
});

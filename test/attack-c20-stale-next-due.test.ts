/**
 * Attack on C20 (issue 19), severity MEDIUM (a store that answers asynchronously; LOW on
 * PostgreSQL, where the cluster poll bounds it to `clusterSweepMs`).
 *
 * The Waker's `#refresh` asks the store for `nextDue()` and, when the answer comes, arms
 * the one process timer at it — replacing whatever `note(at)` armed meanwhile. An answer
 * read before a commit and delivered after it is stale: a network store's read whose
 * snapshot predates a concurrent commit (another pooled connection), or any `Store` whose
 * methods return promises (the interface allows it). Here: the runtime starts on an empty
 * store, its first `nextDue()` is in flight; a schedule is set and committed, `note()`
 * arms the timer for it; then the stale answer (`undefined`: nothing was due) arrives and
 * clears the timer. The schedule sits in the store and never fires — nothing reads the
 * store again until another schedule is set or the process restarts. Without a cluster
 * there is no poll to catch it. A `note()` that lands while a read is in flight should
 * survive the read (e.g. arm at the min of both).
 */
import { describe, expect, it } from 'vitest';
import { MemoryStore, type Agent } from '../src/index.ts';
import { settle, testRuntime } from './helpers.ts';

/** A memory store whose `nextDue` answers late (when the test says) with what it read when asked. */
class SlowReadStore extends MemoryStore {
  readonly held: (() => void)[] = [];
  override nextDue(): number | undefined {
    const read = super.nextDue(); // the read's snapshot: taken now
    return new Promise<number | undefined>((resolve) => this.held.push(() => resolve(read))) as never;
  }
}

describe('C20 the process timer and a store that answers late', () => {
  it('C20: a schedule committed while the process timer\'s read of nextDue is in flight still fires', async () => {
    const store = new SlowReadStore();
    const fired: string[] = [];
    const agent: Agent = (turn) => {
      fired.push(...turn.inputs.map((i) => i.id));
      return 'ok';
    };
    const t = testRuntime({ agent, debounceMs: 0, store });
    await settle(); // started: its first read of nextDue is in flight
    expect(store.held.length).toBe(1);
    await t.runtime.open('s');
    await t.runtime.schedule('s', { id: 'nudge', afterMs: 1000 });
    for (const answer of store.held.splice(0)) answer(); // the read, taken before the commit, arrives now
    await settle();
    for (let i = 0; i < 5; i++) await t.advance(1000);
    for (const answer of store.held.splice(0)) answer();
    await settle();
    expect(fired).toEqual(['timer:nudge:1000']);
  });
});

import type { Awaitable } from '../runtime/awaitable.ts';
import type { LoadedSession, LoadOptions, OwnedElsewhere, StepRecord, Store } from '../runtime/store.ts';
import type { SessionEvent } from '../runtime/types.ts';

export interface FaultStoreOptions {
  /**
   * Answer every call with a promise settled after this many ms (0: on the next macrotask),
   * as a network database does. @default answers at once, as the inner store does
   */
  latencyMs?: number;
}

/**
 * A store around another that fails on demand and may answer late: the faults a runtime
 * must survive (C16), for tests — yours and Baton's. While `failing` is set every commit
 * throws (or rejects with) it, as a full disk or a lost connection would; reads go on.
 *
 * @example
 * const store = new FaultStore(new MemoryStore(), { latencyMs: 1 });
 * store.failing = new Error('database or disk is full');
 */
export class FaultStore implements Store {
  readonly inner: Store;
  readonly durable: boolean;
  /** While set, commits fail with it. */
  failing: Error | undefined;
  /**
   * While set, reads of a session (`load`) are never answered: a network store's query lost
   * with its connection, as the `postgres` client does now and then when the server ends it.
   */
  stalled = false;
  /** Loads asked for while stalled (none of them is ever answered). */
  stalledLoads = 0;
  /** Commits taken, and commits refused. */
  commits = 0;
  refused = 0;
  readonly #latencyMs: number | undefined;

  constructor(inner: Store, { latencyMs }: FaultStoreOptions = {}) {
    this.inner = inner;
    this.durable = inner.durable;
    this.#latencyMs = latencyMs;
  }

  #answer<T>(call: () => Awaitable<T>): Awaitable<T> {
    if (this.#latencyMs === undefined) return call();
    return new Promise<void>((resolve) => setTimeout(resolve, this.#latencyMs)).then(call);
  }

  load(sessionId: string, options: LoadOptions): Awaitable<LoadedSession | OwnedElsewhere | undefined> {
    if (this.stalled) {
      this.stalledLoads++;
      return new Promise(() => {});
    }
    return this.#answer(() => this.inner.load(sessionId, options));
  }

  commit(steps: readonly StepRecord[]): Awaitable<void> {
    // Decided when the commit is asked for: a commit in flight when the fault starts still lands.
    const failing = this.failing;
    return this.#answer(() => {
      if (failing) {
        this.refused++;
        throw failing;
      }
      this.commits++;
      return this.inner.commit(steps);
    });
  }

  eventsAfter(sessionId: string, seq: number): Awaitable<SessionEvent[]> {
    return this.#answer(() => this.inner.eventsAfter(sessionId, seq));
  }

  sessionsWithPending(): Awaitable<string[]> {
    return this.#answer(() => this.inner.sessionsWithPending());
  }

  /** Schedules (C20) pass through when the wrapped store keeps them. */
  nextDue(after?: number): Awaitable<number | undefined> {
    return this.#answer(() => this.inner.nextDue?.(after));
  }

  dueSessions(before: number, limit: number): Awaitable<string[]> {
    return this.#answer(() => this.inner.dueSessions?.(before, limit) ?? []);
  }

  prune(before: number, isLive: (sessionId: string) => boolean): Awaitable<number> {
    return this.#answer(() => this.inner.prune(before, isLive));
  }

  checkOwner(): Awaitable<void> {
    return this.#answer(() => this.inner.checkOwner?.());
  }

  close(): Awaitable<void> {
    return this.inner.close();
  }
}

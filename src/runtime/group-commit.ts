import type { Dispatcher } from './dispatcher.ts';
import type { StepRecord, Store } from './store.ts';

/** A session whose steps wait for a commit (a SessionHost). */
export interface Committable {
  takeStep(): StepRecord | undefined;
  release(): void;
  commitFailed(error: unknown): void;
}

/**
 * Group commit: the steps every session produced in one tick are written in one store
 * transaction, and only then is each session's output released (C16). One transaction per
 * tick instead of one per session and step is most of a durable store's cost.
 */
export class GroupCommit {
  readonly #store: Store;
  readonly #dispatcher: Dispatcher;
  readonly #waiting = new Set<Committable>();
  #queued = false;

  constructor(store: Store, dispatcher: Dispatcher) {
    this.#store = store;
    this.#dispatcher = dispatcher;
  }

  /** A session has uncommitted steps: commit them with the others of this tick. */
  enqueue(session: Committable): void {
    this.#waiting.add(session);
    if (this.#queued) return;
    this.#queued = true;
    this.#dispatcher.defer(() => this.#flush());
  }

  #flush(): void {
    this.#queued = false;
    const sessions = [...this.#waiting];
    this.#waiting.clear();
    const steps = sessions.map((session) => session.takeStep());
    const writes = steps.filter((step) => step !== undefined);
    try {
      if (writes.length > 0) this.#store.commit(writes);
    } catch (error) {
      if (sessions.length === 1) return sessions[0]!.commitFailed(error);
      // One session's failure (fenced, say) must not fail the rest: each alone, then.
      return sessions.forEach((session, i) => this.#commitAlone(session, steps[i], error));
    }
    for (const session of sessions) session.release();
  }

  #commitAlone(session: Committable, step: StepRecord | undefined, groupError: unknown): void {
    try {
      if (step) this.#store.commit([step]);
    } catch (error) {
      return session.commitFailed(error ?? groupError);
    }
    session.release();
  }
}

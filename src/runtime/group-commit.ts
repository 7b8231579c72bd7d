import type { Dispatcher } from './dispatcher.ts';
import { StaleEpochError, type StepRecord, type Store } from './store.ts';

/** `setImmediate` where there is one (Node), else a zero timeout. */
const nextTick: (fn: () => void) => void = typeof setImmediate === 'function' ? (fn) => void setImmediate(fn) : (fn) => void setTimeout(fn, 0);

/** A session whose steps wait for a commit (a SessionHost). */
export interface Committable {
  readonly id: string;
  takeStep(): StepRecord | undefined;
  release(): void;
  commitFailed(error: unknown): void;
}

/**
 * Group commit: the steps every session produced in one tick are written in one store
 * transaction, and only then is each session's output released (C16). One transaction per
 * tick instead of one per session and step is most of a durable store's cost.
 *
 * A store's `commit` may return a promise (a network database): the output gate waits for
 * it, and the steps made meanwhile form the next group, committed after this one — so a
 * session's commits, and so its output, stay in order.
 */
export class GroupCommit {
  readonly #store: Store;
  readonly #dispatcher: Dispatcher;
  readonly #waiting = new Set<Committable>();
  #queued = false;
  #inFlight = false;
  readonly #selfFenced: () => boolean;
  readonly #delayMs: number;
  readonly #now: () => number;
  /** When the last group was taken, for `commitDelayMs`. */
  #lastFlush = -Infinity;

  /**
   * `selfFenced`: a cluster node whose own clock says its lease may have run out writes and
   * releases nothing — no event, no agent call — until it has renewed (C17 across nodes).
   */
  constructor(
    store: Store,
    dispatcher: Dispatcher,
    { selfFenced = () => false, delayMs = 0, now = () => performance.now() }: { selfFenced?: () => boolean; delayMs?: number; now?: () => number } = {},
  ) {
    this.#store = store;
    this.#dispatcher = dispatcher;
    this.#selfFenced = selfFenced;
    this.#delayMs = delayMs;
    this.#now = now;
  }

  /** A session has uncommitted steps: commit them with the others of this tick. */
  enqueue(session: Committable): void {
    this.#waiting.add(session);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#queued || this.#inFlight) return;
    this.#queued = true;
    // At the end of this turn of the event loop, not of this dispatch: every socket read,
    // timer and agent callback of the tick adds its steps first (a streamed reply's deltas
    // from many sessions become one transaction, not one each).
    // With `commitDelayMs`, a group follows the previous one no sooner than that: under a
    // steady stream of steps (a reply streamed one delta per tick) a transaction carries
    // many of them. An idle store commits at once.
    const wait = this.#lastFlush + this.#delayMs - this.#now();
    if (wait > 0) setTimeout(() => this.#dispatcher.run(() => this.#flush()), wait);
    else nextTick(() => this.#dispatcher.run(() => this.#flush()));
  }

  #flush(): void {
    this.#queued = false;
    this.#lastFlush = this.#now();
    const sessions = [...this.#waiting];
    this.#waiting.clear();
    const steps = sessions.map((session) => {
      try {
        return session.takeStep();
      } catch (error) {
        // A kind's hook threw while its step was written down (`persist`): that session
        // stops (C7, C16); the others commit.
        session.commitFailed(error);
        return undefined;
      }
    });
    const writes = steps.filter((step) => step !== undefined);
    if (this.#selfFenced()) return this.#fence(sessions);
    let pending: void | Promise<void> = undefined;
    try {
      if (writes.length > 0) pending = this.#store.commit(writes);
    } catch (error) {
      return this.#hold(this.#failed(sessions, steps, error));
    }
    if (pending === undefined) return this.#release(sessions);
    this.#hold(
      pending.then(
        () => this.#dispatcher.run(() => this.#release(sessions)),
        (error: unknown) => this.#dispatcher.run(() => this.#failed(sessions, steps, error)),
      ),
    );
  }

  /** While a commit is in flight, the next group waits: each session's output stays in order. */
  #hold(work: void | Promise<void>): void {
    if (work === undefined) return;
    this.#inFlight = true;
    void work.finally(() => {
      this.#inFlight = false;
      if (this.#waiting.size > 0) this.#schedule();
    });
  }

  #release(sessions: readonly Committable[]): void {
    // Stored, but the lease may have run out meanwhile: another node may own these sessions
    // now, so nothing is released here; their clients resume from what was stored.
    if (this.#selfFenced()) return this.#fence(sessions);
    for (const session of sessions) session.release();
  }

  #fence(sessions: readonly Committable[]): void {
    for (const session of sessions) {
      session.commitFailed(new StaleEpochError(`this node's lease may have expired: session "${session.id}" is given up here`, undefined, session.id));
    }
  }

  /**
   * A group failed: one session alone fails; several are tried one by one, in order, so one
   * bad session (fenced, say) does not fail the rest.
   */
  #failed(sessions: readonly Committable[], steps: readonly (StepRecord | undefined)[], error: unknown): void | Promise<void> {
    if (sessions.length === 1) return sessions[0]!.commitFailed(error);
    return this.#eachAlone(sessions, steps, 0);
  }

  #eachAlone(sessions: readonly Committable[], steps: readonly (StepRecord | undefined)[], from: number): void | Promise<void> {
    for (let i = from; i < sessions.length; i++) {
      const session = sessions[i]!;
      const step = steps[i];
      let pending: void | Promise<void> = undefined;
      try {
        if (step) pending = this.#store.commit([step]);
      } catch (error) {
        session.commitFailed(error);
        continue;
      }
      if (pending === undefined) {
        session.release();
        continue;
      }
      return pending
        .then(
          () => this.#dispatcher.run(() => session.release()),
          (error: unknown) => this.#dispatcher.run(() => session.commitFailed(error)),
        )
        .then(() => this.#eachAlone(sessions, steps, i + 1));
    }
  }
}

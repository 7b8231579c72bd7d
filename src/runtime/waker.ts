import type { Clock } from './clock.ts';
import { attempt, when, type Awaitable } from './awaitable.ts';

export interface WakerDeps {
  readonly clock: Clock;
  now(): number;
  /** The earliest due time of a schedule this process may fire (later than `after`, if given): the store knows, passivated sessions included. */
  nextDue(after?: number): Awaitable<number | undefined>;
  /** Sessions with a schedule due by `before` that this process may fire, earliest first. */
  dueSessions(before: number, limit: number): Awaitable<string[]>;
  /** Fires what is due in these sessions (activating those that are passivated); resolves with how many fired and were committed. */
  fire(sessionIds: readonly string[], now: number): Promise<number>;
  report(error: unknown): void;
  /**
   * Look again at least this often, whatever the store said (a cluster: another node's
   * sessions become this node's to fire when it dies, and nobody tells it).
   * @default never
   */
  readonly pollMs?: number;
  /** After a wake that found work it could not finish (a store error), wait this long. */
  readonly retryMs: number;
}

const MAX_TIMER_MS = 2_147_483_647;

/** How long a wake waits for the sessions it fires before it looks at what is due next. */
const FIRE_WAIT_MS = 1000;

/** How many sessions one wake fires; more are left to the next, which comes at once. */
const WAKE_BATCH = 100;

/**
 * One timer for the whole process (C20), not one per session: it is armed at the earliest
 * due time of any schedule this process may fire — which only the store knows once sessions
 * are passivated — and when it fires, the due sessions are activated and fire. A step that
 * sets an earlier schedule lowers it ({@link note}).
 */
export class Waker {
  readonly #deps: WakerDeps;
  #timer: unknown;
  #at: number | undefined;
  #waking = false;
  #stopped = false;
  /**
   * The earliest due time noted since the store was last asked: a read that started before a
   * commit may answer after it, without the schedule that commit set.
   */
  #noted: number | undefined;

  constructor(deps: WakerDeps) {
    this.#deps = deps;
  }

  /** Reads the earliest due time from the store and arms the timer for it. */
  start(): void {
    this.#refresh();
  }

  /** A committed step set a schedule due at `at`: the timer comes no later than that. */
  note(at: number): void {
    if (this.#stopped) return;
    this.#noted = this.#noted === undefined ? at : Math.min(this.#noted, at);
    if (this.#waking) return; // the wake reads the store again when it is done
    if (this.#at === undefined || at < this.#at) this.#arm(at);
  }

  stop(): void {
    this.#stopped = true;
    this.#deps.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /**
   * `firedAt`: right after a wake at that time. A schedule still due by then is one that
   * could not be fired (its session would not activate, the store failed, a read hangs): it is
   * looked at again retryMs later, not at once — and the schedules due after it are not held
   * back by it.
   */
  #refresh(firedAt?: number): void {
    if (this.#stopped) return;
    this.#noted = undefined;
    void when(
      attempt(
        () => this.#deps.nextDue(firedAt),
        (error) => {
          this.#deps.report(error);
          return this.#deps.now() + this.#deps.retryMs;
        },
      ),
      (answer) => {
        // What was noted while the store was asked is newer than its answer may be.
        const noted = this.#noted;
        const next = answer === undefined ? noted : noted === undefined ? answer : Math.min(answer, noted);
        const poll = this.#deps.pollMs === undefined ? undefined : this.#deps.now() + this.#deps.pollMs;
        const due = next === undefined ? poll : poll === undefined ? next : Math.min(next, poll);
        const retry = firedAt === undefined ? undefined : this.#deps.now() + this.#deps.retryMs;
        const at = due === undefined ? retry : retry === undefined ? due : Math.min(due, retry);
        if (at === undefined) {
          this.#deps.clock.clearTimeout(this.#timer);
          this.#at = undefined;
        } else this.#arm(at);
      },
    );
  }

  #arm(at: number): void {
    this.#deps.clock.clearTimeout(this.#timer);
    this.#at = at;
    // Timers hold at most 2^31 - 1 ms (about 24.8 days); a longer one would fire at once, and
    // again and again. A schedule further out is looked at again when this one fires.
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, at - this.#deps.now()));
    const timer = (this.#timer = this.#deps.clock.setTimeout(() => void this.#wake(), delay));
    // Schedules never keep the process alive on their own.
    (timer as { unref?: () => void }).unref?.();
  }

  /**
   * A wake waits for its fires at most FIRE_WAIT_MS: one session whose store read hangs (it
   * gives up only after loadTimeoutMs) must not hold back every other session's schedules.
   * Fires still on their way go on; the wake counts them as not fired.
   */
  #bounded(fires: Promise<number>): Promise<number> {
    let timer: unknown;
    const late = new Promise<number>((resolve) => {
      timer = this.#deps.clock.setTimeout(() => resolve(0), FIRE_WAIT_MS);
      (timer as { unref?: () => void }).unref?.();
    });
    return Promise.race([fires, late]).finally(() => this.#deps.clock.clearTimeout(timer));
  }

  async #wake(): Promise<void> {
    if (this.#stopped || this.#waking) return;
    this.#waking = true;
    this.#at = undefined;
    let more = false;
    // A wake that found nothing due leaves nothing that could still be due: no retry after it
    // (else the process would ask the store every retryMs for good once anything had fired).
    let found = true;
    const now = this.#deps.now();
    try {
      const due = await this.#deps.dueSessions(now, WAKE_BATCH);
      found = due.length > 0;
      const fired = due.length > 0 ? await this.#bounded(this.#deps.fire(due, now)) : 0;
      // A full batch that fired leaves more due sessions: the next wake comes at once. One that
      // fired none (a failing store) backs off like any other wake that could not fire.
      more = due.length === WAKE_BATCH && fired > 0;
    } catch (error) {
      this.#deps.report(error);
    } finally {
      this.#waking = false;
    }
    if (this.#stopped) return;
    if (more) this.#arm(this.#deps.now());
    else this.#refresh(found ? now : undefined);
  }
}

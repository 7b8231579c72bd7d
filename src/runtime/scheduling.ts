import { BatonError, InvalidMessageError, RuntimeShuttingDownError, SessionNotFoundError, StoreUnavailableError } from '../errors.ts';
import type { Clock } from './clock.ts';
import type { SessionRegistry } from './registry.ts';
import { clientSchedules, parseSchedule, type ScheduleSpec } from './schedule.ts';
import type { ScheduleRecord, Store } from './store.ts';
import { Waker } from './waker.ts';
import type { SessionHost } from './session-host.ts';

export interface SchedulingDeps {
  readonly store: Store;
  readonly registry: SessionRegistry;
  readonly clock: Clock;
  now(): number;
  report(error: unknown): void;
  /** `true` once shutdown began: nothing new is scheduled, nothing fires. */
  shuttingDown(): boolean;
  /** A cluster: look for sessions whose owner died this often. */
  readonly pollMs?: number;
  readonly retryMs: number;
}

/**
 * Durable schedules (C20): the runtime's API over them and the one process timer that fires
 * them. A schedule lives with its session — set and cancelled in the session's steps, so the
 * output gate applies — and fires as a `timer` input.
 */
export class Scheduling {
  readonly #deps: SchedulingDeps;
  readonly #waker: Waker | undefined;

  constructor(deps: SchedulingDeps) {
    this.#deps = deps;
    const { store } = deps;
    const nextDue = store.nextDue?.bind(store);
    const dueSessions = store.dueSessions?.bind(store);
    // A store that cannot say what is due keeps no schedules: `schedule` refuses.
    this.#waker =
      nextDue && dueSessions
        ? new Waker({
            clock: deps.clock,
            now: deps.now,
            nextDue,
            dueSessions,
            fire: (ids, now) => this.#fire(ids, now),
            report: deps.report,
            retryMs: deps.retryMs,
            ...(deps.pollMs !== undefined && { pollMs: deps.pollMs }),
          })
        : undefined;
  }

  start(): void {
    this.#waker?.start();
  }

  stop(): void {
    this.#waker?.stop();
  }

  /** A step of `host` was committed: an earlier due time it set lowers the process timer. */
  stored(host: SessionHost): void {
    const next = host.nextDue();
    if (next !== undefined) this.#waker?.note(next);
  }

  async schedule(sessionId: string, spec: ScheduleSpec): Promise<ScheduleRecord> {
    this.#open();
    const record = parseSchedule(spec, this.#deps.now());
    return this.#with(sessionId, (host) => {
      const refusal = host.scheduleRefusal(record);
      if (refusal) throw refusal;
      host.setSchedule(record);
      return record;
    });
  }

  async cancel(sessionId: string, id: string): Promise<boolean> {
    this.#open();
    return this.#with(sessionId, (host) => host.cancelSchedule(id));
  }

  /** A session's schedules, earliest first: live, or as stored for a passivated one. */
  async list(sessionId: string): Promise<ScheduleRecord[]> {
    const live = this.#deps.registry.live.get(sessionId);
    if (live) return live.schedules();
    const loaded = await this.#deps.store.load(sessionId, { recent: 0, history: 0, claim: false });
    if (!loaded || !('session' in loaded)) throw new SessionNotFoundError(sessionId);
    return clientSchedules(loaded.schedules ?? []);
  }

  #open(): void {
    if (this.#deps.shuttingDown()) throw new RuntimeShuttingDownError();
    if (!this.#waker) throw new InvalidMessageError('this store keeps no schedules (it has no nextDue/dueSessions)');
  }

  /** Runs `change` in the session (activating it) and resolves once its step is committed. */
  async #with<R>(sessionId: string, change: (host: SessionHost) => R): Promise<R> {
    const answer = await this.#deps.registry.with<{ value: R } | BatonError>(
      sessionId,
      { create: false },
      (host) => {
        let value: R;
        try {
          value = change(host);
        } catch (error) {
          if (error instanceof BatonError) return error;
          throw error;
        }
        return host.committed().then((stored) => (stored ? { value } : new StoreUnavailableError(sessionId, 'the commit failed')));
      },
      (owner) => new InvalidMessageError(`session "${sessionId}" runs on node "${owner.ownedBy.id}": schedule it there`),
    );
    if (answer === undefined) throw new SessionNotFoundError(sessionId);
    if (answer instanceof BatonError) throw answer;
    return answer.value;
  }

  /** The process timer fired: each due session (activated if passivated) fires what is due, and its step is committed. */
  async #fire(sessionIds: readonly string[], now: number): Promise<number> {
    if (this.#deps.shuttingDown()) return 0;
    const fired = await Promise.all(
      sessionIds.map(async (sessionId) => {
        try {
          // Another live node's session is its owner's to fire (a cluster): nothing here.
          const stored = await this.#deps.registry.with(sessionId, { create: false }, (host) => {
            host.fireDue(now);
            return host.committed();
          }, () => false);
          return stored === true;
        } catch (error) {
          this.#deps.report(error);
          return false;
        }
      }),
    );
    return fired.filter(Boolean).length;
  }
}

import type { Clock } from './clock.ts';
import { StoreUnavailableError } from '../errors.ts';
import { StaleEpochError, type Store } from './store.ts';
import { attempt, when, type Awaitable } from './awaitable.ts';

/** What the supervisor needs of the runtime. */
export interface SupervisedRuntime {
  readonly store: Store;
  readonly clock: Clock;
  now(): number;
  report(error: unknown): void;
  /** Live sessions, by id. */
  isLive(sessionId: string): boolean;
  /** Stops every live session: the store has a newer owner. */
  abandonAll(error: StaleEpochError): void;
  /**
   * The store gets its ownership back by itself (a cluster node rejoins under a new
   * incarnation after its lease was lost): losing it stops the live sessions, which may run
   * elsewhere now, but fences nothing for good.
   */
  readonly rejoins: boolean;
  /** Activates a session from the store and saves it; `true` once the store took the write. */
  reactivate(sessionId: string): Awaitable<boolean>;
}

export interface StoreSupervisorOptions {
  readonly storeRetryMs: number;
  readonly ownerCheckMs: number;
  readonly retentionMs: number;
}

/**
 * The runtime's watch over its store, on the runtime's clock: sessions a failed commit
 * stopped and their retry (C16), ownership and the fence (C17), and retention. Every timer
 * is unref'd, so none keeps the process alive.
 */
export class StoreSupervisor {
  readonly #rt: SupervisedRuntime;
  readonly #opts: StoreSupervisorOptions;
  /** Sessions out of service after a failed commit, with why. */
  readonly #failing = new Map<string, string>();
  /** The next retry's delay: doubled after every pass the store still refuses, up to 32 × storeRetryMs. */
  #retryMs: number;
  #retrying = false;
  #fenced: StaleEpochError | undefined;
  /** Commits refused because another node had claimed their session (C17 across nodes). */
  #moved = 0;
  readonly #timers = new Map<'retry' | 'owner' | 'retention', unknown>();
  #stopped = false;

  constructor(rt: SupervisedRuntime, opts: StoreSupervisorOptions) {
    this.#rt = rt;
    this.#opts = opts;
    this.#retryMs = opts.storeRetryMs;
    this.#armOwnerCheck();
    this.#armRetention();
  }

  get fenced(): StaleEpochError | undefined {
    return this.#fenced;
  }

  /** Why a session is out of service, if it is. */
  failure(sessionId: string): string | undefined {
    return this.#failing.get(sessionId);
  }

  /**
   * A commit of this session failed: it is out of service until a retry takes its write.
   * Reported once per outage, not once per session: thousands of sessions fail together.
   */
  failed(sessionId: string, error: unknown): void {
    // One session moved to another node (a cluster), or the node's lease was lost (its
    // sessions may all run elsewhere now): nothing to retry; the next need claims it again.
    if (error instanceof StaleEpochError && (error.sessionId !== undefined || this.#rt.rejoins)) {
      this.#moved++;
      return;
    }
    if (error instanceof StaleEpochError) this.#fence(error);
    else if (this.#failing.size === 0) this.#rt.report(new StoreUnavailableError(sessionId, error));
    this.#failing.set(sessionId, error instanceof Error ? error.message : String(error));
    this.#armRetry();
  }

  /** Sessions out of service, waiting for the store. */
  get failing(): number {
    return this.#failing.size;
  }

  /** A session out of service committed again (something re-activated it): it is back. */
  recovered(sessionId: string): void {
    if (!this.#failing.delete(sessionId) || this.#failing.size > 0) return;
    this.#retryMs = this.#opts.storeRetryMs;
  }

  health() {
    const failing = this.#failing;
    const fenced = this.#fenced;
    const storeError = fenced?.message ?? (failing.size > 0 ? [...failing.values()].at(-1) : undefined);
    return {
      ok: failing.size === 0 && !fenced,
      failedSessions: failing.size,
      fenced: fenced !== undefined,
      fencedCommits: this.#moved,
      ...(storeError !== undefined && { storeError }),
    };
  }

  stop(): void {
    this.#stopped = true;
    for (const timer of this.#timers.values()) this.#rt.clock.clearTimeout(timer);
    this.#timers.clear();
  }

  /**
   * C17: a newer process owns the store. Every session here stops (their next writes would
   * be refused anyway), and the fence is reported once, as itself: a gateway exits on it.
   */
  #fence(error: StaleEpochError): void {
    // A cluster node's lost lease: the store reports it and rejoins; the sessions stop here.
    if (this.#rt.rejoins) return this.#rt.abandonAll(error);
    if (this.#fenced) return;
    this.#fenced = error;
    this.#rt.report(error);
    this.#rt.abandonAll(error);
  }

  #arm(name: 'retry' | 'owner' | 'retention', ms: number, fn: () => void): void {
    if (this.#stopped || this.#timers.has(name)) return;
    const timer = this.#rt.clock.setTimeout(() => {
      this.#timers.delete(name);
      fn();
    }, ms);
    (timer as { unref?: () => void }).unref?.();
    this.#timers.set(name, timer);
  }

  /**
   * After a failed commit: try the stopped sessions again until the store takes their writes.
   * The first one is the probe: while it fails, the others are not tried (re-activating
   * thousands of sessions against a full disk would stall the process), and the next pass
   * waits twice as long.
   */
  #armRetry(): void {
    if (this.#fenced) return;
    if (this.#retrying) return; // the pass arms the next one itself, with its backoff
    this.#arm('retry', this.#retryMs, () => {
      this.#retrying = true;
      void this.#retryPass([...this.#failing.keys()]).then(() => {
        this.#retrying = false;
        if (this.#stopped) return;
        if (this.#failing.size === 0) {
          this.#retryMs = this.#opts.storeRetryMs;
          return;
        }
        this.#retryMs = Math.min(this.#retryMs * 2, this.#opts.storeRetryMs * 32);
        this.#armRetry();
      });
    });
  }

  /**
   * Re-activates the failed sessions: the first is the probe; once it commits, the rest go
   * together (one group commit). A refusal ends the pass.
   */
  async #retryPass(ids: readonly string[]): Promise<void> {
    const retry = async (sessionId: string): Promise<boolean> => {
      if (this.#stopped || this.#fenced) return false;
      const stored = await attempt(
        () => this.#rt.reactivate(sessionId),
        () => false,
      );
      if (stored) this.#failing.delete(sessionId);
      return stored;
    };
    const [probe, ...rest] = ids;
    if (probe === undefined || !(await retry(probe))) return;
    await Promise.all(rest.map(retry));
  }

  /** An idle process would only learn of its fence at its next write: ask the store who owns it. */
  #armOwnerCheck(): void {
    const store = this.#rt.store;
    if (!store.checkOwner || this.#fenced) return; // fenced for good: nothing left to check
    this.#arm('owner', this.#opts.ownerCheckMs, () => {
      const checked = attempt(
        () => store.checkOwner?.(),
        (error) => error,
      );
      void when(checked, (error) => {
        if (error instanceof StaleEpochError) this.#fence(error);
        this.#armOwnerCheck();
      });
    });
  }

  /** Retention: stored sessions nobody wrote for retentionMs go, with everything they keep. */
  #armRetention(): void {
    const { retentionMs } = this.#opts;
    this.#arm('retention', Math.min(retentionMs, 3_600_000), () => {
      const pruned = attempt<unknown>(
        () => this.#rt.store.prune(this.#rt.now() - retentionMs, (id) => this.#rt.isLive(id)),
        (error) => this.#rt.report(error),
      );
      void when(pruned, () => this.#armRetention());
    });
  }
}

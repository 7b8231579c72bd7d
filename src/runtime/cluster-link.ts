import type { Clock } from './clock.ts';
import type { ClusterHints, ClusterStore, Mail } from './cluster-store.ts';
import type { SessionHost } from './session-host.ts';
import type { SessionEvent } from './types.ts';

/** What the link needs of the runtime. */
export interface LinkDeps {
  readonly store: ClusterStore;
  readonly clock: Clock;
  report(error: unknown): void;
  /** The session's host, if this node runs it. */
  live(sessionId: string): SessionHost | undefined;
  /** Sessions with clients (subscribers) on this node. */
  watched(): Iterable<string>;
  /** The seq of the last event of a session this node's subscribers have seen. */
  delivered(sessionId: string): number;
  /** Hands committed events of a session run elsewhere to this node's subscribers (it skips seqs they have seen). */
  deliver(sessionId: string, events: readonly SessionEvent[]): void;
  /** Claims and activates a session with waiting work and no live owner. */
  activate(sessionId: string): void;
  /** Mail from another node for a session this node runs. */
  take(host: SessionHost, mail: readonly Mail[]): void;
  /** The lease is lost: every activation stops. */
  leaseLost(error: Error): void;
}

export interface LinkOptions {
  /** How often the node looks for work nobody runs and for hints it may have missed. */
  readonly sweepMs: number;
}

/**
 * This node's link to the others, through the store (a cluster). The store's hints
 * (NOTIFY) say where to look — mail for a session this node runs, events of a session
 * whose clients are here — and a sweep every `sweepMs` looks anyway, because a hint is lost
 * when a listening connection dies quietly. The sweep also claims sessions whose waiting
 * inputs have no live owner (a node died), so their turns run elsewhere.
 */
export class ClusterLink {
  readonly store: ClusterStore;
  readonly joined: Promise<void>;
  readonly #deps: LinkDeps;
  readonly #opts: LinkOptions;
  /** Reads in flight, per session: a burst of hints makes one read, then at most one more. */
  readonly #reading = new Map<string, 'reading' | 'again'>();
  #timer: unknown;
  #stopped = false;

  constructor(deps: LinkDeps, opts: LinkOptions) {
    this.#deps = deps;
    this.#opts = opts;
    this.store = deps.store;
    const hints: ClusterHints = {
      inbox: (sessionId) => this.#mail(sessionId),
      events: (sessionId, seq) => {
        if (seq > deps.delivered(sessionId)) this.#events(sessionId);
      },
      leaseLost: (error) => deps.leaseLost(error),
    };
    this.joined = deps.store.join(hints);
    this.joined.then(
      () => this.#arm(),
      (error: unknown) => deps.report(error),
    );
  }

  stop(): void {
    this.#stopped = true;
    this.#deps.clock.clearTimeout(this.#timer);
  }

  /** A session's clients are here but it runs elsewhere: read its new events now. */
  watch(sessionId: string): void {
    if (!this.#deps.live(sessionId)) this.#events(sessionId);
  }

  #arm(): void {
    if (this.#stopped) return;
    this.#timer = this.#deps.clock.setTimeout(() => void this.#sweep().finally(() => this.#arm()), this.#opts.sweepMs);
    (this.#timer as { unref?: () => void }).unref?.();
  }

  async #sweep(): Promise<void> {
    const deps = this.#deps;
    try {
      for (const sessionId of deps.watched()) if (!deps.live(sessionId)) this.#events(sessionId);
      for (const sessionId of await deps.store.orphans(100)) if (!deps.live(sessionId)) deps.activate(sessionId);
      for (const sessionId of await deps.store.mailWaiting()) this.#mail(sessionId);
    } catch (error) {
      deps.report(error);
    }
  }

  #mail(sessionId: string): void {
    const host = this.#deps.live(sessionId);
    if (!host) return; // not ours: its owner reads it, or the sweep claims it
    this.#once(`mail:${sessionId}`, async () => {
      const mail = await this.#deps.store.mail(sessionId);
      const now = this.#deps.live(sessionId);
      if (now && mail.length > 0) this.#deps.take(now, mail);
    });
  }

  #events(sessionId: string): void {
    this.#once(`events:${sessionId}`, async () => {
      const events = await this.#deps.store.eventsAfter(sessionId, this.#deps.delivered(sessionId));
      if (events.length > 0 && !this.#deps.live(sessionId)) this.#deps.deliver(sessionId, events);
    });
  }

  /** Runs `read` for `key`, never two at once: hints during a read make one more read after it. */
  #once(key: string, read: () => Promise<void>): void {
    const state = this.#reading.get(key);
    if (state) {
      this.#reading.set(key, 'again');
      return;
    }
    this.#reading.set(key, 'reading');
    void read()
      .catch((error: unknown) => this.#deps.report(error))
      .finally(() => {
        const again = this.#reading.get(key) === 'again';
        this.#reading.delete(key);
        if (again && !this.#stopped) this.#once(key, read);
      });
  }
}

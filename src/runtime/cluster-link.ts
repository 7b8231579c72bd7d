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
  /**
   * The seq of the last event of a session this node's subscribers have seen; `undefined`
   * while their stream has no starting point yet (see {@link LinkDeps.begin}).
   */
  delivered(sessionId: string): number | undefined;
  /** A watched session's stream starts after `seq`: the events the store held when it was first watched are its past. */
  begin(sessionId: string, seq: number): void;
  /** Hands committed events of a session run elsewhere to this node's subscribers (it skips seqs they have seen). */
  deliver(sessionId: string, events: readonly SessionEvent[]): void;
  /**
   * This node's stream of a session run elsewhere fell further behind than the store keeps
   * events (`keepEvents`): the events after `seq` up to `next` are gone. Its subscribers'
   * streams end with an error (they resume by last_seq and are told the resume is
   * incomplete) rather than skipping events silently (C8).
   */
  behind(sessionId: string, seq: number, next: number): void;
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
  /** Watched sessions whose stream's starting point is being read. */
  readonly #starting = new Map<string, Promise<void>>();
  #timer: unknown;
  #stopped = false;

  constructor(deps: LinkDeps, opts: LinkOptions) {
    this.#deps = deps;
    this.#opts = opts;
    this.store = deps.store;
    const hints: ClusterHints = {
      inbox: (sessionId) => this.#mail(sessionId),
      events: (sessionId, seq) => {
        const delivered = deps.delivered(sessionId);
        if (delivered === undefined ? this.#starting.has(sessionId) : seq > delivered) this.#events(sessionId);
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

  /**
   * A session's clients are here but it runs elsewhere: read its new events now. A session
   * watched afresh starts from the events the store holds now, as a subscriber on its owner
   * would (`eventsOf` gives the events from now on); its history is read by a resume, never
   * pushed to every new subscriber.
   */
  watch(sessionId: string): void {
    if (!this.#deps.live(sessionId)) this.#events(sessionId);
  }

  /** Reads a session's mail now, if this node runs it (mail left untaken while its release was in flight). */
  wake(sessionId: string): void {
    this.#mail(sessionId);
  }

  /**
   * Resolves once a watched session's stream has its starting point. A status read after it
   * names a seq at or after that point, so an attach point taken from it has no gap before
   * the first event the stream delivers.
   */
  started(sessionId: string): Promise<void> | undefined {
    return this.#starting.get(sessionId);
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
      // Owned here by the store's word, with work waiting, yet not run here: nobody else
      // would claim it (its owner is alive), so this node activates it again.
      for (const sessionId of (await deps.store.stranded?.()) ?? []) if (!deps.live(sessionId)) deps.activate(sessionId);
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
    const key = `events:${sessionId}`;
    if (this.#deps.delivered(sessionId) === undefined && !this.#reading.has(key)) return this.#start(sessionId);
    this.#once(key, async () => {
      const from = this.#deps.delivered(sessionId);
      if (from === undefined) return; // its start failed; the sweep tries again
      const events = await this.#deps.store.eventsAfter(sessionId, from);
      if (events.length === 0 || this.#deps.live(sessionId)) return;
      // The store trimmed events this node's subscribers have not seen (they lag too far).
      if (events[0]!.seq > from + 1 && this.#deps.delivered(sessionId) === from) return this.#deps.behind(sessionId, from, events[0]!.seq);
      this.#deps.deliver(sessionId, events);
    });
  }

  /** The stream of a session watched afresh starts after the newest event the store holds. */
  #start(sessionId: string): void {
    if (this.#starting.has(sessionId)) return;
    const key = `events:${sessionId}`;
    this.#reading.set(key, 'reading');
    const started = (async () => {
      try {
        const held = await this.#deps.store.eventsAfter(sessionId, 0);
        this.#deps.begin(sessionId, held.at(-1)?.seq ?? 0);
      } catch (error) {
        this.#deps.report(error);
      } finally {
        this.#starting.delete(sessionId);
        // Hints that came meanwhile may name events after the start: read them now.
        const again = this.#reading.get(key) === 'again';
        this.#reading.delete(key);
        if (again && !this.#stopped) this.#events(sessionId);
      }
    })();
    this.#starting.set(sessionId, started);
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

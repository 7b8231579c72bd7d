import { randomUUID } from 'node:crypto';
import type { Sql } from 'postgres';
import type { ClusterHints } from './cluster-store.ts';
import { dispatchHint } from './postgres-hints.ts';

export interface HintListenerOptions {
  /** The channel (the schema's name). */
  channel: string;
  /** A client of its own for LISTEN, made anew each time the listener is rebuilt. */
  connect: () => Sql;
  /** Where the pings are sent from: the store's pool. */
  pool: Sql;
  hints: Pick<ClusterHints, 'inbox' | 'events'>;
  /** After LISTEN came back on a new connection: hints sent meanwhile were lost. */
  relistened: () => void;
  report: (error: unknown) => void;
  /** How often the listener checks it still hears its channel. */
  checkMs: number;
}

interface Ping {
  payload: string;
  sent: boolean;
  heard: boolean;
}

/**
 * The node's LISTEN, and a watch on it. The `postgres` package re-LISTENs by itself after
 * a dropped connection, but not always: with postgres 3.4.9 a connection reset while a
 * LISTEN is in flight leaves that error behind, the next connection's LISTEN fails with it,
 * and the client sits connected and deaf for good (measured: 1 of 40 runs of 1.5 s of
 * pg_terminate_backend under load). A half-open TCP connection is deaf too, until keepalive.
 * A deaf node loses no work (the sweep polls), but every hint, so every mailed input and
 * every remote event, waits for the sweep.
 *
 * So the listener sends itself a ping on its channel every `checkMs`; a ping that committed
 * and was not heard by the next check means it is deaf: its client is ended, LISTEN is taken
 * on a new one, and `relistened` runs. Other nodes ignore the pings (an unknown payload).
 */
export class HintListener {
  readonly #opts: HintListenerOptions;
  readonly #token = `ping:${randomUUID()}:`;
  #sql: Sql | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #pings = 0;
  /** The last ping: whether its NOTIFY committed, and whether it came back (either may come first). */
  #ping: Ping | undefined;
  /** Set while no LISTEN is known to hold: the last attempt failed or is under way. */
  #owed = true;
  /** Listens taken since the last rebuild: the first is the rebuild's own. */
  #listens = 0;
  /** Whether the last check failed: an outage is reported once, not at every check. */
  #failing = false;
  /** Rebuilds after a missed ping, for tests and metrics. */
  rebuilds = 0;

  constructor(options: HintListenerOptions) {
    this.#opts = options;
  }

  /** Takes LISTEN; rejects if the server cannot be reached (nothing is left running then). */
  async start(): Promise<void> {
    await this.#listen();
    this.#schedule();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    const sql = this.#sql;
    this.#sql = undefined;
    await sql?.end({ timeout: 0 });
  }

  async #listen(): Promise<void> {
    if (this.#stopped) return;
    const previous = this.#sql;
    this.#owed = true;
    this.#listens = 0;
    const sql = (this.#sql = this.#opts.connect());
    // The old client may still hold a connection; it has no say any more.
    previous?.end({ timeout: 0 }).catch(this.#opts.report);
    try {
      await sql.listen(this.#opts.channel, (payload) => this.#heard(payload), () => {
        // The package's own re-LISTEN after a drop: what was sent meanwhile is lost — the
        // last ping too, which says nothing of the new connection.
        if (this.#listens++ === 0) return;
        this.#ping = undefined;
        this.#opts.relistened();
      });
    } catch (error) {
      if (this.#sql === sql) this.#sql = undefined;
      await sql.end({ timeout: 0 }).catch(() => {});
      throw error;
    }
    this.#owed = false;
  }

  #heard(payload: string): void {
    if (payload.startsWith('ping:')) {
      if (payload === this.#ping?.payload) this.#ping.heard = true;
      return;
    }
    // A hint handler that throws must not break the client's message parser.
    try {
      dispatchHint(payload, this.#opts.hints);
    } catch (error) {
      this.#opts.report(error);
    }
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => void this.#check(), this.#opts.checkMs);
    this.#timer.unref();
  }

  async #check(): Promise<void> {
    try {
      if (this.#owed || (this.#ping?.sent && !this.#ping.heard)) {
        if (!this.#owed) this.rebuilds++;
        this.#ping = undefined;
        await this.#listen();
        if (this.#stopped) return;
        this.#opts.relistened();
      }
      const ping: Ping = { payload: `${this.#token}${++this.#pings}`, sent: false, heard: false };
      this.#ping = ping;
      await this.#opts.pool`SELECT pg_notify(${this.#opts.channel}, ${ping.payload})`;
      // Only a ping that committed can be missed; one that failed (the server away) says nothing.
      ping.sent = true;
      this.#failing = false;
    } catch (error) {
      this.#ping = undefined;
      // Stopping is no failure (the pool ends under the ping); an outage is reported once.
      if (!this.#stopped && !this.#failing) this.#opts.report(error);
      this.#failing = true;
    } finally {
      this.#schedule();
    }
  }
}

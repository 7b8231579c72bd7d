import { randomUUID } from 'node:crypto';
import type { Sql } from 'postgres';
import type { ClusterHints } from './cluster-store.ts';
import { dispatchHint } from './postgres-hints.ts';

/** What the listener's client is made with, among its options. */
export interface ListenHandlers {
  /** The `postgres` option its own `listen` uses (not in its types): every NOTIFY the connection receives. */
  onnotify: (channel: string, payload: string) => void;
  /** The connection closed. */
  onclose: () => void;
}

export interface HintListenerOptions {
  /** The channel (the schema's name). */
  channel: string;
  /** A client of its own for LISTEN (`max: 1`) with these handlers, made anew each time the listener is rebuilt. */
  connect: (handlers: ListenHandlers) => Sql;
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
 * The node's LISTEN, and a watch on it. A deaf node loses no work (the sweep polls), but
 * every hint, so every mailed input and every remote event, waits for the sweep.
 *
 * LISTEN is a statement of the listener's own on a plain client, not the package's
 * `sql.listen`, whose re-LISTEN after a dropped connection fails twice over (postgres 3.4.9):
 * a connection reset while a LISTEN is in flight leaves that error behind, the next
 * connection's LISTEN fails with it, and the client sits connected and deaf for good
 * (measured: 1 of 40 runs of 1.5 s of pg_terminate_backend under load); and a client ended
 * while that re-LISTEN waits out its backoff (the server refusing connections) connects
 * again afterwards and holds an idle connection, and the process, for good. Here a closed
 * connection is taken anew by the listener, at once, on a new client; while that fails,
 * it is tried again every `checkMs`.
 *
 * A half-open TCP connection is deaf without closing, until keepalive. So the listener also
 * sends itself a ping on its channel every `checkMs`; a ping that committed and was not heard
 * by the next check means it is deaf: its client is ended, LISTEN is taken on a new one, and
 * `relistened` runs. Other nodes ignore the pings (an unknown payload).
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
  /** Set while no LISTEN is known to hold: the last attempt failed or is under way, or its connection closed. */
  #owed = true;
  #checking = false;
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
    const sql: Sql = this.#opts.connect({
      onnotify: (channel, payload) => {
        if (channel === this.#opts.channel) this.#heard(payload);
      },
      onclose: () => {
        if (this.#sql === sql) this.#dropped();
      },
    });
    this.#sql = sql;
    // The old client may still hold a connection; it has no say any more.
    previous?.end({ timeout: 0 }).catch(this.#opts.report);
    try {
      await sql`LISTEN ${sql(this.#opts.channel)}`;
    } catch (error) {
      if (this.#sql === sql) this.#sql = undefined;
      await sql.end({ timeout: 0 }).catch(() => {});
      throw error;
    }
    this.#owed = false;
  }

  /** The LISTEN connection closed under a LISTEN that held: taken anew at once, as the package would. */
  #dropped(): void {
    // An attempt under way answers for itself (start rejects, or the next check tries again).
    if (this.#owed || this.#stopped) return;
    this.#owed = true;
    // A check under way (its ping) takes it at its end, or the next one does.
    if (this.#checking) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#check(), 0);
    this.#timer.unref();
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

  #schedule(ms = this.#opts.checkMs): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => void this.#check(), ms);
    this.#timer.unref();
  }

  async #check(): Promise<void> {
    if (this.#stopped) return;
    this.#checking = true;
    try {
      // Reads the connection has waiting first: after the event loop was busy for longer than
      // checkMs, this timer runs before the poll phase that would read the ping that came back.
      await new Promise((resolve) => setImmediate(resolve));
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
      this.#checking = false;
      // A connection that closed during the check is taken anew at once.
      this.#schedule(this.#owed && !this.#failing ? 0 : this.#opts.checkMs);
    }
  }
}

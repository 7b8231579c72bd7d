import type Postgres from 'postgres';
import type { PendingQuery, Row, Sql } from 'postgres';
import { requirePeer } from '../peer.ts';
import type { ClusterHints, ClusterStore, Mail } from './cluster-store.ts';
import { writeSteps, type Claim } from './postgres-commit.ts';
import { entryOf, key } from './postgres-wave.ts';
import { fits, hint } from './postgres-hints.ts';
import { HintListener, type ListenHandlers } from './postgres-listener.ts';
import { transaction } from './postgres-transaction.ts';
import { NodeLease } from './postgres-lease.ts';
import { endStalledTransactions } from './postgres-stalled.ts';
import { migrate } from './postgres-migrations.ts';
import { resolvePostgresOptions, type PostgresStoreOptions, type ResolvedPostgresOptions } from './postgres-options.ts';
import { claimSession, liveOwner, loaded, readParts, readSession } from './postgres-reads.ts';
import { WAKE_SCHEDULE_ID } from './schedule.ts';
import { StaleEpochError, type InboxEntry, type LoadedSession, type LoadOptions, type NodeIdentity, type OwnedElsewhere, type StepRecord } from './store.ts';
import type { SessionEvent } from './types.ts';
export { StaleEpochError };

/**
 * A group commit not settled within a lease TTL, and at least this long, is given up: a
 * safety net, since the client has been seen to leave one pending for good after its
 * connection died, and every commit of the node waits behind it. Not shorter, so that a
 * loaded server's slow commit is not cut short (a lost connection is answered at once anyway).
 */
const MIN_COMMIT_DEADLINE_MS = 10_000;

/** How often (in steps that consume inputs) a session's consumed inbox entries are trimmed to INBOX_KEEP. */
const TRIM_EVERY = 32;
export type { PostgresStoreOptions };

/**
 * The cluster store: PostgreSQL as the one source of truth for sessions, the durable inbox,
 * events, transcripts and ownership (C12, C16, C17 across nodes).
 *
 * - **Leases.** {@link join} takes a lease row for this node under a new incarnation and
 *   renews it every `renewMs` on the database's clock; one row per node.
 * - **Claims.** `load` claims a session (epoch + 1) unless a live node owns it — then it
 *   answers `{ ownedBy }`. Every `commit` locks its sessions' rows and checks epoch and
 *   owner in the same transaction; a stale write throws {@link StaleEpochError}.
 * - **Hints.** LISTEN/NOTIFY on one channel (the schema's name): `inbox:<id>` after
 *   {@link deliver}, `events:<id>:<seq>` after a commit (also to this node). Hints can be
 *   lost while the LISTEN connection reconnects: poll as well. The listener pings itself and
 *   takes LISTEN anew when it stops hearing (see {@link HintListener}).
 * - **Deletion.** A deleted session's row, inbox and transcript go at once; its events stay
 *   until {@link prune} passes its last write, so nodes tailing it still read the last ones.
 *
 * Built on the `postgres` package rather than `pg`: it pipelines the statements of a group
 * commit on one connection, and its tagged templates make every value a typed parameter.
 *
 * @example
 * const store = new PostgresStore({ url: process.env.DATABASE_URL });
 * await store.join({ inbox: (id) => wake(id), events: (id, seq) => tail(id, seq), leaseLost: (e) => stopAll(e) });
 * const runtime = createRuntime({ agent, store });
 */
export class PostgresStore implements ClusterStore {
  readonly durable = true;
  readonly #opts: ResolvedPostgresOptions;
  readonly #sql: Sql;
  readonly #leaseSql: Sql;
  readonly #connectListener: (handlers: ListenHandlers) => Sql;
  readonly #lease: NodeLease;
  /** Sessions this node claimed, by key: the epoch every commit of theirs must still find. */
  readonly #claims = new Map<string, Claim>();
  /** Per session: steps with consumption since its consumed inbox entries were last trimmed. */
  readonly #untrimmed = new Map<string, number>();
  #hints: ClusterHints | undefined;
  #listener: HintListener | undefined;
  #closing: Promise<void> | undefined;
  #migrated: Promise<void> | undefined;
  #endingStalled = false;

  constructor(options: PostgresStoreOptions = {}) {
    this.#opts = resolvePostgresOptions(options);
    const { url, schema, nodeId, max, leaseTtlMs, renewMs } = this.#opts;
    const postgres = requirePeer<typeof Postgres>('postgres', 'baton-runtime/postgres');
    const config = {
      max,
      // The client's own backoff grows to 20 s between attempts: after an outage of a few
      // seconds the pool would stay away long past the lease TTL. Retry within a second.
      backoff: (retries: number) => Math.min(0.05 * 2 ** retries, 1),
      onnotice: () => {},
      connection: {
        // Unqualified names resolve in the schema; it is a validated identifier.
        search_path: schema,
        application_name: `baton ${nodeId}`.slice(0, 63),
        // A group commit locks its sessions' rows until COMMIT. A node that stalls inside one
        // (paused, or cut off while its TCP connection stays up) would hold them, and so block
        // every claim of those sessions, until it came back: the server ends a transaction
        // left idle for a lease TTL — by then the node's lease may have run out anyway, and
        // its late COMMIT fails instead of landing after the others gave up on it.
        idle_in_transaction_session_timeout: leaseTtlMs,
      },
    };
    this.#sql = url === undefined ? postgres(config) : postgres(url, config);
    // The lease has a connection of its own: on the pool, a renewal waited behind every
    // commit and read queued before it, and a node busy with commits lost its lease (and so
    // every session) for want of a free connection, though the database was there. Its
    // statements use no array types, so it never reads them (see #schema). One connection for
    // the node's life: no recycling timer (`max_lifetime`), whose handle would be one more.
    const leaseConfig = { ...config, max: 1, fetch_types: false, max_lifetime: null, connection: { ...config.connection, application_name: `baton ${nodeId} lease`.slice(0, 63) } };
    this.#leaseSql = url === undefined ? postgres(leaseConfig) : postgres(url, leaseConfig);
    this.#lease = new NodeLease(this.#leaseSql, { nodeId, leaseTtlMs, renewMs, lost: (error) => this.#leaseLost(error), renewed: () => this.#endStalled() });
    // LISTEN has a client of its own too, made anew when the listener finds itself deaf.
    const listenConfig = { ...config, max: 1, fetch_types: false, max_lifetime: null };
    this.#connectListener = (handlers) => (url === undefined ? postgres({ ...listenConfig, ...handlers }) : postgres(url, { ...listenConfig, ...handlers }));
  }

  get node(): NodeIdentity {
    return { id: this.#opts.nodeId, incarnation: this.#lease.incarnation };
  }

  async join(hints: ClusterHints): Promise<void> {
    if (this.#hints) throw new Error('PostgresStore.join: this store has joined already');
    this.#hints = hints;
    try {
      await this.#schema();
      // Listening before the lease is taken: no hint for a session this node claims is missed.
      this.#listener = new HintListener({
        channel: this.#opts.schema,
        connect: this.#connectListener,
        pool: this.#sql,
        hints,
        relistened: () => void this.#reannounce(),
        report: warn,
        checkMs: this.#opts.renewMs,
      });
      await this.#listener.start();
      await this.#lease.join();
    } catch (error) {
      // A join that failed (the server down, a newer schema) may be tried again.
      this.#hints = undefined;
      await this.#listener?.stop().catch(() => {});
      this.#listener = undefined;
      throw error;
    }
  }

  selfFenced(): boolean {
    return this.#lease.selfFenced();
  }

  /**
   * The epoch of this node's claim on a session — the one every commit of it must still
   * find — or `undefined` if this node holds none (then only a commit that creates the
   * session can pass, at epoch 1). For tools that record which epoch wrote which events.
   *
   * @example
   * const epoch = store.claimedEpoch('chat:42') ?? 1;
   * await store.commit(steps); // written under `epoch`, or refused
   */
  claimedEpoch(sessionId: string): number | undefined {
    return this.#claims.get(key(sessionId))?.epoch;
  }

  async load(sessionId: string, { recent, history, claim = true }: LoadOptions): Promise<LoadedSession | OwnedElsewhere | undefined> {
    await this.#schema();
    const id = key(sessionId);
    if (!claim) return readSession(this.#sql, sessionId, id, recent, history);
    const node = this.#owner();
    const answer = await claimSession(this.#sql, id, node);
    if (!answer || 'ownedBy' in answer) return answer;
    // Remembered before the parts are read: a commit may follow as soon as this resolves.
    if (node.incarnation === this.#lease.incarnation) this.#claims.set(id, { epoch: answer.claimed.epoch, incarnation: node.incarnation });
    return loaded(sessionId, answer.claimed, await readParts(this.#sql, id, recent, history));
  }

  async commit(steps: readonly StepRecord[]): Promise<void> {
    if (steps.length === 0) return;
    const { id: node, incarnation } = this.#owner();
    const ctx = { node, incarnation, keepEvents: this.#opts.keepEvents, channel: this.#opts.schema, claims: this.#claims, trimInbox: this.#trimInbox };
    try {
      const { claimed, forgotten } = await transaction(this.#sql, (tx) => writeSteps(tx, steps, ctx), Math.max(this.#opts.leaseTtlMs, MIN_COMMIT_DEADLINE_MS));
      for (const id of forgotten) this.#forget(id);
      if (incarnation === this.#lease.incarnation) for (const [id, claim] of claimed) this.#claims.set(id, claim);
    } catch (error) {
      // A refused group: the claim it names is dead; the runtime stops that session.
      if (error instanceof StaleEpochError && error.sessionId !== undefined) this.#forget(error.sessionId);
      throw error;
    }
  }

  async eventsAfter(sessionId: string, seq: number): Promise<SessionEvent[]> {
    await this.#schema();
    const rows = await this.#sql<{ seq: number; type: string; data: unknown }[]>`
      SELECT seq, type, data FROM events WHERE session_id = ${key(sessionId)} AND seq > ${Math.max(-1, Math.min(2 ** 31 - 1, Math.floor(seq)))} ORDER BY seq`;
    return rows.map((r) => ({ sessionId, seq: r.seq, type: r.type, data: r.data }) as SessionEvent);
  }

  /**
   * C20: a node fires the schedules of the sessions it owns and of those no live node owns
   * (never claimed, released, or their owner's lease is dead); the owner fires the rest.
   */
  #fireable(): PendingQuery<Row[]> {
    const sql = this.#sql;
    const { id, incarnation } = this.node;
    return sql`(s.owner_node IS NULL OR (s.owner_node = ${id} AND s.owner_incarnation = ${incarnation}) OR NOT ${liveOwner(sql)})`;
  }

  async nextDue(after = Number.MIN_SAFE_INTEGER): Promise<number | undefined> {
    await this.#schema();
    const [row] = await this.#sql<{ due: string | null }[]>`
      SELECT min(c.due_at) AS due FROM schedules c JOIN sessions s ON s.id = c.session_id
      WHERE c.due_at > ${Math.floor(after)} AND ${this.#fireable()}`;
    return row?.due == null ? undefined : Number(row.due);
  }

  async dueSessions(before: number, limit: number): Promise<string[]> {
    await this.#schema();
    const rows = await this.#sql<{ session_id: string }[]>`
      SELECT c.session_id, min(c.due_at) AS due FROM schedules c JOIN sessions s ON s.id = c.session_id
      WHERE c.due_at <= ${Math.floor(before)} AND ${this.#fireable()}
      GROUP BY c.session_id ORDER BY due LIMIT ${Math.max(1, Math.floor(limit))}`;
    return rows.map((r) => r.session_id);
  }

  async sessionsWithPending(): Promise<string[]> {
    await this.#schema();
    const rows = await this.#sql<{ session_id: string }[]>`SELECT DISTINCT session_id FROM inbox WHERE kind IN ('input', 'answer') AND NOT consumed`;
    return rows.map((r) => r.session_id);
  }

  async prune(before: number, isLive: (sessionId: string) => boolean): Promise<number> {
    await this.#schema();
    const sql = this.#sql;
    const cutoff = Math.max(Number.MIN_SAFE_INTEGER, Math.min(Number.MAX_SAFE_INTEGER, Math.ceil(before)));
    const prunable = (alias: string) => sql`${sql(alias)}.updated_at < ${cutoff} AND NOT ${liveOwner(sql, alias)}
      AND NOT EXISTS (SELECT 1 FROM inbox i WHERE i.session_id = ${sql(alias)}.id AND NOT i.consumed)
      AND NOT EXISTS (SELECT 1 FROM schedules c WHERE c.session_id = ${sql(alias)}.id)`;
    const candidates = await sql<{ id: string }[]>`SELECT s.id FROM sessions s WHERE ${prunable('s')}`;
    const ids = candidates.map((r) => r.id).filter((id) => !isLive(id));
    // Judged again on the locked rows: a session claimed or written meanwhile stays.
    const [gone] = ids.length === 0 ? [{ n: 0 }] : await sql<{ n: number }[]>`
      WITH t AS (SELECT id, updated_at, owner_node, owner_incarnation FROM sessions WHERE id = ANY(${ids}::text[]) ORDER BY id FOR UPDATE),
           gone AS (DELETE FROM sessions s USING t WHERE s.id = t.id AND ${prunable('t')} RETURNING s.id),
           i AS (DELETE FROM inbox WHERE session_id IN (SELECT id FROM gone)),
           e AS (DELETE FROM events WHERE session_id IN (SELECT id FROM gone)),
           tr AS (DELETE FROM transcript WHERE session_id IN (SELECT id FROM gone)),
           c AS (DELETE FROM schedules WHERE session_id IN (SELECT id FROM gone))
      SELECT count(*)::int AS n FROM gone`;
    await sql`WITH t AS (DELETE FROM tombstones WHERE deleted_at < ${cutoff} RETURNING session_id)
              DELETE FROM events WHERE session_id IN (SELECT session_id FROM t)`;
    return gone?.n ?? 0;
  }

  checkOwner(): Promise<void> {
    return this.#lease.check();
  }

  async deliver(sessionId: string, mail: Mail): Promise<'accepted' | 'duplicate'> {
    await this.#schema();
    const id = key(sessionId);
    const payload = fits(hint.inbox(id)) ? hint.inbox(id) : null;
    const [row] = await this.#sql<{ accepted: number }[]>`
      WITH ins AS (
        INSERT INTO inbox (session_id, input_id, kind, entry) VALUES (${id}, ${key(mail.entry.id)}, ${mail.kind}, ${JSON.stringify(entryOf(mail.entry))}::text::json)
        ON CONFLICT (session_id, input_id) DO NOTHING RETURNING 1),
      hinted AS (SELECT pg_notify(${this.#opts.schema}, ${payload}::text) FROM ins WHERE ${payload}::text IS NOT NULL)
      SELECT (SELECT count(*)::int FROM ins) AS accepted, (SELECT count(*) FROM hinted) AS hinted`;
    return row?.accepted ? 'accepted' : 'duplicate';
  }

  async mail(sessionId: string): Promise<Mail[]> {
    await this.#schema();
    const rows = await this.#sql<{ kind: Mail['kind']; entry: InboxEntry }[]>`
      SELECT kind, entry FROM inbox WHERE session_id = ${key(sessionId)} AND NOT taken AND NOT consumed ORDER BY n`;
    return rows.map((r) => ({ entry: r.entry, kind: r.kind }));
  }

  async mailWaiting(): Promise<string[]> {
    await this.#schema();
    const { id, incarnation } = this.node;
    const rows = await this.#sql<{ session_id: string }[]>`
      SELECT DISTINCT i.session_id FROM inbox i JOIN sessions s ON s.id = i.session_id
      WHERE NOT i.taken AND NOT i.consumed AND s.owner_node = ${id} AND s.owner_incarnation = ${incarnation}`;
    return rows.map((r) => r.session_id);
  }

  async stranded(): Promise<string[]> {
    await this.#schema();
    const { id, incarnation } = this.node;
    const rows = await this.#sql<{ session_id: string }[]>`
      SELECT DISTINCT i.session_id FROM sessions s JOIN inbox i ON i.session_id = s.id AND NOT i.consumed
      WHERE s.owner_node = ${id} AND s.owner_incarnation = ${incarnation}`;
    return rows.map((r) => r.session_id);
  }

  async orphans(limit: number): Promise<string[]> {
    await this.#schema();
    // A session given up with the inputs it holds all taken and a wake stored is parked on a
    // decision (C19): its snapshot holds them for the turn that waits. The decision or the wake
    // activates it; claimed as an orphan, it would re-run that turn (done{interrupted}), idle,
    // be given up again — and claimed again, every idle period, until then. (One a shutdown
    // gave up with a tool still running beside the wait re-runs it then, too: its turn could
    // not end before the decision anyway.)
    const sql = this.#sql;
    const parked = sql`(s.owner_node IS NULL
      AND EXISTS (SELECT 1 FROM schedules c WHERE c.session_id = s.id AND c.id = ${WAKE_SCHEDULE_ID})
      AND NOT EXISTS (SELECT 1 FROM inbox u WHERE u.session_id = s.id AND NOT u.consumed AND NOT u.taken))`;
    const rows = await sql<{ session_id: string }[]>`
      SELECT i.session_id FROM inbox i LEFT JOIN sessions s ON s.id = i.session_id
      WHERE NOT i.consumed AND (s.id IS NULL OR s.owner_node IS NULL OR NOT ${liveOwner(sql)}) AND NOT (s.id IS NOT NULL AND ${parked})
      GROUP BY i.session_id ORDER BY min(i.n) LIMIT ${Math.max(0, limit)}`;
    return rows.map((r) => r.session_id);
  }

  async countSessions(prefix: string): Promise<number> {
    await this.#schema();
    const [row] = await this.#sql<{ n: number }[]>`SELECT count(*)::int AS n FROM sessions WHERE starts_with(id, ${prefix})`;
    return row?.n ?? 0;
  }

  async sessionIds(limit: number): Promise<string[]> {
    const rows = await this.#sql<{ id: string }[]>`SELECT id FROM sessions ORDER BY updated_at DESC LIMIT ${Math.max(0, Math.floor(limit))}`;
    return rows.map((r) => r.id);
  }

  async ownerOf(sessionId: string): Promise<NodeIdentity | undefined> {
    await this.#schema();
    const [row] = await this.#sql<{ owner_node: string; owner_incarnation: number }[]>`
      SELECT s.owner_node, s.owner_incarnation FROM sessions s WHERE s.id = ${key(sessionId)} AND ${liveOwner(this.#sql)}`;
    return row && { id: row.owner_node, incarnation: row.owner_incarnation };
  }

  async leave(): Promise<void> {
    const { id, incarnation } = this.node;
    this.#lease.stop();
    this.#claims.clear();
    this.#untrimmed.clear();
    await transaction(this.#sql, async (tx) => {
      await tx`UPDATE sessions SET owner_node = NULL, owner_incarnation = NULL, epoch = epoch + 1 WHERE owner_node = ${id} AND owner_incarnation = ${incarnation}`;
      await tx`DELETE FROM nodes WHERE id = ${id} AND incarnation = ${incarnation}`;
    });
    await this.#listener?.stop();
  }

  /** Ends the pool and the LISTEN connection. Without {@link leave}, the lease runs out by itself. */
  close(): Promise<void> {
    this.#lease.stop();
    this.#closing ??= Promise.all([this.#sql.end({ timeout: 5 }), this.#leaseSql.end({ timeout: 5 }), this.#listener?.stop()]).then(() => {});
    return this.#closing;
  }

  /**
   * The schema, migrated once, before anything reads it: a runtime may ask for its pending
   * work while the join that would migrate is still under way. A failure is tried again.
   */
  #schema(): Promise<void> {
    this.#migrated ??= migrate(this.#sql, this.#opts.schema).then(() => {
      // The client reads the server's array types on every new connection, in a query whose
      // failure (the connection terminated meanwhile) nothing can catch: the process dies of
      // an unhandled rejection. The types are known now (the migration's connection read them
      // into the options all connections share), so later connections skip the query.
      this.#sql.options.fetch_types = false;
    }, (error: unknown) => {
      this.#migrated = undefined;
      throw error;
    });
    return this.#migrated;
  }

  /** This node, when it holds its lease: only then may it claim or write. */
  #owner(): NodeIdentity {
    if (this.#lease.held) return this.node;
    if (!this.#hints) throw new Error('PostgresStore: call join() before load or commit');
    throw new StaleEpochError(`node ${this.#opts.nodeId} holds no cluster lease (lost, or left); it may not claim or write sessions`);
  }

  /** The first consumption of a session here, then every TRIM_EVERY-th, trims its consumed entries (at most INBOX_KEEP + TRIM_EVERY steps' worth are held). */
  readonly #trimInbox = (id: string): boolean => {
    const n = this.#untrimmed.get(id) ?? 0;
    this.#untrimmed.set(id, (n + 1) % TRIM_EVERY);
    return n === 0;
  };

  #forget(id: string): void {
    this.#claims.delete(id);
    this.#untrimmed.delete(id);
  }

  /**
   * After each renewal: ends the transactions a stalled node holds open mid-command on this
   * cluster's sessions, which the server's idle timeout does not end (see
   * {@link endStalledTransactions}). On the lease's connection: the pool's may all be waiting
   * behind the very locks in question. One at a time.
   */
  #endStalled(): void {
    if (this.#endingStalled) return;
    this.#endingStalled = true;
    void endStalledTransactions(this.#leaseSql, this.#opts.leaseTtlMs)
      .then((ended) => {
        if (ended > 0) warn(new Error(`ended ${ended} transaction(s) on sessions whose client stalled mid-command for over a lease TTL (${this.#opts.leaseTtlMs} ms): their rows are free to claim`));
      }, warn)
      .finally(() => (this.#endingStalled = false));
  }

  #leaseLost(error: StaleEpochError): void {
    this.#claims.clear();
    this.#untrimmed.clear();
    try {
      this.#hints?.leaseLost(error);
    } catch (thrown) {
      warn(thrown);
    }
  }

  /** After LISTEN came back: hint the inbox of every session this node owns that has mail waiting. */
  async #reannounce(): Promise<void> {
    try {
      for (const sessionId of await this.mailWaiting()) this.#hints?.inbox(sessionId);
    } catch (error) {
      // Best effort: the runtime's poll finds the same mail.
      warn(error);
    }
  }
}

/** A hint handler threw, or a background read failed: reported, never rethrown into the client's parser. */
function warn(error: unknown): void {
  process.emitWarning(error instanceof Error ? error : new Error(String(error)), 'BatonPostgresStore');
}

import type { Sql } from 'postgres';
import { StaleEpochError } from './store.ts';

export interface LeaseOptions {
  readonly nodeId: string;
  readonly leaseTtlMs: number;
  readonly renewMs: number;
  /** The lease is gone (expired, taken, or not renewable in time); the lease rejoins by itself. */
  readonly lost: (error: StaleEpochError) => void;
  /** A renewal was confirmed (on the lease's connection, which nothing else queues on). */
  readonly renewed?: () => void;
}

/**
 * A node's lease: one row per node in `nodes`, renewed on the database's clock, so renewal
 * costs O(nodes), never O(sessions). Every join takes a new incarnation from a sequence:
 * sessions a previous incarnation owned are then visibly ownerless, even if the row lives on.
 *
 * The node's own clock fences it early: a renewal confirmed at `t` (the time the renewal
 * was *sent*, so the database's lease ends no sooner) keeps the lease until `t + ttl` at
 * the earliest; {@link selfFenced} turns true a fifth of the TTL before that, and at
 * `t + ttl` without a newer confirmation the lease counts as lost — a renewal that fails or
 * hangs cannot keep a node alive in its own eyes after the others have given up on it.
 */
export class NodeLease {
  incarnation = 0;
  readonly #sql: Sql;
  readonly #opts: LeaseOptions;
  #state: 'out' | 'held' | 'lost' | 'left' = 'out';
  /** Own clock: when the last confirmed renewal (or join) was sent. */
  #confirmedAt = Number.NEGATIVE_INFINITY;
  #renewTimer: NodeJS.Timeout | undefined;
  #expiryTimer: NodeJS.Timeout | undefined;

  constructor(sql: Sql, options: LeaseOptions) {
    this.#sql = sql;
    this.#opts = options;
  }

  get held(): boolean {
    return this.#state === 'held';
  }

  /**
   * Takes a lease under a new incarnation and starts renewing it. A live lease under this
   * node id is waited out, not taken: after a crash (kill -9) the restarted node finds its
   * predecessor's lease for up to a TTL. One that is renewed meanwhile belongs to another
   * live process, and the join is refused — two processes with one id would take the lease
   * from each other in turn.
   */
  async join(): Promise<void> {
    for (;;) {
      const sent = Date.now();
      const row = await this.#take();
      if (row) {
        if (this.#state === 'left') return;
        this.incarnation = row.incarnation;
        this.#state = 'held';
        this.#confirm(sent);
        return;
      }
      await this.#outlive();
    }
  }

  async #take(): Promise<{ incarnation: number } | undefined> {
    const { nodeId, leaseTtlMs } = this.#opts;
    const [row] = await this.#sql<{ incarnation: number }[]>`
      INSERT INTO nodes (id, incarnation, lease_until)
      VALUES (${nodeId}, nextval('incarnations'), now() + ${leaseTtlMs}::int * interval '1 millisecond')
      ON CONFLICT (id) DO UPDATE SET incarnation = excluded.incarnation, lease_until = excluded.lease_until, joined_at = now()
        WHERE nodes.lease_until < now() OR nodes.incarnation = ${this.incarnation}
      RETURNING incarnation`;
    return row;
  }

  /** Waits until the lease held under this node id runs out; throws if its holder renews it. */
  async #outlive(): Promise<void> {
    const read = async () => {
      const [row] = await this.#sql<{ incarnation: number; until: number; left: number }[]>`
        SELECT incarnation, extract(epoch FROM lease_until) * 1000 AS until, extract(epoch FROM lease_until - now()) * 1000 AS "left"
        FROM nodes WHERE id = ${this.#opts.nodeId}`;
      return row && { incarnation: row.incarnation, until: Number(row.until), left: Number(row.left) };
    };
    const first = await read();
    for (let now = first; now && now.left > 0; now = await read()) {
      if (now.incarnation !== first!.incarnation || now.until > first!.until) {
        throw new Error(`node id "${this.#opts.nodeId}" is held by another live process: give each node its own --node-id (nodeId)`);
      }
      if (this.#state === 'left') return;
      await new Promise((resolve) => setTimeout(resolve, Math.max(10, Math.min(this.#opts.renewMs, now.left + 5))));
    }
  }

  selfFenced(): boolean {
    const ttl = this.#opts.leaseTtlMs;
    return this.#state !== 'held' || Date.now() > this.#confirmedAt + ttl - ttl / 5;
  }

  /** Asks the database whether the lease still stands; a lost one is reported and rejected. */
  async check(): Promise<void> {
    if (this.#state === 'held') {
      const incarnation = this.incarnation;
      const rows = await this.#sql`SELECT 1 FROM nodes WHERE id = ${this.#opts.nodeId} AND incarnation = ${incarnation} AND lease_until > now()`;
      if (rows.length > 0) return;
      if (incarnation === this.incarnation) this.#lose('its lease row is gone or expired');
    }
    throw this.#error('holds no lease');
  }

  /** Stops renewing (leave, close); the row is the caller's to delete. */
  stop(): void {
    this.#state = 'left';
    clearTimeout(this.#renewTimer);
    clearTimeout(this.#expiryTimer);
  }

  #confirm(sent: number): void {
    this.#confirmedAt = sent;
    clearTimeout(this.#expiryTimer);
    this.#expiryTimer = setTimeout(() => this.#lose(`it could not renew its lease within ${this.#opts.leaseTtlMs} ms`), sent + this.#opts.leaseTtlMs - Date.now());
    this.#expiryTimer.unref();
    clearTimeout(this.#renewTimer);
    this.#renewTimer = setTimeout(() => void this.#renew(), this.#opts.renewMs);
    this.#renewTimer.unref();
  }

  async #renew(): Promise<void> {
    const incarnation = this.incarnation;
    const sent = Date.now();
    let renewed: boolean;
    try {
      // `lease_until > now()`: an expired lease is never revived — others may have taken its sessions.
      const rows = await this.#sql`
        UPDATE nodes SET lease_until = now() + ${this.#opts.leaseTtlMs}::int * interval '1 millisecond'
        WHERE id = ${this.#opts.nodeId} AND incarnation = ${incarnation} AND lease_until > now()
        RETURNING 1`;
      renewed = rows.length > 0;
    } catch {
      // Retried at the next tick; the expiry timer decides when failing renewals lose the lease.
      if (this.#state === 'held' && incarnation === this.incarnation) this.#armRetry();
      return;
    }
    if (this.#state !== 'held' || incarnation !== this.incarnation) return;
    if (renewed) {
      this.#confirm(sent);
      this.#opts.renewed?.();
    }
    else this.#lose('its lease row is gone or expired');
  }

  #armRetry(): void {
    clearTimeout(this.#renewTimer);
    this.#renewTimer = setTimeout(() => void this.#renew(), this.#opts.renewMs);
    this.#renewTimer.unref();
  }

  #lose(why: string): void {
    if (this.#state !== 'held') return;
    this.#state = 'lost';
    clearTimeout(this.#renewTimer);
    clearTimeout(this.#expiryTimer);
    this.#opts.lost(this.#error(why));
    void this.#rejoin();
  }

  /** Joins again under a new incarnation, retrying every renewMs until the database answers. */
  async #rejoin(): Promise<void> {
    while (this.#state === 'lost') {
      try {
        await this.join();
        return;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, this.#opts.renewMs).unref());
      }
    }
  }

  #error(why: string): StaleEpochError {
    return new StaleEpochError(`node ${this.#opts.nodeId} (incarnation ${this.incarnation}) lost its cluster lease: ${why}; its sessions may run elsewhere now`);
  }
}

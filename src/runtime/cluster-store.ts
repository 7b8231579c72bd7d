import type { InboxEntry, LoadedSession, LoadOptions, NodeIdentity, OwnedElsewhere, Store } from './store.ts';
import type { StaleEpochError } from './store.ts';
export type { NodeIdentity, OwnedElsewhere };

/** What a node hears from the store: hints, never the data itself (read it from the store). */
export interface ClusterHints {
  /** Inputs (or controls) were written to the inbox of a session: its owner should read them. */
  inbox(sessionId: string): void;
  /** Events up to `seq` were committed for a session: nodes with its clients should read them. */
  events(sessionId: string, seq: number): void;
  /**
   * This node's lease is lost (it could not renew in time, or the store says it expired):
   * every activation must stop now. The store rejoins under a new incarnation by itself.
   */
  leaseLost(error: Error): void;
}

/**
 * A message for a session's owner, written by whichever node a client is connected to: an
 * input or an answer (it waits in the inbox until a turn consumes it), a command (`content` is the
 * command line) or a control action (`content` is `stop`, `terminate`, `delete` or `start`).
 * The owner marks commands and controls consumed once it has taken them.
 */
export interface Mail {
  readonly entry: InboxEntry;
  /**
   * `answer`: an onboarding answer, its question id in `entry.metadata.questionId`.
   * `decision`: a permission decision (C19), `entry.content` is its JSON `{ id, allowed, reason? }`.
   */
  readonly kind: 'input' | 'command' | 'control' | 'answer' | 'decision';
}

/**
 * A store several nodes share (C17 across nodes): PostgreSQL. On top of {@link Store}:
 *
 * - **Node lease.** The store joins as {@link node} and renews its lease row on the
 *   database's clock every `renewMs`; a node that cannot renew within its TTL is dead to the
 *   others. `selfFenced()` is true when this node's own clock says the lease may have run
 *   out: it must start no agent call until it renews.
 * - **Claim on activation.** `load` claims the session for this node with `epoch + 1` when
 *   it has no owner, its owner's lease is dead, or this node already owns it — and answers
 *   {@link OwnedElsewhere} when a live node owns it. Every `commit` of a claimed session checks
 *   its epoch in the same transaction and throws {@link StaleEpochError} (naming the session)
 *   for an epoch that is no longer current; a step with `release` gives the session up
 *   (epoch + 1, no owner).
 * - **Mail.** `deliver` writes an input to the inbox of a session (any owner, or none),
 *   committed before it returns — a duplicate id answers `duplicate` — and hints its owner.
 * - **Orphans.** Sessions with waiting inputs and no live owner, for the sweeper.
 */
export interface ClusterStore extends Store {
  readonly node: NodeIdentity;
  /** Joins the cluster (and starts renewing); call once before anything else. */
  join(hints: ClusterHints): Promise<void>;
  /** `true` while this node's own clock says its lease may have expired. */
  selfFenced(): boolean;
  load(sessionId: string, options: LoadOptions): Promise<LoadedSession | OwnedElsewhere | undefined>;
  /**
   * Writes mail to a session's inbox (committed before it resolves) and hints its owner. A
   * mail id already in the inbox (consumed or not) answers `duplicate` and writes nothing.
   */
  deliver(sessionId: string, mail: Mail): Promise<'accepted' | 'duplicate'>;
  /**
   * A session's mail not yet taken, in arrival order. The owner takes it with the step that
   * offers it to the machine (`StepRecord.taken`): commands and controls are then consumed,
   * inputs wait in the inbox like any accepted input until a turn consumes them.
   */
  mail(sessionId: string): Promise<Mail[]>;
  /** Sessions this node owns with mail not yet taken (the sweep's fallback for lost hints). */
  mailWaiting(): Promise<string[]>;
  /**
   * Sessions the store says this node (this incarnation) owns that have inputs or mail not
   * yet consumed. One this node does not run is stranded — its host stopped without giving
   * it up (a commit this node fenced itself, a failed activation) — and, since its owner is
   * alive, no other node claims it: this node must activate it again.
   */
  stranded?(): Promise<string[]>;
  /**
   * Sessions with waiting inputs whose owner is gone (or none): to claim and run. Not one
   * given up while parked on a decision (C19: its inputs all taken, a wake stored) — the
   * decision or the wake activates it.
   */
  orphans(limit: number): Promise<string[]>;
  /** Stored sessions, the most recently written first, up to `limit` (for tools that list them). */
  sessionIds(limit: number): Promise<string[]>;
  /** Who owns a session now, if anyone alive. */
  ownerOf(sessionId: string): Promise<NodeIdentity | undefined>;
  /** Leaves the cluster: releases every session this node owns and deletes its lease. */
  leave(): Promise<void>;
}

export function isClusterStore(store: Store): store is ClusterStore {
  return typeof (store as Partial<ClusterStore>).join === 'function';
}

export function isOwnedElsewhere(value: unknown): value is OwnedElsewhere {
  return typeof value === 'object' && value !== null && 'ownedBy' in value;
}

import type { SessionEvent } from './types.ts';
import type { Awaitable } from './awaitable.ts';
export type { Awaitable };

/**
 * A write was refused because the store (or, on a cluster, the session) now has a newer
 * owner (C17): this process must stop writing it. The runtime stops the sessions it fences.
 */
export class StaleEpochError extends Error {
  readonly holder: string | undefined;
  /**
   * Set when one session moved to a newer owner (a cluster node claimed it): only that
   * session stops here. Unset when the whole store did: the process must stop.
   */
  readonly sessionId: string | undefined;
  constructor(message: string, holder?: string, sessionId?: string) {
    super(message);
    this.name = 'StaleEpochError';
    this.holder = holder;
    this.sessionId = sessionId;
  }
}

/** An accepted input, as the durable inbox keeps it. */
export interface InboxEntry {
  readonly id: string;
  readonly content: string;
  readonly metadata?: Readonly<Record<string, unknown>>;
}

/**
 * One entry of a session's transcript: what a turn took in and what it answered. A turn
 * that was stopped or failed records its inputs and marks its reply.
 */
export interface TranscriptEntry {
  /**
   * `tool_call` and `tool_result` entries (C19) come between a turn's inputs and its reply,
   * in call order; their `content` is the event's `data` as JSON (`{ id, name, input }`,
   * `{ id, status, output | error }`), so every store keeps them as it keeps text.
   */
  readonly role: 'user' | 'assistant' | 'tool_call' | 'tool_result';
  readonly content: string;
  /** For user entries: the client message id of the input. */
  readonly inputId?: string;
  /** For assistant entries of turns that did not succeed. */
  readonly status?: 'interrupted' | 'failed';
}

/**
 * One session's steps since its last commit, stored whole (see `Store.commit`), in this
 * order: inputs enter the inbox, events are appended, the transcript grows, consumed
 * inputs leave the inbox, the snapshot is written — or, for a session that ended, all of
 * it is deleted.
 */
export interface StepRecord {
  readonly sessionId: string;
  /** Inputs the session accepted in these steps: they enter the durable inbox. */
  readonly accepted?: readonly InboxEntry[];
  readonly events: readonly SessionEvent[];
  /** Inputs a finished turn consumed (or a stop cancelled): they leave the inbox. */
  readonly consumed: readonly string[];
  readonly transcript?: readonly TranscriptEntry[];
  /** The snapshot after the steps, when they changed it. */
  readonly session?: StoredSession;
  /** Mail from another node (a cluster) this step took: it is not offered again. */
  readonly taken?: readonly string[];
  /** Schedules set (upserted by id) and cancelled by these steps (C20). */
  readonly schedules?: { readonly set?: readonly ScheduleRecord[]; readonly cancel?: readonly string[] };
  /**
   * The session reached its final state (`deleted`): its snapshot, inbox and transcript go.
   * Its events may be kept until retention prunes them (a store several nodes share does,
   * so the other nodes' clients still read the final events).
   */
  readonly deleted?: boolean;
  /**
   * The session leaves this process (passivation, shutdown): a store several nodes share
   * gives up its ownership in the same transaction, so another node may claim it.
   */
  readonly release?: boolean;
}

/** A session's schedule as stored (C20). Times are the runtime clock's ms (epoch). */
export interface ScheduleRecord {
  readonly id: string;
  readonly dueAt: number;
  readonly everyMs?: number;
  readonly cron?: string;
  readonly payload?: unknown;
}

/** What is kept of one session between activations. */
export interface StoredSession {
  readonly sessionId: string;
  readonly kind: string;
  /** The actor's persisted XState snapshot (JSON-safe). */
  readonly snapshot: unknown;
  /** The seq of the last event the session emitted. */
  readonly seq: number;
  /** The kind's version when the snapshot was written (see `SessionKind.version`). @default 1 */
  readonly version?: number;
  /** When it was written, on the runtime's clock (for retention). @default the store's clock */
  readonly at?: number;
}

/** Everything an activation needs of a stored session, read at once (one round trip). */
export interface LoadedSession {
  readonly session: StoredSession;
  /** The highest seq stored for the session (its events may be newer than its snapshot). */
  readonly lastSeq: number;
  /** Inputs accepted and not yet consumed, in arrival order: the work to resume. */
  readonly pending: readonly InboxEntry[];
  /** The newest `recent` accepted inputs, oldest first (C10 across restarts). */
  readonly recent: readonly InboxEntry[];
  /** The newest `history` transcript entries, oldest first (`turn.history`). */
  readonly history: readonly TranscriptEntry[];
  /** The session's schedules, ordered by due time (C20); none from a store that keeps no schedules. */
  readonly schedules?: readonly ScheduleRecord[];
  /** The live node that runs it, when read without claiming from a store several nodes share. */
  readonly owner?: NodeIdentity;
}

/** A node of a cluster: one gateway process, named by an id and an incarnation (a new one at every join). */
export interface NodeIdentity {
  readonly id: string;
  readonly incarnation: number;
}

/** A session another live node owns (only a store several nodes share answers this): this node serves its clients through the store. */
export interface OwnedElsewhere {
  readonly ownedBy: NodeIdentity;
  /** The session's kind, if it is stored yet. */
  readonly kind?: string;
}

/** How much of a session's past {@link Store.load} reads. */
export interface LoadOptions {
  readonly recent: number;
  readonly history: number;
  /** `false` reads the session without activating it (a status): a shared store then claims nothing. @default true */
  readonly claim?: boolean;
}

/**
 * Where sessions live between activations and across restarts (C11, C12, C16, C17).
 *
 * Every method may answer with a promise (a network database) or at once (SQLite, memory:
 * the runtime then takes no detour through the microtask queue). Either way the runtime
 * claims a session synchronously (C1) and queues its inputs while it activates.
 */
export interface Store {
  /** `true` when everything written survives a crash of the process. */
  readonly durable: boolean;
  /**
   * A stored session with what its activation needs; `undefined` if there is none. A store
   * several nodes share claims the session for this node, or answers who owns it.
   */
  load(sessionId: string, options: LoadOptions): Awaitable<LoadedSession | OwnedElsewhere | undefined>;
  /**
   * Steps of sessions, in one transaction (a group commit). Nothing of a step is stored
   * without the rest, so a crash can neither lose a `done`'s consumption nor keep a `done`
   * whose inputs would run again. Nothing of the steps is published before it returns (or
   * its promise resolves); a throw or rejection means none of them is stored (C16).
   */
  commit(steps: readonly StepRecord[]): Awaitable<void>;
  /** Held events of a session with a seq above `seq`, in order (resume). */
  eventsAfter(sessionId: string, seq: number): Awaitable<SessionEvent[]>;
  /** Sessions with pending inputs: the work to re-run after a restart. */
  sessionsWithPending(): Awaitable<string[]>;
  /** The earliest due time of a schedule this process may fire (C20); with `after`, the earliest later than it. */
  nextDue?(after?: number): Awaitable<number | undefined>;
  /** Sessions with a schedule due by `before` that this process may fire, earliest first. */
  dueSessions?(before: number, limit: number): Awaitable<string[]>;
  /**
   * How many stored sessions have an id starting with `prefix` (a principal's namespace,
   * `alice/`), for quotas. Optional: without it, only live sessions are counted.
   */
  countSessions?(prefix: string): Awaitable<number>;
  /**
   * Retention: deletes — with their inbox, events and transcript — the stored sessions last
   * written before `before` (runtime clock) that have no waiting input and for which
   * `isLive` is false. Returns how many went.
   */
  prune(before: number, isLive: (sessionId: string) => boolean): Awaitable<number>;
  /**
   * Throws (or rejects with) {@link StaleEpochError} when a newer owner took the store over
   * (C17). The runtime asks every `ownerCheckMs`, so a fenced process stops even when it
   * has nothing to write.
   * @default not asked (a store only this process can open)
   */
  checkOwner?(): Awaitable<void>;
  close(): Awaitable<void>;
}

/** Schedules earliest first. */
export function byDue(schedules: Iterable<ScheduleRecord>): ScheduleRecord[] {
  return [...schedules].sort((a, b) => a.dueAt - b.dueAt);
}

/** How many events per session a store holds for resume (`init.data.last_seq`). */
export const DEFAULT_KEEP_EVENTS = 256;

/** How many transcript entries per session the memory store holds. */
export const TRANSCRIPT_KEEP = 1000;

/** How many consumed inputs per session a store keeps, for duplicate detection after a restart. */
export const INBOX_KEEP = 1000;

/**
 * A store in the process's memory: for tests and `--store memory`. Nothing survives a
 * restart, so inputs are acknowledged as `volatile`.
 */
export class MemoryStore implements Store {
  readonly durable = false;
  readonly #sessions = new Map<string, StoredSession>();
  readonly #written = new Map<string, number>();
  /** Per session: inputs not yet consumed (insertion order is arrival order) and the recent ones. */
  readonly #inbox = new Map<string, { pending: Map<string, InboxEntry>; recent: InboxEntry[] }>();
  readonly #events = new Map<string, SessionEvent[]>();
  readonly #transcripts = new Map<string, TranscriptEntry[]>();
  readonly #schedules = new Map<string, Map<string, ScheduleRecord>>();
  readonly #keep: number;

  constructor({ keepEvents = DEFAULT_KEEP_EVENTS }: { keepEvents?: number } = {}) {
    this.#keep = keepEvents;
  }

  load(sessionId: string, { recent, history }: LoadOptions): LoadedSession | undefined {
    const session = this.#sessions.get(sessionId);
    if (!session) return undefined;
    const inbox = this.#inbox.get(sessionId);
    return {
      session,
      lastSeq: Math.max(session.seq, this.#events.get(sessionId)?.at(-1)?.seq ?? 0),
      pending: [...(inbox?.pending.values() ?? [])],
      recent: recent > 0 ? (inbox?.recent ?? []).slice(-recent) : [],
      history: history > 0 ? (this.#transcripts.get(sessionId) ?? []).slice(-history) : [],
      schedules: byDue(this.#schedules.get(sessionId)?.values() ?? []),
    };
  }

  nextDue(after = Number.NEGATIVE_INFINITY): number | undefined {
    let next: number | undefined;
    for (const schedules of this.#schedules.values()) {
      for (const s of schedules.values()) if (s.dueAt > after && (next === undefined || s.dueAt < next)) next = s.dueAt;
    }
    return next;
  }

  dueSessions(before: number, limit: number): string[] {
    const due: [string, number][] = [];
    for (const [id, schedules] of this.#schedules) {
      const first = Math.min(...[...schedules.values()].map((s) => s.dueAt));
      if (first <= before) due.push([id, first]);
    }
    return due.sort((a, b) => a[1] - b[1]).slice(0, limit).map(([id]) => id);
  }

  #schedule(sessionId: string, { set = [], cancel = [] }: NonNullable<StepRecord['schedules']>): void {
    let schedules = this.#schedules.get(sessionId);
    if (!schedules) this.#schedules.set(sessionId, (schedules = new Map()));
    for (const id of cancel) schedules.delete(id);
    for (const record of set) schedules.set(record.id, record);
    if (schedules.size === 0) this.#schedules.delete(sessionId);
  }

  commit(steps: readonly StepRecord[]): void {
    for (const step of steps) {
      const id = step.sessionId;
      if (step.deleted) {
        this.#delete(id);
        continue;
      }
      for (const input of step.accepted ?? []) this.#accept(id, input);
      if (step.schedules) this.#schedule(id, step.schedules);
      this.#append(step.events);
      if (step.transcript) this.#say(id, step.transcript);
      const inbox = this.#inbox.get(id);
      if (inbox) for (const input of step.consumed) inbox.pending.delete(input);
      if (step.session) {
        this.#sessions.set(id, step.session);
        this.#written.set(id, step.session.at ?? Date.now());
      }
    }
  }

  #accept(sessionId: string, input: InboxEntry): void {
    let inbox = this.#inbox.get(sessionId);
    if (!inbox) this.#inbox.set(sessionId, (inbox = { pending: new Map(), recent: [] }));
    inbox.pending.set(input.id, input);
    inbox.recent.push(input);
    // Trimmed in chunks, not on every input: at most 2 × INBOX_KEEP are held.
    if (inbox.recent.length > 2 * INBOX_KEEP) inbox.recent.splice(0, inbox.recent.length - INBOX_KEEP);
  }

  #append(events: readonly SessionEvent[]): void {
    for (const event of events) {
      let list = this.#events.get(event.sessionId);
      if (!list) this.#events.set(event.sessionId, (list = []));
      list.push(event);
      if (list.length > 2 * this.#keep) list.splice(0, list.length - this.#keep);
    }
  }

  #say(sessionId: string, entries: readonly TranscriptEntry[]): void {
    const list = this.#transcripts.get(sessionId) ?? [];
    list.push(...entries);
    // Memory is not an archive: the newest TRANSCRIPT_KEEP entries are held (SQLite keeps all).
    if (list.length > 2 * TRANSCRIPT_KEEP) list.splice(0, list.length - TRANSCRIPT_KEEP);
    this.#transcripts.set(sessionId, list);
  }

  countSessions(prefix: string): number {
    let n = 0;
    for (const id of this.#sessions.keys()) if (id.startsWith(prefix)) n++;
    return n;
  }

  sessionsWithPending(): string[] {
    return [...this.#inbox].filter(([, inbox]) => inbox.pending.size > 0).map(([id]) => id);
  }

  eventsAfter(sessionId: string, seq: number): SessionEvent[] {
    return (this.#events.get(sessionId) ?? []).filter((e) => e.seq > seq).slice(-this.#keep);
  }

  prune(before: number, isLive: (sessionId: string) => boolean): number {
    let pruned = 0;
    for (const [id, at] of this.#written) {
      // A session with schedules is not idle: it wakes when they are due.
      if (at >= before || isLive(id) || (this.#inbox.get(id)?.pending.size ?? 0) > 0 || this.#schedules.has(id)) continue;
      this.#delete(id);
      pruned++;
    }
    return pruned;
  }

  #delete(sessionId: string): void {
    this.#written.delete(sessionId);
    this.#sessions.delete(sessionId);
    this.#transcripts.delete(sessionId);
    this.#inbox.delete(sessionId);
    this.#events.delete(sessionId);
    this.#schedules.delete(sessionId);
  }

  close(): void {}
}

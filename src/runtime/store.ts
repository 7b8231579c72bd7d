import type { SessionEvent } from './types.ts';

/**
 * A write was refused because the store (or, on a cluster, the session) now has a newer
 * owner (C17): this process must stop writing it. The runtime stops the sessions it fences.
 */
export class StaleEpochError extends Error {
  readonly holder: string | undefined;
  constructor(message: string, holder?: string) {
    super(message);
    this.name = 'StaleEpochError';
    this.holder = holder;
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
  readonly role: 'user' | 'assistant';
  readonly content: string;
  /** For user entries: the client message id of the input. */
  readonly inputId?: string;
  /** For assistant entries of turns that did not succeed. */
  readonly status?: 'interrupted' | 'failed';
}

/** One session's steps since its last commit, stored whole (see `Store.commit`). */
export interface StepRecord {
  readonly sessionId: string;
  readonly events: readonly SessionEvent[];
  readonly consumed: readonly string[];
  readonly transcript?: readonly TranscriptEntry[];
  readonly session?: StoredSession;
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

/**
 * Where sessions live between activations and across restarts (C11, C12). Synchronous on
 * purpose: a passivated session is activated inside `send` without an `await`, so C1's
 * claim-on-accept stays synchronous.
 */
export interface Store {
  /** `true` when everything written survives a crash of the process. */
  readonly durable: boolean;
  load(sessionId: string): StoredSession | undefined;
  /** Saves a session; inputs in `consumed` are marked consumed in the same transaction. */
  save(session: StoredSession, consumed?: readonly string[]): void;
  /** Marks inputs consumed without a snapshot (a store that is not durable saves snapshots only when it must). */
  consume(sessionId: string, consumed: readonly string[]): void;
  /** The durable inbox: an input, written before the session sees it (so before its ack says `durable`). */
  accept(sessionId: string, input: InboxEntry): void;
  /** Takes back an input the session rejected. */
  forget(sessionId: string, inputId: string): void;
  /** Inputs accepted and not yet consumed by a finished turn, in arrival order. */
  pending(sessionId: string): InboxEntry[];
  /** Sessions with pending inputs: the work to re-run after a restart. */
  sessionsWithPending(): string[];
  /** The ids (and content) of the session's most recent accepted inputs, oldest first (C10 across restarts). */
  recentInputs(sessionId: string, limit: number): InboxEntry[];
  /**
   * Steps of sessions, in one transaction (a group commit): their events, and — when a turn
   * ended — the inputs it consumed, with the snapshot after the step if given. Nothing of a
   * step is stored without the rest, so a crash can neither lose a `done`'s consumption nor
   * keep a `done` whose inputs would run again; and a step that throws stores nothing.
   * It may return a promise (a network database): nothing of the steps is published before
   * it resolves, and a rejection fails them as a throw does (C16).
   */
  commit(steps: readonly StepRecord[]): void | Promise<void>;
  /** Keeps outbound events for resume; only the newest `keepEvents` per session are held. */
  appendEvents(events: readonly SessionEvent[]): void;
  /** Held events of a session with a seq above `seq`, in order. */
  eventsAfter(sessionId: string, seq: number): SessionEvent[];
  /** The highest seq held for a session, or 0. */
  lastSeq(sessionId: string): number;
  /** Appends a finished turn to the session's transcript (append-only, turn order). */
  appendTranscript(sessionId: string, entries: readonly TranscriptEntry[]): void;
  /** The last `limit` transcript entries, oldest first. */
  transcript(sessionId: string, limit: number): TranscriptEntry[];
  delete(sessionId: string): void;
  close(): void;
  /**
   * Throws {@link StaleEpochError} when a newer owner took the store over (C17). The runtime
   * asks every `ownerCheckMs`, so a fenced process stops even when it has nothing to write.
   * @default not asked (a store only this process can open)
   */
  checkOwner?(): void;
  /**
   * Retention: deletes — with their inbox, events and transcript — the stored sessions last
   * written before `before` (runtime clock) that have no waiting input and for which
   * `isLive` is false. Returns how many went.
   */
  prune(before: number, isLive: (sessionId: string) => boolean): number;
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
  readonly #keep: number;

  constructor({ keepEvents = DEFAULT_KEEP_EVENTS }: { keepEvents?: number } = {}) {
    this.#keep = keepEvents;
  }

  load(sessionId: string): StoredSession | undefined {
    return this.#sessions.get(sessionId);
  }

  save(session: StoredSession, consumed: readonly string[] = []): void {
    this.#sessions.set(session.sessionId, session);
    this.#written.set(session.sessionId, session.at ?? Date.now());
    const inbox = this.#inbox.get(session.sessionId);
    if (inbox) for (const id of consumed) inbox.pending.delete(id);
  }

  consume(sessionId: string, consumed: readonly string[]): void {
    const inbox = this.#inbox.get(sessionId);
    if (inbox) for (const id of consumed) inbox.pending.delete(id);
  }

  commit(steps: readonly StepRecord[]): void {
    for (const step of steps) {
      this.appendEvents(step.events);
      if (step.transcript) this.appendTranscript(step.sessionId, step.transcript);
      if (step.session) this.save(step.session, step.consumed);
      else this.consume(step.sessionId, step.consumed);
    }
  }

  accept(sessionId: string, input: InboxEntry): void {
    let inbox = this.#inbox.get(sessionId);
    if (!inbox) this.#inbox.set(sessionId, (inbox = { pending: new Map(), recent: [] }));
    inbox.pending.set(input.id, input);
    inbox.recent.push(input);
    // Trimmed in chunks, not on every input: at most 2 × INBOX_KEEP are held.
    if (inbox.recent.length > 2 * INBOX_KEEP) inbox.recent.splice(0, inbox.recent.length - INBOX_KEEP);
  }

  forget(sessionId: string, inputId: string): void {
    const inbox = this.#inbox.get(sessionId);
    if (!inbox?.pending.delete(inputId)) return;
    const at = inbox.recent.findLastIndex((e) => e.id === inputId);
    if (at >= 0) inbox.recent.splice(at, 1);
  }

  pending(sessionId: string): InboxEntry[] {
    return [...(this.#inbox.get(sessionId)?.pending.values() ?? [])];
  }

  sessionsWithPending(): string[] {
    return [...this.#inbox].filter(([, inbox]) => inbox.pending.size > 0).map(([id]) => id);
  }

  recentInputs(sessionId: string, limit: number): InboxEntry[] {
    return (this.#inbox.get(sessionId)?.recent ?? []).slice(-limit);
  }

  appendEvents(events: readonly SessionEvent[]): void {
    for (const event of events) {
      let list = this.#events.get(event.sessionId);
      if (!list) this.#events.set(event.sessionId, (list = []));
      list.push(event);
      if (list.length > 2 * this.#keep) list.splice(0, list.length - this.#keep);
    }
  }

  eventsAfter(sessionId: string, seq: number): SessionEvent[] {
    return (this.#events.get(sessionId) ?? []).filter((e) => e.seq > seq).slice(-this.#keep);
  }

  lastSeq(sessionId: string): number {
    return this.#events.get(sessionId)?.at(-1)?.seq ?? 0;
  }

  appendTranscript(sessionId: string, entries: readonly TranscriptEntry[]): void {
    const list = this.#transcripts.get(sessionId) ?? [];
    list.push(...entries);
    // Memory is not an archive: the newest TRANSCRIPT_KEEP entries are held (SQLite keeps all).
    if (list.length > 2 * TRANSCRIPT_KEEP) list.splice(0, list.length - TRANSCRIPT_KEEP);
    this.#transcripts.set(sessionId, list);
  }

  transcript(sessionId: string, limit: number): TranscriptEntry[] {
    return limit > 0 ? (this.#transcripts.get(sessionId) ?? []).slice(-limit) : [];
  }

  prune(before: number, isLive: (sessionId: string) => boolean): number {
    let pruned = 0;
    for (const [id, at] of this.#written) {
      if (at >= before || isLive(id) || (this.#inbox.get(id)?.pending.size ?? 0) > 0) continue;
      this.delete(id);
      pruned++;
    }
    return pruned;
  }

  delete(sessionId: string): void {
    this.#written.delete(sessionId);
    this.#sessions.delete(sessionId);
    this.#transcripts.delete(sessionId);
    this.#inbox.delete(sessionId);
    this.#events.delete(sessionId);
  }

  close(): void {}
}

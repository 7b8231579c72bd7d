import type { InboxEntry, ScheduleRecord, TranscriptEntry } from './store.ts';
import type { SessionEvent } from './types.ts';

/** What a step writes, as the gate hands it to the group commit. */
export interface StepWrites {
  readonly accepted: InboxEntry[];
  readonly events: SessionEvent[];
  readonly consumed: string[];
  readonly transcript: TranscriptEntry[];
  readonly taken: string[];
  /** Schedules the steps set (a record) or cancelled (`null`), the last word per id (C20). */
  readonly schedules: Map<string, ScheduleRecord | null>;
}

/**
 * A session's output gate (C16): the second half of every step. The host runs the machine
 * and numbers its outputs; what the step writes — inputs it accepted, events, consumed
 * inputs, transcript — and what it makes visible — events to publish, work to start,
 * receipts — wait here until the group commit has stored them. Then, and only then, they
 * are released, in order. A failed commit discards them all.
 *
 *   event → machine → numbered outputs → gate → commit → release
 */
export class OutputGate {
  #writes: StepWrites = empty();
  #outbox: (() => void)[] = [];
  /** The outbox of the writes being committed. */
  #releasing: (() => void)[] = [];
  /** Callers waiting for a commit (receipts, checkpoints): `false` if it failed. */
  readonly #waiters = new Set<(committed: boolean) => void>();
  #queued = false;
  #closed = false;
  readonly #enqueue: () => void;
  readonly #report: (error: unknown) => void;

  /** `enqueue` asks the group commit to take this session's step; `report` gets what a released task throws. */
  constructor(enqueue: () => void, report: (error: unknown) => void) {
    this.#enqueue = enqueue;
    this.#report = report;
  }

  /** An input the machine accepted: it enters the durable inbox with the step. */
  accept(input: InboxEntry): void {
    this.#writes.accepted.push(input);
    this.#queue();
  }

  /** A numbered event: stored with the step, published when it is committed. */
  emit(event: SessionEvent, publish: (event: SessionEvent) => void): void {
    this.#writes.events.push(event);
    this.hold(() => publish(event));
  }

  /** Inputs a finished turn consumed (or a stop cancelled), and the transcript it adds. */
  consume(inputs: readonly string[], transcript: readonly TranscriptEntry[] = []): void {
    this.#writes.consumed.push(...inputs);
    this.#writes.transcript.push(...transcript);
    this.#queue();
  }

  /** A schedule set (a record) or cancelled (`null`) by the step: written with it (C20). */
  schedule(id: string, record: ScheduleRecord | null): void {
    this.#writes.schedules.set(id, record);
    this.#queue();
  }

  /** Mail from another node the step took (a cluster): it is not offered again. */
  take(mail: readonly string[]): void {
    this.#writes.taken.push(...mail);
    this.#queue();
  }

  /** Work the step starts (an agent, a handler, a drain notice): run once the step is committed. */
  hold(task: () => void): void {
    if (this.#closed) return;
    this.#outbox.push(task);
    this.#queue();
  }

  /** Resolves `true` once everything held so far is committed, `false` if a commit failed. */
  committed(): Promise<boolean> {
    if (this.#closed) return Promise.resolve(false);
    return new Promise((resolve) => {
      this.#waiters.add(resolve);
      this.hold(() => {
        this.#waiters.delete(resolve);
        resolve(true);
      });
    });
  }

  /** Nothing waits for a commit and none is in flight. */
  get settled(): boolean {
    return !this.#queued && this.#releasing.length === 0;
  }

  /** Asks for a commit even with nothing written (a checkpoint of the snapshot). */
  touch(): void {
    this.#queue();
  }

  /** The group commit takes the writes; what they make visible is set aside for {@link release}. */
  writes(): StepWrites {
    this.#queued = false;
    this.#releasing = this.#outbox;
    this.#outbox = [];
    const writes = this.#writes;
    this.#writes = empty();
    return writes;
  }

  /** The writes are committed: release what they made visible, in order. */
  release(): void {
    const tasks = this.#releasing;
    this.#releasing = [];
    for (const task of tasks) {
      try {
        task();
      } catch (error) {
        this.#report(error);
      }
    }
  }

  /** A commit failed: nothing is released, ever again; whoever waits learns it. */
  close(): void {
    this.#closed = true;
    this.#writes = empty();
    this.#outbox = [];
    this.#releasing = [];
    for (const waiter of [...this.#waiters]) waiter(false);
    this.#waiters.clear();
  }

  #queue(): void {
    if (this.#queued || this.#closed) return;
    this.#queued = true;
    this.#enqueue();
  }
}

function empty(): StepWrites {
  return { accepted: [], events: [], consumed: [], transcript: [], taken: [], schedules: new Map() };
}

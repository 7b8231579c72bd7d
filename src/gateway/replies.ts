import type { OutboundFrame } from '../../machines/connection.ts';

/**
 * Past this many session frames held behind an outstanding answer, they go out anyway: the
 * hold is a courtesy (an ack before the frames of the step that accepted it), never a buffer
 * that grows with a slow store.
 */
export const MAX_HELD_SESSION_FRAMES = 256;

/** How an owed answer is made once its promise settles. */
export interface Answer<T> {
  /** The frames for the value. */
  answer(value: T): readonly OutboundFrame[];
  /** The frames for a rejection (a typed error naming the frame). */
  fail(error: unknown): readonly OutboundFrame[];
  /** The frames when `answer` or `fail` itself throws (C15: never an unhandled rejection). */
  internal(error: unknown): readonly OutboundFrame[];
  /**
   * A barrier (`pong`): the session frames held when it settled go out before it, so the
   * client has everything that happened before the answer. An ack is no barrier: the frames
   * of the step it acknowledges follow it.
   */
  barrier?: boolean;
}

/** One answer owed to a client frame. */
interface Slot {
  /** `undefined` until the answer is known. */
  frames: readonly OutboundFrame[] | undefined;
  readonly barrier: boolean;
  /** How many session frames had been held when it settled. */
  heldBefore: number;
}

/**
 * One connection's answers (`input.ack`, `pong`, an `error` about a frame), written in the
 * order of the frames they answer even though the runtime settles them asynchronously, so a
 * `pong` still means "everything before my ping is answered". While an answer is owed,
 * session frames wait behind it: the runtime publishes a step's events before the receipt of
 * the input that step accepted, and the client should see the ack first.
 *
 * @example
 * const replies = new Replies((frame) => connection.send(frame));
 * replies.later(() => runtime.send(id, input), { answer: (receipt) => [ackOf(receipt)], fail, internal });
 * runtime.eventsOf(id).subscribe((e) => replies.session(frameOf(e))); // held until the ack is out
 */
export class Replies {
  readonly #write: (frame: OutboundFrame) => void;
  readonly #written: () => void;
  readonly #slots: Slot[] = [];
  #held: OutboundFrame[] = [];
  /** Session frames ever held, and ever released: positions in one sequence. */
  #heldCount = 0;
  #releasedCount = 0;
  /** Called once nothing is owed any more. */
  readonly #whenClear: (() => void)[] = [];

  /** `written` is told each time owed answers went out (for a reader paused while many were owed). */
  constructor(write: (frame: OutboundFrame) => void, written: () => void = () => {}) {
    this.#write = write;
    this.#written = written;
  }

  /** Answers owed and not yet written (settled or not). */
  get owed(): number {
    return this.#slots.length;
  }

  /** An answer known now: written at once, or behind the answers still owed. */
  now(frames: readonly OutboundFrame[]): void {
    if (this.#slots.length === 0) frames.forEach((frame) => this.#write(frame));
    else this.#slots.push({ frames, barrier: false, heldBefore: this.#heldCount });
  }

  /**
   * An answer `call` settles, written in its turn. The slot is taken before `call` runs, so
   * session frames the call publishes at once are held behind the answer too; a `call` that
   * throws is a rejection.
   */
  later<T>(call: () => Promise<T>, how: Answer<T>): void {
    const slot: Slot = { frames: undefined, barrier: how.barrier ?? false, heldBefore: 0 };
    this.#slots.push(slot);
    let promise: Promise<T>;
    try {
      promise = call();
    } catch (error) {
      promise = Promise.reject(error);
    }
    promise
      .then(
        (value) => how.answer(value),
        (error: unknown) => how.fail(error),
      )
      .catch((error: unknown) => how.internal(error))
      .catch((): readonly OutboundFrame[] => [])
      .then((frames) => {
        slot.frames = frames;
        slot.heldBefore = this.#heldCount;
        this.#pump();
      });
  }

  /** Calls `then` once every owed answer is written: at once if none is owed. */
  afterOwed(then: () => void): void {
    if (this.#slots.length === 0) then();
    else this.#whenClear.push(then);
  }

  /** A session event for this connection: written now, unless an answer is owed. */
  session(frame: OutboundFrame): void {
    if (this.#slots.length === 0 && this.#held.length === 0) return this.#write(frame);
    this.#held.push(frame);
    this.#heldCount++;
    if (this.#held.length >= MAX_HELD_SESSION_FRAMES) this.release();
  }

  /** Writes the held session frames now (all answers are out, the stream ends, or too many wait). */
  release(upTo = this.#heldCount): void {
    const count = Math.min(upTo - this.#releasedCount, this.#held.length);
    if (count <= 0) return;
    const frames = this.#held.splice(0, count);
    this.#releasedCount += count;
    frames.forEach((frame) => this.#write(frame));
  }

  #pump(): void {
    for (let slot = this.#slots[0]; slot?.frames; slot = this.#slots[0]) {
      this.#slots.shift();
      if (slot.barrier) this.release(slot.heldBefore);
      slot.frames.forEach((frame) => this.#write(frame));
    }
    if (this.#slots.length === 0) {
      this.release();
      this.#whenClear.splice(0).forEach((then) => then());
    }
    this.#written();
  }
}

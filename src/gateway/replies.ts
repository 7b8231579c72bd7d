import type { OutboundFrame } from '../../machines/connection.ts';

/**
 * Past this many session frames held behind an outstanding answer, they go out anyway: the
 * hold is a courtesy (an ack before the frames of the step that accepted it), never a buffer
 * that grows with a slow store.
 */
export const MAX_HELD_SESSION_FRAMES = 256;

/** One answer owed to a client frame: `undefined` until it is known. */
interface Slot {
  frames: readonly OutboundFrame[] | undefined;
}

/**
 * One connection's answers (`input.ack`, `pong`, an `error` about a frame), written in the
 * order of the frames they answer even though the runtime settles them asynchronously — so
 * a `pong` still means "everything before my ping is answered". While an answer is owed,
 * session frames wait behind it: the runtime publishes a step's events before the receipt
 * of the input that step accepted, and the client should see the ack first.
 *
 * @example
 * const replies = new Replies((frame) => connection.send(frame));
 * replies.later(runtime.send(id, input), (receipt) => [ackOf(receipt)], (error) => [errorOf(error)]);
 * runtime.eventsOf(id).subscribe((e) => replies.session(frameOf(e))); // held until the ack is out
 */
export class Replies {
  readonly #write: (frame: OutboundFrame) => void;
  readonly #slots: Slot[] = [];
  #held: OutboundFrame[] = [];

  constructor(write: (frame: OutboundFrame) => void) {
    this.#write = write;
  }

  /** An answer known now: written at once, or behind the answers still owed. */
  now(frames: readonly OutboundFrame[]): void {
    if (this.#slots.length === 0) frames.forEach(this.#write);
    else this.#slots.push({ frames });
  }

  /**
   * An answer the promise settles. `answer` and `fail` turn its outcome into frames; if
   * either throws, the client gets `internal` instead (C15: never an unhandled rejection).
   */
  later<T>(
    promise: Promise<T>,
    answer: (value: T) => readonly OutboundFrame[],
    fail: (error: unknown) => readonly OutboundFrame[],
    internal: (error: unknown) => readonly OutboundFrame[],
  ): void {
    const slot: Slot = { frames: undefined };
    this.#slots.push(slot);
    promise
      .then(answer, fail)
      .catch(internal)
      .catch(() => [])
      .then((frames) => {
        slot.frames = frames;
        this.#pump();
      });
  }

  /** A session event for this connection: written now, unless an answer is owed. */
  session(frame: OutboundFrame): void {
    if (this.#slots.length === 0) return this.#write(frame);
    this.#held.push(frame);
    if (this.#held.length >= MAX_HELD_SESSION_FRAMES) this.release();
  }

  /** Writes the held session frames now (the stream ends, or too many wait). */
  release(): void {
    const held = this.#held;
    this.#held = [];
    held.forEach(this.#write);
  }

  #pump(): void {
    while (this.#slots[0]?.frames) this.#slots.shift()!.frames!.forEach(this.#write);
    if (this.#slots.length === 0) this.release();
  }
}

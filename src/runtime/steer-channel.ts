import type { SessionInput } from '../../machines/session.ts';

/**
 * The `turn.steer` iterable of one turn. The runtime pushes steered inputs; the agent
 * pulls them. `onOpen` fires when the agent starts reading (it accepts steering);
 * `onPull` fires for each input it takes, so the session knows the input now belongs to
 * this turn. Closing ends the iteration; unpulled inputs stay with the session.
 */
export class SteerChannel implements AsyncIterable<SessionInput> {
  /** Takes every input already here, without waiting. */
  drain(): SessionInput[] {
    this.#open();
    const taken = this.#buffer.splice(0);
    for (const input of taken) this.#onPull(input);
    return taken;
  }

  #open(): void {
    if (this.#opened) return;
    this.#opened = true;
    this.#onOpen();
  }

  readonly #buffer: SessionInput[] = [];
  #waiting: ((r: IteratorResult<SessionInput>) => void) | undefined;
  #closed = false;
  #opened = false;
  readonly #onOpen: () => void;
  readonly #onPull: (input: SessionInput) => void;

  constructor(onOpen: () => void, onPull: (input: SessionInput) => void) {
    this.#onOpen = onOpen;
    this.#onPull = onPull;
  }

  push(input: SessionInput): void {
    if (this.#closed) return;
    const waiting = this.#waiting;
    if (waiting) {
      this.#waiting = undefined;
      this.#onPull(input);
      waiting({ value: input, done: false });
    } else {
      this.#buffer.push(input);
    }
  }

  close(): void {
    this.#closed = true;
    this.#buffer.length = 0;
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterator<SessionInput> {
    this.#open();
    return {
      next: () => {
        const input = this.#buffer.shift();
        if (input !== undefined) {
          this.#onPull(input);
          return Promise.resolve({ value: input, done: false });
        }
        if (this.#closed) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => {
          this.#waiting = resolve;
        });
      },
      return: () => {
        this.#waiting = undefined;
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}

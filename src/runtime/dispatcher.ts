import type { Clock } from './clock.ts';

/**
 * Keeps user code out of actor processing. Session actors only record effects while they
 * process an event; the dispatcher runs the recorded work — agents, command handlers,
 * subscribers — once the outermost `send` (or timer) has returned. So user code may call
 * back into the runtime at any moment and always finds the actors at rest: a `send` from
 * inside a subscriber gets its receipt synchronously, and events are delivered in the
 * order the machines emitted them.
 */
export class Dispatcher {
  #depth = 0;
  #flushing = false;
  readonly #tasks: (() => void)[] = [];
  readonly #onError: (error: unknown) => void;

  constructor(onError: (error: unknown) => void) {
    this.#onError = onError;
  }

  /** Runs `fn` (which drives an actor); deferred work runs when the outermost call returns. */
  run<T>(fn: () => T): T {
    this.#depth++;
    try {
      return fn();
    } finally {
      this.#depth--;
      if (this.#depth === 0) this.#flush();
    }
  }

  defer(task: () => void): void {
    this.#tasks.push(task);
    // Outside `run`, XState itself is processing (a promise actor settled, say): the
    // work waits for a microtask, by which time that processing has finished.
    if (this.#depth === 0 && !this.#flushing && this.#tasks.length === 1) queueMicrotask(() => this.#flush());
  }

  /** A clock whose callbacks (XState's delayed transitions) run inside {@link run}. */
  wrap(clock: Clock): Clock {
    return {
      setTimeout: (fn, ms) => clock.setTimeout((...args: unknown[]) => this.run(() => fn(...args)), ms),
      clearTimeout: (id) => clock.clearTimeout(id),
    };
  }

  #flush(): void {
    // A task may send more events; their work is appended and runs in this same loop,
    // so nothing overtakes what was emitted before it.
    if (this.#flushing) return;
    this.#flushing = true;
    const tasks = this.#tasks;
    try {
      for (let i = 0; i < tasks.length; i++) {
        try {
          tasks[i]!();
        } catch (error) {
          this.#onError(error);
        }
      }
    } finally {
      tasks.length = 0;
      this.#flushing = false;
    }
  }
}

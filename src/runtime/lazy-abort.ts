/**
 * An AbortController made only when someone looks at its signal. Creating an AbortSignal
 * costs more than the rest of a fast turn, and most no-op or synchronous agents never
 * read it; aborting before anyone looked still yields an aborted signal when they do.
 */
export class LazyAbort {
  #controller: AbortController | undefined;
  #reason: unknown;
  #aborted = false;

  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  abort(reason?: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    this.#controller?.abort(reason);
  }
}

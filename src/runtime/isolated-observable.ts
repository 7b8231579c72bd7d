import { Observable, Subscriber, type Observer, type Operator, type Subscription } from 'rxjs';

/** Where an error thrown by user code goes; never rethrown (C7). */
export type ReportError = (error: unknown) => void;

/**
 * An Observable whose subscribers cannot take the process down (C7). rxjs rethrows an error
 * thrown by a subscriber's callback from a timer — an uncaught exception that kills Node —
 * and does the same for an `error` nobody handles. Here every callback of every subscriber
 * is guarded, including those of chains built with `pipe` (each operator's result is
 * another IsolatedObservable, through `lift`): the error is reported, that one callback is
 * skipped, and every other subscriber still receives every value.
 */
export class IsolatedObservable<T> extends Observable<T> {
  readonly #report: ReportError;

  constructor(report: ReportError, subscribe?: ConstructorParameters<typeof Observable<T>>[0]) {
    super(subscribe);
    this.#report = report;
  }

  override lift<R>(operator?: Operator<T, R>): Observable<R> {
    const lifted = new IsolatedObservable<R>(this.#report);
    // What rxjs's own `lift` does, on an instance that keeps the guard.
    return Object.assign(lifted, { source: this, operator });
  }

  override subscribe(
    observerOrNext?: Partial<Observer<T>> | ((value: T) => void) | null,
    error?: ((error: unknown) => void) | null,
    complete?: (() => void) | null,
  ): Subscription {
    // An operator's own subscriber (rxjs plumbing between `pipe` stages) passes as it is:
    // its teardown chain must stay intact, and it already routes errors downstream.
    if (observerOrNext instanceof Subscriber) return super.subscribe(observerOrNext);
    // rxjs's deprecated (next, error, complete) form is still what some callers use.
    const observer: Partial<Observer<T>> =
      typeof observerOrNext === 'function' || error || complete
        ? {
            ...(typeof observerOrNext === 'function' && { next: observerOrNext }),
            ...(error && { error }),
            ...(complete && { complete }),
          }
        : (observerOrNext ?? {});
    const report = this.#report;
    const guard =
      <A extends unknown[]>(fn: ((...args: A) => void) | undefined) =>
      (...args: A): void => {
        try {
          fn?.apply(observer, args);
        } catch (error) {
          report(error);
        }
      };
    return super.subscribe({
      next: guard(observer.next),
      // An error nobody handles is reported, not rethrown.
      error: observer.error ? guard(observer.error) : (error: unknown) => report(error),
      complete: guard(observer.complete),
    });
  }
}

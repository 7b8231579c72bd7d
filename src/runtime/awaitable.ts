/** A value, or a promise of it: an embedded store answers at once, a network store later. */
export type Awaitable<T> = T | Promise<T>;

export function isPromise<T>(value: Awaitable<T>): value is Promise<T> {
  return typeof (value as Promise<T> | null)?.then === 'function';
}

/** `fn(value)`: at once for a plain value, after it resolves for a promise (a synchronous store takes no detour). */
export function when<T, R>(value: Awaitable<T>, fn: (value: T) => Awaitable<R>): Awaitable<R> {
  return isPromise(value) ? value.then(fn) : fn(value);
}

/** Calls a store: a throw or a rejection becomes what `onError` makes of it, never an exception. */
export function attempt<T>(fn: () => Awaitable<T>, onError: (error: unknown) => T): Awaitable<T> {
  let value: Awaitable<T>;
  try {
    value = fn();
  } catch (error) {
    return onError(error);
  }
  return isPromise(value) ? value.catch(onError) : value;
}

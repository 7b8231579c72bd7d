import { Observable, type Observer } from 'rxjs';
import type { Runtime } from '../../src/index.ts';
import type { SessionEvent } from '../../src/runtime/types.ts';

/**
 * A runtime whose answers take a round trip, as one on a network store will: every event
 * and every settled promise is delivered in a later macrotask, in the order the wrapped
 * runtime produced them — so a step's events reach subscribers before its receipt resolves,
 * and a later step's events may arrive before an earlier receipt's callbacks run. Sessions
 * are still claimed at the call (C1).
 *
 * `gate`, when given, holds `status` and `open` until it settles (it may reject, as a failing
 * store does). `calls` records the calls in order and `called(name)` resolves at the first
 * call of that name; `subscriptions()` counts live `eventsOf` subscriptions, so a test can
 * see one leak.
 */
export function asyncRuntime(inner: Runtime, { gate }: { gate?: Promise<void> } = {}) {
  const queue: (() => void)[] = [];
  let scheduled = false;
  const later = (deliver: () => void) => {
    queue.push(deliver);
    if (scheduled) return;
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      for (const next of queue.splice(0)) next();
    });
  };
  const lagged = <T>(promise: Promise<T>): Promise<T> =>
    new Promise<T>((resolve, reject) =>
      promise.then(
        (value) => later(() => resolve(value)),
        (error: unknown) => later(() => reject(error)),
      ),
    );
  const gated = <T>(call: () => Promise<T>): Promise<T> => (gate ? gate.then(() => lagged(call())) : lagged(call()));
  const calls: string[] = [];
  const waiters: { name: string; resolve: () => void }[] = [];
  const record = (call: string) => {
    calls.push(call);
    for (const waiter of waiters.filter((w) => call.split(' ')[0] === w.name)) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
  };
  const called = (name: string) =>
    calls.some((call) => call.split(' ')[0] === name) ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ name, resolve }));
  let subscriptions = 0;
  const relay = (source: Observable<SessionEvent>, counted: boolean) =>
    new Observable<SessionEvent>((subscriber) => {
      if (counted) subscriptions++;
      const observer: Observer<SessionEvent> = {
        next: (event) => later(() => subscriber.next(event)),
        error: (error: unknown) => later(() => subscriber.error(error)),
        complete: () => later(() => subscriber.complete()),
      };
      const subscription = source.subscribe(observer);
      return () => {
        if (counted) subscriptions--;
        subscription.unsubscribe();
      };
    });

  const runtime: Runtime = {
    send: (sessionId, input, options) => {
      record(`send ${input.content}`);
      return lagged(inner.send(sessionId, input, options));
    },
    respond: (sessionId, answer) => {
      record(`respond ${answer.questionId}`);
      return lagged(inner.respond(sessionId, answer));
    },
    schedule: (sessionId, spec) => lagged(inner.schedule(sessionId, spec)),
    cancelSchedule: (sessionId, id) => lagged(inner.cancelSchedule(sessionId, id)),
    schedules: (sessionId) => lagged(inner.schedules(sessionId)),
    decide: (sessionId, decision) => {
      record(`decide ${decision.id}`);
      return lagged(inner.decide(sessionId, decision));
    },
    control: (sessionId, action) => {
      record(`control ${action}`);
      return lagged(inner.control(sessionId, action));
    },
    open: (sessionId, options) => {
      record('open');
      return gated(() => inner.open(sessionId, options));
    },
    status: (sessionId) => {
      record('status');
      return gated(() => inner.status(sessionId));
    },
    eventsAfter: (sessionId, seq) => {
      record('eventsAfter');
      return lagged(inner.eventsAfter(sessionId, seq));
    },
    eventsOf: (sessionId) => relay(inner.eventsOf(sessionId), true),
    events$: relay(inner.events$, false),
    snapshot: (sessionId) => inner.snapshot(sessionId),
    sessionIds: () => inner.sessionIds(),
    listSessions: (limit) => lagged(inner.listSessions(limit)),
    countSessions: (prefix) => lagged(inner.countSessions(prefix)),
    machineOf: (kind) => inner.machineOf(kind),
    directory: inner.directory,
    shutdown: (options) => inner.shutdown(options),
    health: () => inner.health(),
  };
  return { runtime, calls, called, subscriptions: () => subscriptions };
}

/** A promise the test settles by hand. */
export function deferred<T = void>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

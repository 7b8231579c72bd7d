import { createActor, type AnyActor, type EventObject } from 'xstate';
import type { MachineOutput, MachineReceipt } from '../../machines/events.ts';
import type { Clock } from './clock.ts';
import type { InspectionObserver } from './options.ts';
import type { Dispatcher } from './dispatcher.ts';
import type { KindDriver, SessionKind } from './kind.ts';
import type { SessionEvent, SessionStatus } from './types.ts';
import { RecentIds } from './recent-ids.ts';

export interface HostDeps {
  /** The dispatcher's wrapped clock: XState's timers run through it. */
  readonly clock: Clock;
  readonly now: () => number;
  readonly dispatcher: Dispatcher;
  readonly idempotencyWindow: number;
  readonly inspect?: InspectionObserver | undefined;
  publish(event: SessionEvent): void;
  /** The session reached a final state (`deleted`), or its actor failed; the runtime forgets it. */
  ended(host: SessionHost, error?: unknown): void;
}

/** The effects every kind shares; anything else goes to the kind's driver. */
type CommonEffect =
  | { type: 'output'; event: MachineOutput }
  | { type: 'receipt'; receipt: MachineReceipt }
  | { type: 'drained' };

/**
 * Hosts one session actor of any kind: numbers its events (C8), captures its receipts,
 * remembers its recent input ids (C10), and hands other effects to the kind's driver.
 */
export class SessionHost {
  readonly id: string;
  readonly kindName: string;
  readonly kind: SessionKind;
  readonly recent: RecentIds;
  readonly #actor: AnyActor;
  readonly #deps: HostDeps;
  readonly #driver: KindDriver | undefined;
  #seq = 0;
  #receipt: MachineReceipt | undefined;
  #stopped = false;
  #drained: (() => void) | undefined;

  constructor(id: string, kindName: string, kind: SessionKind, deps: HostDeps) {
    this.id = id;
    this.kindName = kindName;
    this.kind = kind;
    this.#deps = deps;
    this.recent = new RecentIds(deps.idempotencyWindow);
    const input = kind.input(id);
    this.#actor = createActor(kind.machine, { input, clock: deps.clock, ...(deps.inspect && { inspect: deps.inspect }) });
    this.#driver = kind.driver?.({
      sessionId: id,
      input,
      dispatch: (event) => this.#dispatch(event),
      defer: (task) => deps.dispatcher.defer(task),
      now: deps.now,
    });
    this.#actor.on('*', (effect: EventObject) => this.#record(effect));
    // Every root actor is observed: an unobserved actor error would kill the process.
    this.#actor.subscribe({
      complete: () => deps.dispatcher.defer(() => this.#end()),
      error: (error: unknown) => deps.dispatcher.defer(() => this.#end(error)),
    });
    deps.dispatcher.run(() => {
      this.#actor.start();
      this.#actor.send({ type: 'activate' });
    });
  }

  /** Sends one event and returns the receipt the machine decided, if it decided one. */
  send(event: EventObject): MachineReceipt | undefined {
    if (this.#stopped) return undefined;
    this.#receipt = undefined;
    this.#dispatch(event);
    return this.#receipt;
  }

  status(): SessionStatus {
    const snapshot = this.#actor.getSnapshot();
    const summary = this.kind.status?.(snapshot) ?? { state: stateName(snapshot.value), backlog: 0, turns: 0 };
    return { sessionId: this.id, kind: this.kindName, ...summary, seq: this.#seq } as SessionStatus;
  }

  /** The actor's current snapshot, read-only: context, state value, status. */
  snapshot(): unknown {
    return this.#actor.getSnapshot();
  }

  /** Starts draining (C14); resolves once nothing runs. */
  drain(): Promise<void> {
    return new Promise((resolve) => {
      this.#drained = resolve;
      this.#dispatch({ type: 'shutdown' });
    });
  }

  /** Drain time is up: abort what still runs. A kind that never reports `drained` is released here. */
  abortDrain(): void {
    this.#dispatch({ type: 'shutdown.abort' });
    this.#drained?.();
  }

  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#actor.stop();
    this.#driver?.stop();
  }

  #dispatch(event: EventObject): void {
    if (this.#stopped) return;
    this.#deps.dispatcher.run(() => this.#actor.send(event));
  }

  /**
   * Runs while the actor processes: bookkeeping only, never user code. Everything that
   * calls out (agents, handlers, subscribers, abort listeners) is deferred.
   */
  #record(e: EventObject): void {
    const effect = e as CommonEffect;
    switch (effect.type) {
      case 'receipt':
        this.#receipt = effect.receipt;
        return;
      case 'output': {
        const event = this.#number(effect.event);
        this.#deps.dispatcher.defer(() => this.#deps.publish(event));
        return;
      }
      case 'drained':
        this.#deps.dispatcher.defer(() => this.#drained?.());
        return;
      default:
        this.#driver?.effect(e);
    }
  }

  #number(output: MachineOutput): SessionEvent {
    const seq = ++this.#seq;
    if (output.type !== 'done') return { sessionId: this.id, seq, ...output } as SessionEvent;
    // A `done` closes the running turn, if any: the driver measured it.
    const duration = this.#driver?.closeTurn?.() ?? 0;
    return { sessionId: this.id, seq, type: 'done', data: { ...output.data, stats: { duration_ms: duration } } };
  }

  #end(error?: unknown): void {
    this.stop();
    this.#drained?.();
    this.#deps.ended(this, error);
  }
}

function stateName(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

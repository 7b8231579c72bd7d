import { createActor, type Actor } from 'xstate';
import {
  sessionMachine,
  type SessionEffect,
  type SessionMachineEvent,
  type SessionSettings,
  type SessionCommand,
  type RunningTurn,
} from '../../machines/session.ts';
import type { MachineOutput, MachineReceipt } from '../../machines/events.ts';
import type { Agent, Turn } from './turn.ts';
import type { CommandSpec } from './commands.ts';
import type { Clock } from './clock.ts';
import type { Dispatcher } from './dispatcher.ts';
import type { SessionEvent, SessionStatus } from './types.ts';
import { RecentIds } from './recent-ids.ts';
import { SteerChannel } from './steer-channel.ts';

export interface HostDeps {
  readonly agent: Agent;
  readonly commands: ReadonlyMap<string, CommandSpec>;
  /** The dispatcher's wrapped clock: XState's timers run through it. */
  readonly clock: Clock;
  readonly now: () => number;
  readonly dispatcher: Dispatcher;
  readonly idempotencyWindow: number;
  publish(event: SessionEvent): void;
  /** The session reached `deleted`, or its actor failed; the runtime forgets it. */
  ended(host: SessionHost, error?: unknown): void;
}

/** The host side of one running turn. */
interface TurnRecord {
  readonly id: number;
  readonly controller: AbortController;
  readonly startedAt: number;
  readonly steer: SteerChannel | undefined;
  streamed: boolean;
  ended: boolean;
}

/**
 * Hosts one session actor: runs the effects its machine emits (the agent, command
 * handlers), numbers its events (C8), remembers its recent input ids (C10).
 */
export class SessionHost {
  readonly id: string;
  readonly recent: RecentIds;
  readonly #actor: Actor<typeof sessionMachine>;
  readonly #deps: HostDeps;
  readonly #steering: boolean;
  #seq = 0;
  #receipt: MachineReceipt | undefined;
  #turn: TurnRecord | undefined;
  #command: AbortController | undefined;
  #stopped = false;
  #drained: (() => void) | undefined;

  constructor(id: string, settings: SessionSettings, deps: HostDeps) {
    this.id = id;
    this.#deps = deps;
    this.#steering = settings.busyPolicy === 'steer';
    this.recent = new RecentIds(deps.idempotencyWindow);
    this.#actor = createActor(sessionMachine, { input: { sessionId: id, settings }, clock: deps.clock });
    this.#actor.on('*', (effect) => this.#record(effect));
    // Every root actor is observed: an unobserved actor error would kill the process.
    this.#actor.subscribe({
      complete: () => this.#deps.dispatcher.defer(() => this.#end()),
      error: (error) => this.#deps.dispatcher.defer(() => this.#end(error)),
    });
    deps.dispatcher.run(() => {
      this.#actor.start();
      this.#actor.send({ type: 'activate' });
    });
  }

  /** Sends one event and returns the receipt the machine decided, if it decided one. */
  send(event: SessionMachineEvent): MachineReceipt | undefined {
    if (this.#stopped) return undefined;
    this.#receipt = undefined;
    this.#dispatch(event);
    return this.#receipt;
  }

  status(): SessionStatus {
    const snapshot = this.#actor.getSnapshot();
    const c = snapshot.context;
    const state = snapshot.matches('created')
      ? 'created'
      : snapshot.matches('terminated')
        ? 'terminated'
        : snapshot.matches('deleted')
          ? 'deleted'
          : snapshot.matches({ running: { turn: 'busy' } })
            ? 'busy'
            : snapshot.matches({ running: { turn: 'collecting' } })
              ? 'collecting'
              : 'idle';
    return { sessionId: this.id, state, backlog: c.batch.length + c.queue.length, turns: c.turns, seq: this.#seq };
  }

  /** Starts draining (C14); resolves once nothing runs. */
  drain(): Promise<void> {
    return new Promise((resolve) => {
      this.#drained = resolve;
      this.#dispatch({ type: 'shutdown' });
    });
  }

  /** Drain time is up: abort what still runs. */
  abortDrain(): void {
    this.#dispatch({ type: 'shutdown.abort' });
  }

  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#actor.stop();
    this.#turn?.controller.abort(new Error('session stopped'));
    this.#turn?.steer?.close();
    this.#command?.abort(new Error('session stopped'));
  }

  #dispatch(event: SessionMachineEvent): void {
    if (this.#stopped) return;
    this.#deps.dispatcher.run(() => this.#actor.send(event));
  }

  /**
   * Runs while the actor processes: bookkeeping only, never user code. Everything that
   * calls out (agents, handlers, subscribers, abort listeners) is deferred.
   */
  #record(effect: SessionEffect): void {
    const defer = this.#deps.dispatcher.defer.bind(this.#deps.dispatcher);
    switch (effect.type) {
      case 'receipt':
        this.#receipt = effect.receipt;
        return;
      case 'output': {
        const event = this.#number(effect.event);
        defer(() => this.#deps.publish(event));
        return;
      }
      case 'turn.start': {
        const record = this.#startRecord(effect.turn);
        defer(() => this.#runAgent(record, effect.turn));
        return;
      }
      case 'turn.abort': {
        const record = this.#turn;
        if (record?.id === effect.turnId) defer(() => record.controller.abort(new Error('turn aborted')));
        return;
      }
      case 'turn.steer': {
        const record = this.#turn;
        if (record?.id === effect.turnId) defer(() => record.steer?.push(effect.input));
        return;
      }
      case 'command.run':
        defer(() => this.#runCommand(effect.command));
        return;
      case 'drained':
        defer(() => this.#drained?.());
        return;
    }
  }

  #number(output: MachineOutput): SessionEvent {
    const seq = ++this.#seq;
    if (output.type !== 'done') return { sessionId: this.id, seq, ...output } as SessionEvent;
    // A `done` closes the running turn, if any: measure it and let go of it.
    const record = this.#turn;
    const duration = record ? this.#deps.now() - record.startedAt : 0;
    if (record) {
      record.ended = true;
      this.#turn = undefined;
      if (record.steer) this.#deps.dispatcher.defer(() => record.steer?.close());
    }
    return { sessionId: this.id, seq, type: 'done', data: { ...output.data, stats: { duration_ms: duration } } };
  }

  #startRecord(turn: RunningTurn): TurnRecord {
    const turnId = turn.id;
    const steer = this.#steering
      ? new SteerChannel(
          () => this.#dispatch({ type: 'agent.steering', turnId }),
          (input) => this.#dispatch({ type: 'agent.pulled', turnId, inputId: input.id }),
        )
      : undefined;
    const record: TurnRecord = {
      id: turnId,
      controller: new AbortController(),
      startedAt: this.#deps.now(),
      steer,
      streamed: false,
      ended: false,
    };
    this.#turn = record;
    return record;
  }

  #runAgent(record: TurnRecord, running: RunningTurn): void {
    if (record.ended) return; // stopped before it could start
    const turnId = record.id;
    const turn: Turn = {
      sessionId: this.id,
      inputs: running.inputs,
      signal: record.controller.signal,
      emit: (delta) => {
        if (record.ended) return;
        record.streamed = true;
        this.#dispatch({ type: 'agent.delta', turnId, text: String(delta) });
      },
      ...(record.steer && { steer: record.steer }),
    };
    const succeed = (result: unknown) => {
      const text = !record.streamed && typeof result === 'string' && result !== '' ? { text: result } : {};
      this.#dispatch({ type: 'agent.done', turnId, ...text });
    };
    const fail = (error: unknown) => this.#dispatch({ type: 'agent.error', turnId, message: describe(error) });
    try {
      const result = this.#deps.agent(turn);
      if (isPromiseLike(result)) result.then(succeed, fail);
      else succeed(result);
    } catch (error) {
      fail(error);
    }
  }

  #runCommand(command: SessionCommand): void {
    const commandId = command.id;
    const spec = this.#deps.commands.get(command.name);
    const done = (result: unknown) =>
      this.#dispatch({ type: 'command.done', commandId, ...(typeof result === 'string' && { text: result }) });
    const fail = (error: unknown) => this.#dispatch({ type: 'command.error', commandId, message: describe(error) });
    if (!spec) return fail(new Error(`unknown command "${command.name}"`));
    const controller = new AbortController();
    this.#command = controller;
    try {
      const result = spec.handler({
        sessionId: this.id,
        name: command.name,
        args: command.args,
        inputId: command.id,
        signal: controller.signal,
      });
      if (isPromiseLike(result)) result.then(done, fail);
      else done(result);
    } catch (error) {
      fail(error);
    }
  }

  #end(error?: unknown): void {
    this.stop();
    this.#drained?.();
    this.#deps.ended(this, error);
  }
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function';
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

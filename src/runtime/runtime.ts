import { Observable, Subject, type Subscriber } from 'rxjs';
import type { SessionSettings } from '../../machines/session.ts';
import {
  BatonError,
  InvalidMessageError,
  RuntimeShuttingDownError,
  SessionNotFoundError,
  errorFor,
} from '../errors.ts';
import { parseRuntimeOptions, parseSessionOptions, runtimeDefaults, type RuntimeOptions } from './options.ts';
import { commandRegistry, parseCommand, BUILTIN_COMMANDS } from './commands.ts';
import { systemClock } from './clock.ts';
import { Dispatcher } from './dispatcher.ts';
import { SessionHost, type HostDeps } from './session-host.ts';
import type { InputMessage, Receipt, SessionEvent, SessionStatus } from './types.ts';

/** `stop` = `/stop` (C6); `terminate` ends the session; `delete` removes it for good. */
export type ControlAction = 'stop' | 'terminate' | 'delete';

export interface ShutdownOptions {
  /**
   * How long running turns may go on before they are aborted.
   * @default 5000
   */
  drainMs?: number;
}

export interface Runtime {
  /**
   * Hands an input to its session, creating the session if needed, and answers at once
   * (C1: the session is claimed before `send` returns). Problems with the input or the
   * session come back as `{ status: 'rejected', code, error }`, never thrown; only a
   * `settingsFor` that returns invalid settings throws (a configuration bug).
   */
  send(sessionId: string, input: InputMessage): Receipt;
  /** Stops, terminates or deletes a session. Throws {@link SessionNotFoundError}. */
  control(sessionId: string, action: ControlAction): void;
  /** Creates the session if it does not exist (no input needed); returns its status. */
  open(sessionId: string): SessionStatus;
  /** A session's status, or `undefined` if there is no such session. */
  status(sessionId: string): SessionStatus | undefined;
  /** The ids of the sessions that are live in this runtime. */
  sessionIds(): string[];
  /** Every event of every session. Completes after `shutdown`. */
  readonly events$: Observable<SessionEvent>;
  /** The events of one session from now on. Completes when it is deleted or at shutdown. */
  eventsOf(sessionId: string): Observable<SessionEvent>;
  /** C14: rejects new input, drains running turns for `drainMs`, aborts the rest, stops every actor. */
  shutdown(options?: ShutdownOptions): Promise<void>;
}

/**
 * Creates a runtime: one XState actor per session key.
 *
 * @example
 * const runtime = createRuntime({ agent: async (turn) => `echo: ${turn.inputs[0]?.content}` });
 * runtime.eventsOf('s1').subscribe((e) => console.log(e.seq, e.type, e.data));
 * runtime.send('s1', { id: 'm1', content: 'hello' }); // { status: 'accepted', mode: 'primary' }
 */
export function createRuntime(options: RuntimeOptions): Runtime {
  const opts = { ...runtimeDefaults, ...parseRuntimeOptions(options) };
  const commands = commandRegistry(options.commands);
  const commandHelp = [...commands].map(([name, spec]) => ({ name, description: spec.description }));
  const clock = opts.clock ?? systemClock;
  const sessions = new Map<string, SessionHost>();
  const listeners = new Map<string, Set<Subscriber<SessionEvent>>>();
  const events$ = new Subject<SessionEvent>();
  const dispatcher = new Dispatcher((error) => {
    // Only a bug in Baton itself gets here; say so loudly, never crash the host process.
    console.error('baton: internal error in a deferred task', error);
  });
  let shutdown: Promise<void> | undefined;

  const deps: HostDeps = {
    agent: opts.agent,
    commands,
    clock: dispatcher.wrap(clock),
    now: clock.now ? () => clock.now!() : Date.now,
    dispatcher,
    idempotencyWindow: opts.idempotencyWindow,
    publish(event) {
      events$.next(event);
      const subscribers = listeners.get(event.sessionId);
      if (subscribers) for (const subscriber of subscribers) subscriber.next(event);
    },
    ended(host, error) {
      if (sessions.get(host.id) === host) sessions.delete(host.id);
      if (error !== undefined) {
        const message = `session actor failed: ${error instanceof Error ? error.message : String(error)}`;
        deps.publish({ sessionId: host.id, seq: host.status().seq + 1, type: 'error', data: { code: 'INTERNAL_ERROR', message } });
      }
      for (const subscriber of listeners.get(host.id) ?? []) subscriber.complete();
      listeners.delete(host.id);
    },
  };

  function settingsFor(sessionId: string): SessionSettings {
    const own = opts.settingsFor ? parseSessionOptions('settingsFor', opts.settingsFor(sessionId)) : {};
    const merged = { ...opts, ...own };
    return {
      debounceMs: merged.debounceMs,
      maxWaitMs: merged.maxWaitMs,
      busyPolicy: merged.busyPolicy,
      backlogCap: merged.backlogCap,
      turnTimeoutMs: merged.turnTimeoutMs,
      commandLane: merged.commandLane,
      commandHelp,
    };
  }

  function hostOf(sessionId: string): SessionHost {
    let host = sessions.get(sessionId);
    if (!host) {
      // Claimed synchronously (C1): the actor exists before anything else can run.
      host = new SessionHost(sessionId, settingsFor(sessionId), deps);
      if (host.status().state !== 'deleted') sessions.set(sessionId, host);
    }
    return host;
  }

  function rejected(error: BatonError): Receipt {
    return { status: 'rejected', code: error.code, error };
  }

  function send(sessionId: string, input: InputMessage): Receipt {
    if (shutdown) return rejected(new RuntimeShuttingDownError());
    const problem = validate(sessionId, input);
    if (problem) return rejected(new InvalidMessageError(problem));
    const host = hostOf(sessionId);
    const seen = host.recent.check(input.id, input.content);
    if (seen === true) return { status: 'duplicate' };
    if (seen === false) {
      return rejected(new InvalidMessageError(`input id "${input.id}" was already used with different content`));
    }
    const command = parseCommand(input.id, input.content, opts.commandPrefix);
    if (command && !commands.has(command.name) && !(BUILTIN_COMMANDS as readonly string[]).includes(command.name)) {
      return rejected(new InvalidMessageError(`unknown command "${opts.commandPrefix}${command.name}" (try ${opts.commandPrefix}help)`));
    }
    const { id, content, metadata } = input;
    const decided = host.send(
      command ? { type: 'command', command } : { type: 'input', input: metadata ? { id, content, metadata } : { id, content } },
    );
    if (!decided) return rejected(new BatonError('INTERNAL_ERROR', `session "${sessionId}" did not answer`));
    if (decided.status === 'rejected') {
      return rejected(errorFor(decided.code ?? 'INTERNAL_ERROR', sessionId, decided.message));
    }
    host.recent.remember(input.id, input.content);
    return decided.mode ? { status: 'accepted', mode: decided.mode } : { status: 'accepted' };
  }

  function control(sessionId: string, action: ControlAction): void {
    const host = sessions.get(sessionId);
    if (!host) throw new SessionNotFoundError(sessionId);
    host.send({ type: action });
  }

  function eventsOf(sessionId: string): Observable<SessionEvent> {
    return new Observable<SessionEvent>((subscriber) => {
      if (shutdown && sessions.size === 0) return subscriber.complete();
      let set = listeners.get(sessionId);
      if (!set) listeners.set(sessionId, (set = new Set()));
      set.add(subscriber);
      return () => {
        set.delete(subscriber);
        if (set.size === 0 && listeners.get(sessionId) === set) listeners.delete(sessionId);
      };
    });
  }

  async function drainAll(drainMs: number): Promise<void> {
    const hosts = [...sessions.values()];
    const drained = Promise.all(hosts.map((host) => host.drain()));
    let timer: unknown;
    const expired = new Promise<void>((resolve) => {
      timer = clock.setTimeout(() => resolve(), drainMs);
    });
    await Promise.race([drained, expired]);
    clock.clearTimeout(timer);
    // Turns still running after drainMs are aborted; then every actor is at rest.
    for (const host of hosts) host.abortDrain();
    await drained;
    for (const host of hosts) host.stop();
    sessions.clear();
    for (const set of listeners.values()) for (const subscriber of set) subscriber.complete();
    listeners.clear();
    events$.complete();
  }

  return {
    send,
    control,
    open: (sessionId) => {
      if (shutdown) throw new RuntimeShuttingDownError();
      const problem = validate(sessionId, { id: 'open', content: '' });
      if (problem) throw new InvalidMessageError(problem);
      return hostOf(sessionId).status();
    },
    status: (sessionId) => sessions.get(sessionId)?.status(),
    sessionIds: () => [...sessions.keys()],
    events$: events$.asObservable(),
    eventsOf,
    shutdown({ drainMs = 5000 }: ShutdownOptions = {}) {
      if (!Number.isFinite(drainMs) || drainMs < 0) {
        return Promise.reject(new TypeError(`shutdown: option "drainMs" must be a non-negative number, got ${drainMs}`));
      }
      shutdown ??= drainAll(drainMs);
      return shutdown;
    },
  };
}

function validate(sessionId: unknown, input: unknown): string | undefined {
  if (typeof sessionId !== 'string' || sessionId === '') return 'sessionId must be a non-empty string';
  if (typeof input !== 'object' || input === null) return 'input must be an object { id, content }';
  const { id, content, metadata } = input as Record<string, unknown>;
  if (typeof id !== 'string' || id === '') return 'input.id must be a non-empty string';
  if (typeof content !== 'string') return 'input.content must be a string';
  if (metadata !== undefined && (typeof metadata !== 'object' || metadata === null)) return 'input.metadata must be an object';
  return undefined;
}

import type { AnyStateMachine, EventObject } from 'xstate';
import { Observable, Subject, type Subscriber } from 'rxjs';
import { IsolatedObservable } from './isolated-observable.ts';
import type { SessionSettings } from '../../machines/session.ts';
import {
  BatonError,
  InvalidMessageError,
  RuntimeShuttingDownError,
  SessionNotFoundError,
  StoreUnavailableError,
  errorFor,
} from '../errors.ts';
import { parseRuntimeOptions, parseSessionOptions, runtimeDefaults, type RuntimeOptions } from './options.ts';
import { commandRegistry, parseCommand, BUILTIN_COMMANDS } from './commands.ts';
import { systemClock } from './clock.ts';
import { Dispatcher } from './dispatcher.ts';
import { SessionHost, scheduleSummary, waitsForUser, type HostDeps } from './session-host.ts';
import { SessionRegistry } from './registry.ts';
import { isClusterStore, isOwnedElsewhere, type Mail } from './cluster-store.ts';
import { ClusterLink } from './cluster-link.ts';
import { attempt, when, type Awaitable } from './awaitable.ts';
import { GroupCommit } from './group-commit.ts';
import { StoreSupervisor } from './store-supervisor.ts';
import { agentKind } from './agent-kind.ts';
import { Scheduling } from './scheduling.ts';
import { clientSchedules, type ScheduleSpec } from './schedule.ts';
import { toolsByName } from './tool.ts';
import { onboardingKind } from './onboarding-kind.ts';
import type { SessionKind } from './kind.ts';
import { MemoryStore, StaleEpochError, type InboxEntry, type ScheduleRecord, type Store } from './store.ts';
import { createCounter, createDirectory, type Directory } from './directory.ts';
import type { AnswerMessage, InputMessage, PermissionDecision, Receipt, SessionEvent, SessionStatus } from './types.ts';
import { answerText, plainMetadata, validate, validateDecision, type InputLimits } from './validate-input.ts';

/**
 * `stop` = `/stop` (C6); `terminate` ends the session; `delete` removes it for good;
 * `start` begins a kind that waits to be started (onboarding asks its first question).
 */
export type ControlAction = 'stop' | 'terminate' | 'delete' | 'start';

/** Which kind a session is, chosen when it is created. */
export interface KindOption {
  /** @default 'agent' */
  kind?: string;
}

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
   * session come back as `{ status: 'rejected', code, error }`, never thrown — a session
   * that cannot be started (a `settingsFor` that returns invalid settings, a kind that
   * throws) too: `INTERNAL_ERROR`, and the error goes to `onError`.
   */
  send(sessionId: string, input: InputMessage, options?: KindOption): Promise<Receipt>;
  /**
   * An onboarding answer to question `questionId` (AEP `question_response`). Rejected with
   * `SESSION_NOT_FOUND` for an unknown session, `INVALID_MESSAGE` if its kind asks no questions.
   */
  respond(sessionId: string, answer: AnswerMessage): Promise<Receipt>;
  /**
   * The user's decision on a tool call waiting for approval (AEP `permission_response`,
   * C19). A passivated session is activated for it. Rejected with `INVALID_MESSAGE` when no
   * request by that id waits (unknown, already decided, expired, or its turn ended), and
   * `SESSION_NOT_FOUND` for an unknown session. Accepted means stored: the decision is
   * journaled with the step that took it, and is never asked again.
   */
  decide(sessionId: string, decision: PermissionDecision): Promise<Receipt>;
  /**
   * Sets (or replaces, by `id`) a schedule of a session (C20): exactly one of `at` (a time),
   * `afterMs`, `every` (ms, recurring) or `cron` (recurring, UTC), and a JSON `payload`. It is
   * stored with the session and fires as an input `{ id: 'timer:<id>:<due>', kind: 'timer',
   * schedule: { id, dueAt, payload } }` that follows the busy policy — once per due time,
   * after passivation and restarts too. Resolves with the stored schedule once committed.
   * Throws `InvalidMessageError` for a bad spec, `SessionNotFoundError`.
   */
  schedule(sessionId: string, spec: ScheduleSpec): Promise<ScheduleRecord>;
  /** Cancels a schedule; `false` if there was none by that id. */
  cancelSchedule(sessionId: string, id: string): Promise<boolean>;
  /** A session's schedules, earliest first (a passivated session's too). */
  schedules(sessionId: string): Promise<ScheduleRecord[]>;
  /** Stops, terminates or deletes a session. Throws {@link SessionNotFoundError}. */
  control(sessionId: string, action: ControlAction): Promise<void>;
  /**
   * Creates the session if it does not exist (no input needed); returns its status. Throws
   * `InvalidMessageError` if it exists with another kind, or the kind is unknown.
   */
  open(sessionId: string, options?: KindOption): Promise<SessionStatus>;
  /** The session actor's current XState snapshot (read-only), e.g. the onboarding profile in its context. */
  snapshot(sessionId: string): unknown;
  /** A session's status, or `undefined` if there is no such session. */
  status(sessionId: string): Promise<SessionStatus | undefined>;
  /** The ids of the sessions that are live (have an actor) in this runtime. */
  sessionIds(): string[];
  /**
   * The sessions live here and, on a cluster, those the store holds (the most recently
   * written first, up to `limit`): for tools that list them, like the inspector.
   */
  listSessions(limit?: number): Promise<string[]>;
  /** How many sessions have an id starting with `prefix` (stored ones, if the store can count them; else live ones), for quotas. */
  countSessions(prefix: string): Promise<number>;
  /** The machine of a session kind (`agent`, `onboarding`, or one of yours), for tools that draw it. */
  machineOf(kind: string): AnyStateMachine | undefined;
  /** Totals, last errors and attached clients, as an `@xstate/store` store (read it, subscribe to it). */
  readonly directory: Directory;
  /** Events of a session with a seq above `seq` that the store still holds, for resume. */
  eventsAfter(sessionId: string, seq: number): Promise<SessionEvent[]>;
  /** Every event of every session. Completes after `shutdown`. */
  readonly events$: Observable<SessionEvent>;
  /** The events of one session from now on. Completes when it is deleted or at shutdown. */
  eventsOf(sessionId: string): Observable<SessionEvent>;
  /** C14: rejects new input, drains running turns for `drainMs`, aborts the rest, stops every actor. */
  shutdown(options?: ShutdownOptions): Promise<void>;
  /** Whether the store works (C16) and this process still owns it (C17): what `/healthz` reports. */
  health(): RuntimeHealth;
}

/** The runtime's health, for `/healthz`. */
export interface RuntimeHealth {
  /** `false` while commits fail (sessions are out of service) or after this process was fenced. */
  readonly ok: boolean;
  /** Sessions stopped by a failed commit, waiting to be re-activated. */
  readonly failedSessions: number;
  /** The last store failure, while it lasts. */
  readonly storeError?: string;
  /** A newer process owns the store (C17): this one must stop. */
  readonly fenced: boolean;
  /** Commits refused because another node had claimed their session (a cluster, C17). */
  readonly fencedCommits: number;
  /** This node, its lease and how many sessions it owns (a cluster store only). */
  readonly node?: NodeHealth;
}

/** A cluster node's view of itself, for `/healthz` and `/metrics`. */
export interface NodeHealth {
  readonly id: string;
  readonly incarnation: number;
  /** `false` while this node's own clock says its lease may have run out (it starts no agent call). */
  readonly leaseValid: boolean;
  readonly ownedSessions: number;
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
  const limits: InputLimits = {
    maxContentBytes: opts.maxContentBytes,
    maxInputIdLength: opts.maxInputIdLength,
    maxSessionIdLength: opts.maxSessionIdLength,
    maxMetadataDepth: opts.maxMetadataDepth,
    maxMetadataBytes: opts.maxMetadataBytes,
  };
  const commands = commandRegistry(options.commands);
  const commandHelp = [...commands].map(([name, spec]) => ({ name, description: spec.description }));
  const clock = opts.clock ?? systemClock;
  const store: Store = opts.store ?? new MemoryStore();
  const directory = createDirectory();
  const count = createCounter(directory);
  const listeners = new Map<string, Set<Subscriber<SessionEvent>>>();
  /** Per session with subscribers: the last seq they were given (a cluster delivers events run elsewhere too, once). */
  const seen = new Map<string, number>();
  const events$ = new Subject<SessionEvent>();
  // User code that throws is reported, never rethrown: it must not take the process down (C7).
  const report = (error: unknown): void => {
    try {
      (opts.onError ?? ((e: unknown) => console.error('baton:', e)))(error);
    } catch {
      // An error handler that throws has nowhere left to report to.
    }
  };
  const dispatcher = new Dispatcher(report);
  let shutdown: Promise<void> | undefined;

  const deps: HostDeps = {
    commits: new GroupCommit(store, dispatcher, { selfFenced: () => isClusterStore(store) && store.selfFenced(), delayMs: opts.commitDelayMs }),
    clock: dispatcher.wrap(clock),
    now: clock.now ? () => clock.now!() : Date.now,
    dispatcher,
    idempotencyWindow: opts.idempotencyWindow,
    historyWindow: opts.historyWindow,
    inspect: opts.inspect,
    durable: store.durable,
    report,
    failed(host, error) {
      if (sessions.get(host.id) === host) sessions.delete(host.id);
      directory.trigger.sessionDeleted({ sessionId: host.id });
      // Its clients learn it at once: their stream ends with the typed error (a gateway
      // closes them with 1013, try again later; they resume from the last committed seq).
      const subscribers = listeners.get(host.id);
      listeners.delete(host.id);
      for (const subscriber of subscribers ?? []) subscriber.error(new StoreUnavailableError(host.id, error));
      supervisor.failed(host.id, error);
    },
    stored(host) {
      if (supervisor.failing > 0) supervisor.recovered(host.id);
      scheduling.stored(host);
    },
    publish(event) {
      if (event.type === 'done' && event.data.input_ids.length > 0) count.turn();
      else if (event.type === 'error') {
        directory.trigger.errorSeen({ sessionId: event.sessionId, error: { code: event.data.code, message: event.data.message, at: Date.now() } });
      }
      events$.next(event);
      const subscribers = listeners.get(event.sessionId);
      if (subscribers) {
        seen.set(event.sessionId, event.seq);
        for (const subscriber of subscribers) subscriber.next(event);
      }
    },
    ended(host) {
      if (sessions.get(host.id) === host) sessions.delete(host.id);
      directory.trigger.sessionDeleted({ sessionId: host.id });
      for (const subscriber of listeners.get(host.id) ?? []) subscriber.complete();
      listeners.delete(host.id);
    },
  };

  // Without `settingsFor` every session shares one frozen settings object (it is in every
  // session's context and snapshot, so one copy per session would cost memory for nothing).
  let shared: SessionSettings | undefined;
  function settingsFor(sessionId: string): SessionSettings {
    if (!opts.settingsFor) return (shared ??= Object.freeze(mergeSettings({})));
    return mergeSettings(parseSessionOptions('settingsFor', opts.settingsFor(sessionId)));
  }

  function mergeSettings(own: object): SessionSettings {
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

  const kinds = new Map<string, SessionKind>([
    ['agent', agentKind({ agent: opts.agent, commands, settingsFor, tools: toolsByName('createRuntime', opts.tools, opts.agent.tools), approvalTimeoutMs: opts.approvalTimeoutMs })],
    ['onboarding', onboardingKind(opts.onboarding)],
  ]);
  for (const [name, kind] of Object.entries(opts.kinds ?? {})) {
    if (kinds.has(name)) throw new TypeError(`createRuntime: kind "${name}" is built in and cannot be replaced`);
    kinds.set(name, kind);
  }

  const loadOptions = { recent: opts.idempotencyWindow, history: opts.historyWindow };
  const registry = new SessionRegistry({
    // A cluster node claims nothing before it has joined.
    load: (sessionId) => (cluster ? cluster.joined.then(() => store.load(sessionId, loadOptions)) : store.load(sessionId, loadOptions)),
    loadTimeoutMs: opts.loadTimeoutMs,
    clock,
    refusal: (sessionId) => (supervisor.fenced ? new StoreUnavailableError(sessionId, supervisor.fenced) : undefined),
    start(sessionId, kindName, loaded) {
      const name = loaded?.session.kind ?? kindName ?? 'agent';
      const kind = kinds.get(name);
      if (!kind) return new InvalidMessageError(`unknown session kind "${name}" (known: ${[...kinds.keys()].join(', ')})`);
      let host: SessionHost;
      try {
        host = new SessionHost(sessionId, name, kind, deps, loaded);
        // Registered before it starts: a subscriber that sends to it during the start finds it (C1).
        sessions.set(sessionId, host);
        host.start();
      } catch (error) {
        // A machine that throws while it starts (a user kind's bug): this session is not
        // had, and the caller is told so; nothing else is affected (C7).
        if (sessions.get(sessionId)?.id === sessionId) sessions.delete(sessionId);
        report(error);
        return new BatonError('INTERNAL_ERROR', `session "${sessionId}" could not be started: ${error instanceof Error ? error.message : String(error)}`);
      }
      armSweep();
      enforceCap(host);
      return host;
    },
  });
  const sessions = registry.live;

  /** Over `maxLiveSessions`: passivate the least recently active idle sessions, down to 90 % of it. */
  function enforceCap(keep: SessionHost): void {
    if (sessions.size - passivating.size <= opts.maxLiveSessions) return;
    const target = Math.max(1, Math.floor(opts.maxLiveSessions * 0.9));
    const idle = [...sessions.values()].filter((h) => h !== keep && !passivating.has(h) && h.quiescent()).sort((a, b) => a.lastActive - b.lastActive);
    for (const host of idle) {
      if (sessions.size - passivating.size <= target) break;
      passivate(host);
    }
  }

  /**
   * C11: the snapshot is committed with the session's other steps, and the actor stops only
   * if nothing happened meanwhile (an input that arrived before or during the commit keeps
   * it live).
   */
  const passivating = new Set<SessionHost>();
  /** Hosts that were hinted of mail while their release was being committed (a cluster). */
  const mailDuringRelease = new Set<SessionHost>();
  function passivate(host: SessionHost): void {
    if (passivating.has(host)) return;
    passivating.add(host);
    const done = host.checkpoint({ release: true }).then((stored) => {
      passivating.delete(host);
      // A failed store took the host out of service already (C16). A step with activity did
      // not give the session up (the host keeps it, and its claim): the next sweep tries again.
      const missed = mailDuringRelease.delete(host);
      if (!stored || sessions.get(host.id) !== host || !host.released || !host.quiescent() || !host.settled()) {
        // Kept here: mail that came during the release waits untaken.
        if (cluster && sessions.get(host.id) === host) cluster.wake(host.id);
        return;
      }
      host.stop();
      sessions.delete(host.id);
      // Given up with mail waiting that its sender left to this node: claimed again at once,
      // rather than left to the next sweep's orphans.
      if (missed && !shutdown) void registry.with(host.id, { create: false }, () => undefined);
    });
    // On a cluster the release gives the session up: an input, command or control for it waits
    // for the commit, then finds it live still or claims it anew (C17), never writes under a
    // claim the release ended.
    if (cluster) registry.holdWhile(host.id, done);
  }

  // C16, C17 and retention: the runtime's watch over its store.
  const supervisor = new StoreSupervisor(
    {
      store,
      clock,
      now: deps.now,
      report,
      isLive: (id) => sessions.has(id) || registry.activating(id),
      abandonAll: (error) => [...sessions.values()].forEach((host) => host.abandon(error)),
      rejoins: isClusterStore(store),
      reactivate: (id) => {
        if (shutdown) return false;
        // A checkpoint is the probe: re-activated from what was committed, and writable again.
        // Another node may have claimed it meanwhile (a cluster): it runs there, nothing is
        // left to recover here.
        return when(
          registry.with(id, { create: false }, (host) => host.checkpoint(), () => true),
          (stored) => stored === true || stored === undefined,
        );
      },
    },
    opts,
  );

  // A cluster (a store several nodes share): mail between nodes, events of sessions run
  // elsewhere for this node's clients, work whose node died, and the lease.
  const cluster = isClusterStore(store)
    ? new ClusterLink(
        {
          store,
          clock,
          report,
          live: (id) => sessions.get(id),
          watched: () => listeners.keys(),
          delivered: (id) => seen.get(id),
          begin(id, seq) {
            if (listeners.has(id) && !seen.has(id)) seen.set(id, seq);
          },
          deliver(id, events) {
            const subscribers = listeners.get(id);
            if (!subscribers) return;
            for (const event of events) {
              if (event.seq <= (seen.get(id) ?? 0)) continue;
              seen.set(id, event.seq);
              for (const subscriber of subscribers) subscriber.next(event);
            }
          },
          behind(id, seq, next) {
            const subscribers = listeners.get(id);
            listeners.delete(id);
            seen.delete(id);
            const why = `this node's stream of it fell behind what the store keeps (events ${seq + 1} to ${next - 1} are gone); resume from last_seq`;
            for (const subscriber of subscribers ?? []) subscriber.error(new StoreUnavailableError(id, why));
          },
          activate: (id) => {
            if (!shutdown) void registry.with(id, { create: false }, () => undefined);
          },
          take: takeMail,
          leaseLost(error) {
            report(error);
            for (const host of [...sessions.values()]) host.abandon(new StaleEpochError(error.message, undefined, host.id));
          },
        },
        { sweepMs: opts.clusterSweepMs },
      )
    : undefined;

  /**
   * Mail from another node for a session this node runs, taken in one step: inputs and
   * answers as the inbox already holds them, commands, and controls. Each outcome is the
   * session's own event; mail seen before (a hint read twice) is only marked taken.
   */
  function takeMail(host: SessionHost, mail: readonly Mail[]): void {
    // Its release is being committed: the mail stays untaken, for this node if it keeps the
    // session (the sweep's mailWaiting) or for whichever node claims it next (orphans).
    if (passivating.has(host)) return void mailDuringRelease.add(host);
    host.step(() => {
      const consumed: string[] = [];
      for (const { entry, kind } of mail) {
        if (host.recent.check(entry.id, entry.content) !== undefined) continue;
        if (kind === 'input') host.offerStored({ type: 'input', input: entry } as EventObject, entry, 'from another node');
        else if (kind === 'answer') {
          const questionId = entry.metadata?.['questionId'];
          const input = { id: entry.id, content: entry.content, questionId };
          host.offerStored({ type: 'input', input } as EventObject, { id: entry.id, content: entry.content }, 'from another node');
        } else if (kind === 'decision') {
          // Said in the session's stream, as any other mail's outcome: the sender acknowledged it already.
          consumed.push(entry.id);
          const receipt = host.send({ type: 'permission', decision: JSON.parse(entry.content) as PermissionDecision } as EventObject);
          if (receipt?.status !== 'accepted') host.reportError('INVALID_MESSAGE', receipt?.message ?? 'the session asks for no approvals', entry.id);
        } else {
          consumed.push(entry.id);
          host.recent.remember(entry.id, entry.content);
          const event = kind === 'command' ? commandEvent(host, entry) : controlEvent(host, entry.content);
          if (typeof event === 'string') host.reportError('INVALID_MESSAGE', event, entry.id);
          else host.send(event);
        }
      }
      host.took(
        mail.map((m) => m.entry.id),
        consumed,
      );
    });
  }

  function commandEvent(host: SessionHost, entry: InboxEntry): EventObject | string {
    const command = host.kind.commands ? parseCommand(entry.id, entry.content, opts.commandPrefix) : undefined;
    if (!command) return `session "${host.id}" (${host.kindName}) takes no commands`;
    if (!commands.has(command.name) && !(BUILTIN_COMMANDS as readonly string[]).includes(command.name)) {
      return `unknown command "${opts.commandPrefix}${command.name}" (try ${opts.commandPrefix}help)`;
    }
    return { type: 'command', command } as EventObject;
  }

  function controlEvent(host: SessionHost, action: string): EventObject | string {
    const event = { type: action };
    const snapshot = host.snapshot() as { can(event: EventObject): boolean };
    return snapshot.can(event) ? event : `session "${host.id}" (${host.kindName}) cannot "${action}" in its current state`;
  }

  // C11: idle sessions are passivated — snapshot saved, actor stopped. A sweep every half
  // timeout finds them; the timer is unref'd so it never keeps the process alive.
  let sweep: unknown;
  function armSweep(): void {
    if (sweep !== undefined || shutdown) return;
    sweep = clock.setTimeout(() => {
      sweep = undefined;
      passivateIdle();
      if (sessions.size > 0) armSweep();
    }, Math.max(1, Math.floor(opts.idleTimeoutMs / 2)));
    (sweep as { unref?: () => void }).unref?.();
  }
  function passivateIdle(): void {
    const cutoff = deps.now() - opts.idleTimeoutMs;
    for (const host of [...sessions.values()]) {
      if (host.lastActive > cutoff || !host.quiescent()) continue;
      passivate(host);
    }
  }

  function rejected(error: BatonError): Receipt {
    return { status: 'rejected', code: error.code, error };
  }

  /** A receipt, whatever the registry answered: a session that could not be had is a rejection. */
  function receiptOf(sessionId: string, answer: Awaitable<Receipt | BatonError | undefined>): Promise<Receipt> {
    return Promise.resolve(answer).then((value) =>
      value instanceof BatonError ? rejected(value) : (value ?? rejected(new SessionNotFoundError(sessionId))),
    );
  }

  function send(sessionId: string, input: InputMessage, options: KindOption = {}): Promise<Receipt> {
    if (shutdown) return Promise.resolve(rejected(new RuntimeShuttingDownError()));
    const problem = validate(sessionId, input, limits);
    if (problem) return Promise.resolve(rejected(problem));
    const { id, content } = input;
    const metadata = input.metadata === undefined ? undefined : plainMetadata(id, input.metadata, limits);
    if (metadata instanceof BatonError) return Promise.resolve(rejected(metadata));
    return receiptOf(
      sessionId,
      registry.with(sessionId, { create: true, kind: options.kind }, (host) => {
        const command = host.kind.commands ? parseCommand(id, content, opts.commandPrefix) : undefined;
        if (command && !commands.has(command.name) && !(BUILTIN_COMMANDS as readonly string[]).includes(command.name)) {
          return rejected(new InvalidMessageError(`unknown command "${opts.commandPrefix}${command.name}" (try ${opts.commandPrefix}help)`));
        }
        if (command) return deliver(host, id, content, { type: 'command', command } as EventObject);
        const entry: InboxEntry = metadata ? { id, content, metadata } : { id, content };
        return deliver(host, id, content, { type: 'input', input: entry } as EventObject, entry);
      }, (owner) => {
        const command = (owner.kind ?? options.kind ?? 'agent') === 'agent' ? parseCommand(id, content, opts.commandPrefix) : undefined;
        const entry: InboxEntry = metadata ? { id, content, metadata } : { id, content };
        return mail(sessionId, { entry, kind: command ? 'command' : 'input' });
      }),
    );
  }

  /**
   * An input, command or control for a session another node runs (a cluster): committed to
   * its inbox — so `durable` holds — and left to its owner, which reports what it makes of
   * it in the session's stream.
   */
  function mail(sessionId: string, message: Mail): Promise<Receipt> {
    return cluster!.store.deliver(sessionId, message).then(
      (outcome): Receipt =>
        outcome === 'duplicate' && message.kind === 'decision'
          ? rejected(new InvalidMessageError(`a decision for "${message.entry.id.slice('permission:'.length)}" was sent already`))
          : outcome === 'duplicate'
          ? { status: 'duplicate', ...((message.kind === 'input' || message.kind === 'answer') && { durability: 'durable' }) }
          : message.kind === 'input' || message.kind === 'answer'
            ? { status: 'accepted', mode: 'queued', durability: 'durable' }
            : message.kind === 'decision'
              ? { status: 'accepted' }
              : { status: 'accepted', mode: 'command' },
      (error: unknown) => rejected(new StoreUnavailableError(sessionId, error)),
    );
  }

  function respond(sessionId: string, answer: AnswerMessage): Promise<Receipt> {
    if (shutdown) return Promise.resolve(rejected(new RuntimeShuttingDownError()));
    const content = answerText(answer);
    const problem =
      validate(sessionId, { id: answer?.id, content: content ?? '' }, limits) ??
      (typeof answer.questionId !== 'string' || answer.questionId === '' ? new InvalidMessageError('answer.questionId must be a non-empty string') : undefined) ??
      (content === undefined ? new InvalidMessageError('answer.answers must map question texts to answers') : undefined);
    if (problem) return Promise.resolve(rejected(problem));
    return receiptOf(
      sessionId,
      registry.with(sessionId, { create: false }, (host) => {
        if (!host.kind.answers) return rejected(new InvalidMessageError(`session "${sessionId}" asks no questions`));
        const event = { type: 'input', input: { id: answer.id, content, questionId: answer.questionId } };
        return deliver(host, answer.id, content!, event, { id: answer.id, content: content! });
      }, (owner) => {
        if (owner.kind !== undefined && !kinds.get(owner.kind)?.answers) return new InvalidMessageError(`session "${sessionId}" asks no questions`);
        return mail(sessionId, { entry: { id: answer.id, content: content!, metadata: { questionId: answer.questionId } }, kind: 'answer' });
      }),
    );
  }

  function decidePermission(sessionId: string, decision: PermissionDecision): Promise<Receipt> {
    if (shutdown) return Promise.resolve(rejected(new RuntimeShuttingDownError()));
    const problem = validateDecision(sessionId, decision, limits);
    if (problem) return Promise.resolve(rejected(problem));
    const { id, allowed } = decision;
    const event = { type: 'permission', decision: { id, allowed, ...(decision.reason !== undefined && { reason: decision.reason }) } };
    return receiptOf(
      sessionId,
      registry.with(sessionId, { create: false }, (host) => {
        const decided = host.send(event as EventObject);
        if (decided?.status !== 'accepted') {
          const message = decided?.message ?? `session "${sessionId}" (${host.kindName}) asks for no approvals`;
          return rejected(new InvalidMessageError(message));
        }
        // Accepted means stored: the decision is journaled with the step that took it.
        return host.committed().then((stored) => (stored ? { status: 'accepted' as const } : rejected(unavailable(host.id))));
      }, () => mail(sessionId, { entry: { id: `permission:${id}`, content: JSON.stringify(event.decision) }, kind: 'decision' })),
    );
  }

  /**
   * Idempotency (C10), then the machine's own decision. The receipt is answered once the
   * step that decided it is committed (C16): an accepted input enters the durable inbox in
   * that same transaction, so `durable` is true when the client reads it.
   */
  function deliver(host: SessionHost, id: string, content: string, event: EventObject, entry?: InboxEntry): Awaitable<Receipt> {
    const seen = host.recent.check(id, content);
    if (seen === false) return rejected(new InvalidMessageError(`input id "${id}" was already used with different content`));
    // A duplicate input was stored as the original was: it says so, as the original's ack did.
    const receipt: Receipt =
      seen === true ? { status: 'duplicate', ...(entry && { durability: store.durable ? 'durable' : 'volatile' }) } : decide(host, id, content, event, entry);
    // A duplicate waits too: the original's step may still be on its way to the store.
    return host.committed().then((stored) => (stored ? receipt : rejected(unavailable(host.id))));
  }

  function unavailable(sessionId: string): StoreUnavailableError {
    return new StoreUnavailableError(sessionId, supervisor.failure(sessionId) ?? 'the commit failed');
  }

  function decide(host: SessionHost, id: string, content: string, event: EventObject, entry: InboxEntry | undefined): Receipt {
    const decided = entry ? host.send(event, entry) : host.send(event, undefined, { id, content });
    if (!decided) {
      return rejected(new InvalidMessageError(`session "${host.id}" (${host.kindName}) does not take this input in its current state`));
    }
    if (decided.status === 'rejected') {
      const error = errorFor(decided.code ?? 'INTERNAL_ERROR', host.id, decided.message);
      return decided.announced ? { ...rejected(error), announced: true } : rejected(error);
    }
    host.recent.remember(id, content);
    count.input();
    const durability = entry ? { durability: store.durable ? ('durable' as const) : ('volatile' as const) } : {};
    return { status: 'accepted', ...(decided.mode && { mode: decided.mode }), ...durability };
  }

  async function control(sessionId: string, action: ControlAction): Promise<void> {
    // During the drain a live session may still be stopped (C6); nothing is activated for it.
    if (shutdown && !sessions.has(sessionId)) throw new RuntimeShuttingDownError();
    const answer = await registry.with<true | BatonError>(sessionId, { create: false }, (host) => {
      const snapshot = host.snapshot() as { can(event: EventObject): boolean };
      if (!snapshot.can({ type: action })) {
        return new InvalidMessageError(`session "${sessionId}" (${host.kindName}) cannot "${action}" in its current state`);
      }
      host.send({ type: action });
      return host.committed().then((stored) => (stored ? true : unavailable(sessionId)));
    }, (owner) =>
      mail(sessionId, { entry: { id: `control_${globalThis.crypto.randomUUID()}`, content: action }, kind: 'control' }).then((receipt) =>
        receipt.status === 'rejected' ? receipt.error! : true,
      ),
    );
    if (answer === undefined) throw new SessionNotFoundError(sessionId);
    if (answer instanceof BatonError) throw answer;
  }

  async function open(sessionId: string, options: KindOption): Promise<SessionStatus> {
    if (shutdown) throw new RuntimeShuttingDownError();
    if (typeof sessionId === 'string' && sessionId.length > limits.maxSessionIdLength) {
      throw new InvalidMessageError(`the session id is ${sessionId.length} characters; the limit maxSessionIdLength is ${limits.maxSessionIdLength}`);
    }
    const problem = validate(sessionId, { id: 'open', content: '' }, limits);
    if (problem) throw problem;
    const answer = await registry.with(
      sessionId,
      { create: true, kind: options.kind },
      (host) => host.committed().then((stored) => (stored ? host.status() : unavailable(sessionId))),
      async () => (await status(sessionId)) ?? new SessionNotFoundError(sessionId),
    );
    if (answer instanceof BatonError) throw answer;
    return answer!;
  }

  /** A live session's status, or what the store says of a passivated one. */
  async function status(sessionId: string): Promise<SessionStatus | undefined> {
    const live = sessions.get(sessionId);
    if (live) return live.status();
    // Watched here and run elsewhere (a cluster): read after its stream's starting point, so
    // an attach point taken from this status is never before it.
    await cluster?.started(sessionId);
    const loaded = await attempt(
      () => store.load(sessionId, { recent: 0, history: 0, claim: false }),
      (error) => {
        throw new StoreUnavailableError(sessionId, error);
      },
    );
    // It may have been activated while the store answered.
    const now = sessions.get(sessionId);
    if (now) return now.status();
    if (!loaded || isOwnedElsewhere(loaded)) return undefined;
    const { session, owner } = loaded;
    const waitingForUser = waitsForUser(kinds.get(session.kind), session.snapshot);
    return {
      sessionId,
      kind: session.kind,
      state: 'passivated',
      backlog: loaded.pending.length,
      turns: 0,
      busy: false,
      waitingForUser,
      schedules: clientSchedules(loaded.schedules ?? []).map(scheduleSummary),
      seq: loaded.lastSeq,
      ...(owner && owner.id !== cluster?.store.node.id && { node: owner.id }),
    };
  }

  function eventsOf(sessionId: string): Observable<SessionEvent> {
    return new IsolatedObservable<SessionEvent>(report, (subscriber) => {
      if (shutdown && sessions.size === 0) return subscriber.complete();
      let set = listeners.get(sessionId);
      if (!set) listeners.set(sessionId, (set = new Set()));
      set.add(subscriber);
      // Run by another node (a cluster): its committed events come through the store.
      cluster?.watch(sessionId);
      return () => {
        set.delete(subscriber);
        if (set.size === 0 && listeners.get(sessionId) === set) {
          listeners.delete(sessionId);
          seen.delete(sessionId);
        }
      };
    });
  }

  async function drainAll(drainMs: number): Promise<void> {
    // No retry re-activates a session behind the drain's back, no schedule fires.
    supervisor.stop();
    scheduling.stop();
    // Sessions still activating are drained like the rest once they are live (C14). Only
    // then an await: the drain's timer starts in this same call otherwise.
    const activating = registry.activations();
    if (activating.length > 0) await Promise.all(activating);
    const hosts = [...sessions.values()];
    const drained = Promise.all(hosts.map((host) => host.drain()));
    let timer: unknown;
    const expired = new Promise<void>((resolve) => {
      timer = clock.setTimeout(() => resolve(), drainMs);
    });
    await Promise.race([drained, expired]);
    clock.clearTimeout(timer);
    // Turns still running after drainMs are aborted; then every actor is at rest and saved.
    for (const host of hosts) host.abortDrain();
    await drained;
    if (sweep !== undefined) clock.clearTimeout(sweep);
    await Promise.all(hosts.map((host) => host.checkpoint({ release: true })));
    for (const host of hosts) host.stop();
    if (cluster) {
      cluster.stop();
      await attempt(
        () => cluster.store.leave(),
        (error) => report(error),
      );
    }
    sessions.clear();
    for (const set of listeners.values()) for (const subscriber of set) subscriber.complete();
    listeners.clear();
    events$.complete();
  }

  // C20: one process timer for every session's schedules, passivated ones included.
  const scheduling = new Scheduling({
    store,
    registry,
    clock: deps.clock,
    now: deps.now,
    report,
    shuttingDown: () => shutdown !== undefined,
    retryMs: opts.storeRetryMs,
    ...(cluster && { pollMs: opts.clusterSweepMs }),
  });

  // C12: after a restart, every session with inputs not yet consumed is activated and its
  // work runs again. In a microtask, so the caller can subscribe to events$ first.
  queueMicrotask(() => {
    if (shutdown) return;
    scheduling.start();
    const pending = attempt(
      () => store.sessionsWithPending(),
      (error) => {
        report(new StoreUnavailableError(undefined, error));
        return [];
      },
    );
    void when(pending, (ids) => {
      for (const sessionId of ids) if (!shutdown) void registry.with(sessionId, { create: false }, () => undefined);
    });
  });

  return {
    send,
    respond,
    decide: decidePermission,
    schedule: (sessionId, spec) => scheduling.schedule(sessionId, spec),
    cancelSchedule: (sessionId, id) => scheduling.cancel(sessionId, id),
    schedules: (sessionId) => scheduling.list(sessionId),
    control,
    open: (sessionId, options = {}) => open(sessionId, options),
    snapshot: (sessionId) => sessions.get(sessionId)?.snapshot(),
    status,
    eventsAfter: (sessionId, seq) =>
      Promise.resolve(
        attempt(
          () => store.eventsAfter(sessionId, seq),
          (error) => {
            throw new StoreUnavailableError(sessionId, error);
          },
        ),
      ),
    machineOf: (kind) => kinds.get(kind)?.machine,
    directory,
    sessionIds: () => [...sessions.keys()],
    countSessions: async (prefix) => {
      if (store.countSessions) return store.countSessions(prefix);
      return [...sessions.keys()].filter((id) => id.startsWith(prefix)).length;
    },
    listSessions: async (limit = 500) => {
      const live = [...sessions.keys()];
      if (!cluster) return live.slice(0, limit);
      const stored = await cluster.store.sessionIds(limit);
      return [...new Set([...live, ...stored])].slice(0, limit);
    },
    events$: new IsolatedObservable<SessionEvent>(report, (subscriber) => events$.subscribe(subscriber)),
    health: () => {
      const health = supervisor.health();
      if (!cluster) return health;
      const { node } = cluster.store;
      return { ...health, node: { id: node.id, incarnation: node.incarnation, leaseValid: !cluster.store.selfFenced(), ownedSessions: sessions.size } };
    },
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

import type { AnyMachineSnapshot, EventObject } from 'xstate';
import {
  replyIdOf,
  sessionMachine,
  type RunningTurn,
  type SessionCommand,
  type SessionEffect,
  type SessionMachineEvent,
  type SessionSettings,
  type SessionContext,
} from '../../machines/session.ts';
import type { Agent, Steering, Turn } from './turn.ts';
import type { CommandSpec } from './commands.ts';
import { SessionTags, withContext, type DriverContext, type KindDriver, type SessionKind } from './kind.ts';
import { SteerChannel } from './steer-channel.ts';
import { LazyAbort } from './lazy-abort.ts';
import type { TranscriptEntry } from './store.ts';
import { BatonError, InvalidMessageError } from '../errors.ts';
import { MIN_EVERY_MS, parseSchedule, type ScheduleSpec } from './schedule.ts';
import type { ScheduleRecord } from './store.ts';
import type { DoneData } from '../../machines/events.ts';
import type { SessionInput } from '../../machines/session.ts';
import type { Tool, ToolResult } from './tool.ts';
import { TurnTools, type TurnJournal } from './tool-calls.ts';
import { sessionInput } from './timer-input.ts';

export interface AgentKindOptions {
  readonly agent: Agent;
  readonly commands: ReadonlyMap<string, CommandSpec>;
  /** The tools `turn.callTool` reaches: the runtime's and the agent's (C19). @default none */
  readonly tools?: ReadonlyMap<string, Tool>;
  /** How long a permission request waits for the user before it is a denial (C19). @default 300000 */
  readonly approvalTimeoutMs?: number;
  settingsFor(sessionId: string): SessionSettings;
}

/** What a running turn keeps beside the snapshot: its tool calls (C19) and when it times out (C20). */
interface DriverJournal {
  readonly timeoutAt?: number;
  readonly tools?: TurnJournal;
}

/** AEP's auto-deny: a permission request nobody answers is denied after five minutes. */
export const DEFAULT_APPROVAL_TIMEOUT_MS = 5 * 60_000;

/** The default kind: the session machine, with the agent and command handlers run by the runtime. */
export function agentKind(options: AgentKindOptions): SessionKind {
  return {
    machine: sessionMachine,
    input: (sessionId) => ({ sessionId, settings: options.settingsFor(sessionId) }),
    commands: true,
    schedules: true,
    // 2: `idle` became `idle.quiet | idle.occupied` (tags). A version-1 `{ running: 'idle' }`
    // enters idle's initial child, which is what it meant.
    // 3: inputs in context are ids only (payloads come from the inbox). Older snapshots hold
    // whole inputs, whose ids are all this version reads.
    // 4: `busy` has children (`working`, `waiting`) and context has `approvals` (C19). An older
    // `{ running: 'busy' }` enters busy's initial child; `restore` gives it no approvals.
    version: 4,
    migrate: (snapshot, from) => (from < 4 ? snapshot : undefined),
    // Settings come from the runtime at every activation; drain flags belong to one process.
    persist: (snapshot) => withContext(snapshot, { settings: undefined, draining: false, drained: false }),
    restore: (snapshot, input) =>
      withContext(snapshot, {
        settings: (input as { settings: SessionSettings }).settings,
        draining: false,
        drained: false,
        approvals: (snapshot.context as Partial<SessionContext> | undefined)?.approvals ?? [],
        sealAt: (snapshot.context as Partial<SessionContext> | undefined)?.sealAt ?? null,
        schedules: (snapshot.context as Partial<SessionContext> | undefined)?.schedules ?? [],
      }),
    // A passivated session waiting for a decision is woken when the first approval runs out,
    // so it is denied then (C19), not whenever something next comes to the session.
    wakeAt: (snapshot) => {
      const approvals = (snapshot.context as Partial<SessionContext> | undefined)?.approvals ?? [];
      return approvals.length === 0 ? undefined : Math.min(...approvals.map((a) => a.expiresAt));
    },
    driver: (session) => new AgentDriver(session, options, (session.input as { settings: SessionSettings }).settings),
    // The turn a crash cut off is closed (its reply ended, its done says interrupted, its
    // inputs stay in the inbox) before `resume` runs it again.
    interrupted: (snapshot: AnyMachineSnapshot) => {
      const turn = (snapshot.context as SessionContext).turn;
      if (!turn) return [];
      return [
        { type: 'message.end', data: { message_id: replyIdOf(turn.id) } },
        { type: 'done', data: { success: false, dropped: false, reason: 'interrupted', input_ids: [] } },
      ];
    },
    holds: (snapshot: AnyMachineSnapshot) => {
      const c = snapshot.context as SessionContext;
      return [
        ...(c.turn?.inputs ?? []).map((i) => i.id),
        ...(c.turn?.steered ?? []).map((i) => i.id),
        ...c.batch.map((i) => i.id),
        ...c.queue.flatMap((w) => (w.kind === 'input' ? [w.input.id] : [])),
      ];
    },
    status: (snapshot: AnyMachineSnapshot) => {
      const c = snapshot.context as SessionContext;
      const state = snapshot.matches('created')
        ? 'created'
        : snapshot.matches('terminated')
          ? 'terminated'
          : snapshot.matches('deleted')
            ? 'deleted'
            : snapshot.hasTag(SessionTags.busy) || c.command !== null // a command: the lane is context, not a state
              ? 'busy'
              : snapshot.matches({ running: 'collecting' })
                ? 'collecting'
                : 'idle';
      return { state, backlog: c.batch.length + c.queue.length, turns: c.turns };
    },
  };
}

const noTools: ReadonlyMap<string, Tool> = new Map();

/** The host side of one running turn. */
interface TurnRecord {
  readonly id: number;
  readonly controller: LazyAbort;
  readonly startedAt: number;
  readonly steer: SteerChannel | undefined;
  /** The turn's inputs, steered ones included once pulled: what the transcript records. */
  readonly inputs: SessionInput[];
  /** The turn's tool calls (C19). */
  readonly tools: TurnTools;
  /** The reply so far, streamed or returned. */
  text: string;
  streamed: boolean;
  ended: boolean;
  /** The turn's timeout (C7): `agent.timeout` when it fires, cleared when the turn ends. */
  timer: unknown;
  /** When it fires; `undefined` while it is held (a decision is owed). Stored, so a re-run keeps it (C20). */
  timeoutAt: number | undefined;
}

/**
 * What the agent sees of its turn. A class, so a turn costs one object rather than a set of
 * closures; `emit` is bound once because agents pass it around (`stream.on('data', turn.emit)`).
 */
class AgentTurn implements Turn {
  readonly sessionId: string;
  readonly inputs: readonly SessionInput[];
  declare readonly steer?: Steering;
  readonly emit: (delta: string) => void;
  readonly #driver: AgentDriver;
  readonly #record: TurnRecord;
  #history: readonly TranscriptEntry[] | undefined;

  constructor(driver: AgentDriver, record: TurnRecord, inputs: readonly SessionInput[]) {
    this.sessionId = driver.sessionId;
    this.inputs = inputs;
    this.#driver = driver;
    this.#record = record;
    if (record.steer) (this as { steer?: Steering }).steer = record.steer;
    this.emit = (delta) => driver.delta(record, delta);
  }

  get signal(): AbortSignal {
    return this.#record.controller.signal;
  }

  get history(): readonly TranscriptEntry[] {
    return (this.#history ??= this.#driver.history());
  }

  callTool(name: string, input: unknown): Promise<ToolResult> {
    return this.#record.tools.call(name, input);
  }

  schedule(spec: ScheduleSpec): ScheduleRecord {
    return this.#driver.schedule(this.#record, spec);
  }

  cancelSchedule(id: string): boolean {
    if (this.#record.ended) throw new InvalidMessageError('the turn is over: it can no longer cancel schedules');
    return this.#driver.cancelSchedule(id);
  }

  get tools(): readonly Tool[] {
    return this.#driver.tools();
  }
}

/** Runs a session's turns and commands as its machine asks, and reports back with tagged events. */
class AgentDriver implements KindDriver {
  readonly #session: DriverContext;
  readonly #options: AgentKindOptions;
  #turn: TurnRecord | undefined;
  #command: AbortController | undefined;
  #commandTimer: unknown;
  readonly #steering: boolean;
  readonly #turnTimeoutMs: number;
  /** What the restored turn's previous run left (C19, C20): its re-run replays it. */
  #restored: DriverJournal | undefined;
  /** Deadlines of the running turn's pending approvals, by call id. */
  readonly #approvals = new Map<string, unknown>();
  #tools: readonly Tool[] | undefined;

  get sessionId(): string {
    return this.#session.sessionId;
  }

  constructor(session: DriverContext, options: AgentKindOptions, settings: SessionSettings) {
    this.#session = session;
    this.#options = options;
    this.#steering = settings.busyPolicy === 'steer';
    this.#turnTimeoutMs = settings.turnTimeoutMs;
    this.#restored = session.journal as DriverJournal | undefined;
  }

  /** A turn waiting for the user may passivate only once none of its tools runs (C19). */
  busy(): boolean {
    return (this.#turn?.tools.running() ?? 0) > 0;
  }

  /** The running turn's tool calls, stored beside the snapshot. */
  journal(): DriverJournal | undefined {
    const record = this.#turn;
    if (!record) return undefined;
    const tools = record.tools.journal();
    return { ...(record.timeoutAt !== undefined && { timeoutAt: record.timeoutAt }), ...(tools && { tools }) };
  }

  effect(e: EventObject): void {
    const effect = e as SessionEffect;
    const session = this.#session;
    switch (effect.type) {
      case 'turn.start': {
        const record = this.#startRecord(effect.turn);
        session.defer(() => this.#runAgent(record));
        return;
      }
      case 'turn.abort': {
        const record = this.#turn;
        if (record?.id === effect.turnId) session.defer(() => record.controller.abort(new Error('turn aborted')));
        return;
      }
      case 'turn.steer': {
        const record = this.#turn;
        if (record?.id !== effect.turnId) return;
        const input = this.#input(effect.input.id);
        session.defer(() => record.steer?.push(input));
        return;
      }
      case 'command.run':
        session.defer(() => this.#runCommand(effect.command));
        return;
      case 'approval.decided': {
        const record = this.#turn;
        this.#settleApproval(effect.callId);
        // Journaled in this step: the tool runs (or the denial is seen) once it is committed.
        record?.tools.decided(effect.callId, {
          allowed: effect.allowed,
          ...(effect.reason !== undefined && { reason: effect.reason }),
          ...(effect.timedOut && { timedOut: true }),
        });
        return;
      }
    }
  }

  /** The turn is over: its transcript entries (inputs, then the reply), and let go of it. */
  closeTurn(done: Omit<DoneData, 'stats'>): { durationMs: number; transcript?: readonly TranscriptEntry[] } {
    const record = this.#turn;
    if (!record) return { durationMs: 0 };
    // C19: a call still open gets its `cancelled` result before the turn's done.
    record.tools.close();
    record.ended = true;
    this.#turn = undefined;
    this.#session.journalChanged();
    this.#clearApprovals();
    this.#session.clock.clearTimeout(record.timer);
    if (record.steer) this.#session.defer(() => record.steer?.close());
    const byId = new Map(record.inputs.map((i) => [i.id, i]));
    const entries: TranscriptEntry[] = done.input_ids.flatMap((id) => {
      const input = byId.get(id);
      return input ? [{ role: 'user' as const, content: input.content, inputId: id }] : [];
    });
    entries.push(...record.tools.entries());
    const status = done.success ? undefined : done.reason === 'failed' ? 'failed' : 'interrupted';
    entries.push({ role: 'assistant', content: record.text, ...(status && { status }) });
    return { durationMs: this.#session.now() - record.startedAt, transcript: entries };
  }

  stop(): void {
    this.#clearApprovals();
    if (this.#turn) this.#session.clock.clearTimeout(this.#turn.timer);
    this.#turn?.controller.abort(new Error('session stopped'));
    this.#turn?.steer?.close();
    this.#command?.abort(new Error('session stopped'));
    // A stopped session's timers must not keep the process alive.
    this.#session.clock.clearTimeout(this.#commandTimer);
  }

  #send(event: SessionMachineEvent): void {
    this.#session.dispatch(event);
  }

  #startRecord(turn: RunningTurn): TurnRecord {
    const turnId = turn.id;
    const steer = this.#steering
      ? new SteerChannel(
          () => this.#send({ type: 'agent.steering', turnId }),
          (input) => {
            this.#turn?.inputs.push(input);
            this.#send({ type: 'agent.pulled', turnId, inputId: input.id });
          },
        )
      : undefined;
    const controller = new LazyAbort();
    const session = this.#session;
    // The journal belongs to the turn the restored machine held, which this one re-runs.
    const restored = this.#restored;
    this.#restored = undefined;
    const tools = new TurnTools(
      {
        sessionId: session.sessionId,
        tools: this.#options.tools ?? noTools,
        approvalTimeoutMs: this.#options.approvalTimeoutMs ?? DEFAULT_APPROVAL_TIMEOUT_MS,
        now: () => session.now(),
        changed: () => session.journalChanged(),
        awaitApproval: (callId, expiresAt) => {
          if (record !== this.#turn || record.ended) return;
          this.#armApproval(record, callId, expiresAt);
          this.#send({ type: 'approval.request', turnId, callId, expiresAt });
        },
        withdrawApproval: (callId) => {
          if (record !== this.#turn || record.ended || !this.#approvals.has(callId)) return;
          this.#settleApproval(callId);
          this.#send({ type: 'approval.withdraw', callId });
        },
        signal: () => controller.signal,
        // Like a delta: an event of a turn the machine opened and has not closed.
        output: (event) => {
          if (!record.ended && record === this.#turn) session.output(event);
        },
        defer: (task) => session.defer(task),
        report: (error) => session.defer(() => {
          throw error;
        }),
      },
      `call_${turnId}`,
      restored?.tools,
    );
    const record: TurnRecord = {
      id: turnId,
      controller,
      tools,
      startedAt: this.#session.now(),
      steer,
      inputs: turn.inputs.map((ref) => this.#input(ref.id)),
      text: '',
      streamed: false,
      ended: false,
      timer: undefined,
      timeoutAt: undefined,
    };
    // A turn restarted without a done (a restored session re-runs it) drops the old timer.
    if (this.#turn) this.#session.clock.clearTimeout(this.#turn.timer);
    this.#clearApprovals();
    this.#turn = record;
    // Approvals the previous run still waits for keep their deadlines (the machine kept them).
    for (const { callId, expiresAt } of tools.pendingApprovals()) this.#armApproval(record, callId, expiresAt);
    // A re-run keeps the timeout its first run had (C20) — or turnTimeoutMs from now, if this
    // process was started with a shorter one; a fresh turn gets turnTimeoutMs.
    const fresh = this.#session.now() + this.#turnTimeoutMs;
    if (this.#approvals.size === 0) this.#armTurnTimer(record, Math.min(restored?.timeoutAt ?? fresh, fresh));
    return record;
  }

  /**
   * C7: the turn's timeout, at `at` or turnTimeoutMs from now. Time spent waiting for the
   * user does not count: the timer is held while a decision is owed.
   */
  #armTurnTimer(record: TurnRecord, at = this.#session.now() + this.#turnTimeoutMs): void {
    const turnId = record.id;
    this.#session.clock.clearTimeout(record.timer);
    record.timeoutAt = at;
    record.timer = this.#session.clock.setTimeout(() => this.#send({ type: 'agent.timeout', turnId }), Math.max(0, at - this.#session.now()));
    this.#session.journalChanged();
  }

  /** A decision is owed: its deadline is armed and the turn's own timer waits. */
  #armApproval(record: TurnRecord, callId: string, expiresAt: number): void {
    const clock = this.#session.clock;
    clock.clearTimeout(this.#approvals.get(callId));
    clock.clearTimeout(record.timer);
    record.timeoutAt = undefined;
    this.#session.journalChanged();
    // Never longer than approvalTimeoutMs: a clock behind the one that set the deadline must not stretch it.
    const delay = Math.min(this.#options.approvalTimeoutMs ?? DEFAULT_APPROVAL_TIMEOUT_MS, Math.max(0, expiresAt - this.#session.now()));
    this.#approvals.set(callId, clock.setTimeout(() => this.#send({ type: 'approval.timeout', callId }), delay));
  }

  /** A decision came (or is no longer owed): the last one restarts the turn's timer. */
  #settleApproval(callId: string): void {
    if (!this.#approvals.has(callId)) return;
    this.#session.clock.clearTimeout(this.#approvals.get(callId));
    this.#approvals.delete(callId);
    const record = this.#turn;
    if (this.#approvals.size === 0 && record && !record.ended) this.#armTurnTimer(record);
  }

  #clearApprovals(): void {
    for (const timer of this.#approvals.values()) this.#session.clock.clearTimeout(timer);
    this.#approvals.clear();
  }

  /**
   * What the client sent with an input: the machine keeps only ids, the host the payloads.
   * An input the host cannot find (its store lost it) still reaches the agent, with empty content.
   */
  #input(inputId: string): SessionInput {
    const entry = this.#session.payload(inputId);
    return entry ? sessionInput(entry) : { id: inputId, content: '' };
  }

  #runAgent(record: TurnRecord): void {
    if (record.ended) return; // stopped before it could start
    // The turn's own inputs; steered ones the agent pulls later are not added to them.
    const turn = new AgentTurn(this, record, record.inputs.slice());
    try {
      const result = this.#options.agent(turn);
      if (isPromiseLike(result)) result.then((value) => this.#succeed(record, value), (error) => this.#fail(record, error));
      else this.#succeed(record, result);
    } catch (error) {
      this.#fail(record, error);
    }
  }

  /** Listed only if an agent asks, once per activation; frozen, since every turn shares it. */
  tools(): readonly Tool[] {
    return (this.#tools ??= Object.freeze([...(this.#options.tools ?? noTools).values()]));
  }

  /** `turn.schedule`: checked as `runtime.schedule` checks it, set in the session's next step (C20). */
  schedule(record: TurnRecord, spec: ScheduleSpec): ScheduleRecord {
    if (record.ended) throw new InvalidMessageError('the turn is over: it can no longer set schedules');
    const now = this.#session.now();
    const parsed = parseSchedule(spec, now);
    // From inside a turn a one-shot is due MIN_EVERY_MS from now at the soonest: an agent that
    // re-arms one from every turn it starts would otherwise loop as fast as it can.
    const recurring = parsed.everyMs !== undefined || parsed.cron !== undefined;
    const schedule = recurring ? parsed : { ...parsed, dueAt: Math.max(parsed.dueAt, now + MIN_EVERY_MS) };
    this.#session.setSchedule(schedule); // throws what the session refuses (a full session, a due time fired already)
    return schedule;
  }

  cancelSchedule(id: string): boolean {
    return this.#session.cancelSchedule(id);
  }

  /** Copied only if the agent asks. */
  history(): readonly TranscriptEntry[] {
    return this.#session.history();
  }

  delta(record: TurnRecord, delta: unknown): void {
    if (record.ended || record !== this.#turn) return; // C6: a stopped turn's output is dropped
    const text = String(delta);
    record.streamed = true;
    record.text += text;
    if (text === '') return;
    // The machine opened this turn and closes it (then `ended` is set); a delta changes
    // nothing in it, so it skips the machine step: most of a streamed reply's cost.
    this.#session.output({ type: 'message.delta', data: { message_id: replyIdOf(record.id), content: text } });
  }

  #succeed(record: TurnRecord, result: unknown): void {
    const returned = !record.streamed && typeof result === 'string' && result !== '';
    if (returned) record.text = result;
    this.#send({ type: 'agent.done', turnId: record.id, ...(returned && { text: result }) });
  }

  /** A typed error from the agent keeps its code (e.g. RATE_LIMITED); anything else is a crash. */
  #fail(record: TurnRecord, error: unknown): void {
    this.#send({
      type: 'agent.error',
      turnId: record.id,
      message: describe(error),
      ...(error instanceof BatonError && { code: error.code }),
    });
  }

  #runCommand(command: SessionCommand): void {
    const commandId = command.id;
    const spec = this.#options.commands.get(command.name);
    if (!spec) return this.#send({ type: 'command.error', commandId, message: `unknown command "${command.name}"` });
    const controller = new AbortController();
    this.#command = controller;
    // A handler gets as long as a turn; a hung one must not hold the lane for ever.
    const timer = (this.#commandTimer = this.#session.clock.setTimeout(() => {
      controller.abort(new Error('command timed out'));
      this.#send({ type: 'command.error', commandId, code: 'TURN_TIMEOUT', message: `timed out after ${this.#turnTimeoutMs} ms` });
    }, this.#turnTimeoutMs));
    const settle = (event: SessionMachineEvent) => {
      this.#session.clock.clearTimeout(timer);
      this.#send(event);
    };
    try {
      const result = spec.handler({
        sessionId: this.#session.sessionId,
        name: command.name,
        args: command.args,
        inputId: command.id,
        signal: controller.signal,
      });
      if (isPromiseLike(result)) result.then((value) => settle(commandDone(commandId, value)), (error) => settle(commandFailed(commandId, error)));
      else settle(commandDone(commandId, result));
    } catch (error) {
      settle(commandFailed(commandId, error));
    }
  }
}

const commandDone = (commandId: string, result: unknown): SessionMachineEvent => ({
  type: 'command.done',
  commandId,
  ...(typeof result === 'string' && { text: result }),
});

const commandFailed = (commandId: string, error: unknown): SessionMachineEvent => ({ type: 'command.error', commandId, message: describe(error) });

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function';
}

export function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}


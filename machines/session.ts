/**
 * The session machine: one conversation, one actor.
 *
 *   created → running{ idle | collecting | busy } → terminated → deleted
 *
 * Commands (C5) run one at a time beside the turn: the running one is `context.command`.
 *
 * A second turn cannot start while one runs because `busy` has no transition that starts
 * one (C1); inputs that arrive meanwhile wait in `context.queue` (XState has no postpone).
 * The agent, command handlers and clock live outside: the machine emits effects
 * (`turn.start`, `turn.abort`, `command.run`, …) and the host answers with events
 * (`agent.done`, `command.done`, …) tagged with the turn or command they belong to, so
 * a late answer of a stopped turn is recognised and discarded (C6).
 *
 * State tags tell the runtime what the session is doing, so it never reads state names:
 * `busy` while a turn runs (`running.busy`), `quiescent` where nothing runs and nothing
 * waits (`running.idle.quiet`, `terminated`) — the runtime may passivate the session there.
 *
 * Approvals (C19): a turn whose tool call needs the user's approval waits in
 * `running.busy.waiting` (tags `waiting-for-user` and `quiescent`: the agent is parked on
 * the decision, so the session may passivate and re-run the turn from its journal when the
 * decision comes). The pending calls are `context.approvals` (ids and deadlines); a turn that ends, however
 * it ends, leaves none.
 *
 * Pure: imports only from xstate, so it pastes into the Stately visualizer unchanged.
 */
import { setup, and, not, assign, emit, enqueueActions } from 'xstate';
import type { ErrorCode, MachineOutput, MachineReceipt, DoneReason } from './events.ts';

export type BusyPolicy = 'collect' | 'followup' | 'interrupt' | 'reject' | 'steer';
export type CommandLane = 'priority' | 'ordered';

export interface SessionInput {
  readonly id: string;
  readonly content: string;
  readonly metadata?: Readonly<Record<string, unknown>>;
  /** `timer`: a schedule fired (C20); its id, due time and payload are in `schedule`. @default a user's input */
  readonly kind?: 'timer';
  readonly schedule?: { readonly id: string; readonly dueAt: number; readonly payload?: unknown };
}

/**
 * An input as the machine keeps it: its id, nothing the client sent. The payload (content,
 * metadata) stays with the host, which hands it to the agent when a turn starts. Client data
 * in context would go through XState's snapshot persistence, which turns anything shaped like
 * an actor reference (`xstate$$type`, `{ id, sessionId, send, ref }`) into an actor on restore.
 */
export interface InputRef {
  readonly id: string;
}

/** A tool call waiting for the user's decision (C19): its id and when it is denied by itself. */
export interface PendingApproval {
  readonly id: string;
  /** The deadline (the runtime's clock, ms): a decision stamped at or after it comes too late. */
  readonly expiresAt: number;
}

/** A command input, already parsed: `/name args…`. */
export interface SessionCommand {
  readonly id: string;
  readonly name: string;
  readonly args: string;
}

export interface SessionSettings {
  readonly debounceMs: number;
  readonly maxWaitMs: number;
  readonly busyPolicy: BusyPolicy;
  readonly backlogCap: number;
  readonly turnTimeoutMs: number;
  readonly commandLane: CommandLane;
  /** Registered (non built-in) commands, for `/help`. */
  readonly commandHelp: readonly { readonly name: string; readonly description: string }[];
}

type Work = { readonly kind: 'input'; readonly input: InputRef } | { readonly kind: 'command'; readonly command: SessionCommand };

export interface RunningTurn {
  readonly id: number;
  readonly inputs: readonly InputRef[];
  /** The agent reads `turn.steer`: inputs may be handed to it while it runs. */
  readonly steering: boolean;
  /** Inputs handed to the agent but not yet pulled by it. */
  readonly steered: readonly InputRef[];
}

export interface SessionContext {
  readonly sessionId: string;
  readonly settings: SessionSettings;
  /** The open batch (collecting), or the inputs about to start the next turn. */
  readonly batch: readonly InputRef[];
  /** Work waiting in arrival order: the backlog while busy, and ordered-lane commands. */
  readonly queue: readonly Work[];
  /** Priority-lane commands waiting for the lane. */
  readonly commands: readonly SessionCommand[];
  readonly turn: RunningTurn | null;
  /** The user command being executed by the lane. */
  readonly command: SessionCommand | null;
  readonly turns: number;
  readonly draining: boolean;
  readonly drained: boolean;
  /** Inputs a shutdown cancelled, reported with the last `done`. */
  readonly cancelled: readonly string[];
  /**
   * Tool call ids of the running turn waiting for the user's decision (C19). Kept when a
   * restored turn re-runs: the decision is still owed.
   */
  readonly approvals: readonly PendingApproval[];
  /**
   * When the open batch seals (C3) — `debounce` after its latest input, `maxWait` after its
   * first — as times, so a restored batch seals when it would have (C20). `null` without
   * an open batch, or when inputs came without `at`.
   */
  readonly sealAt: { readonly debounce: number; readonly maxWait: number } | null;
  /**
   * The session's schedules (C20), ids and next due times only (their payloads stay with the
   * host), for `/status`. The host keeps them, fires them and says when they change.
   */
  readonly schedules: readonly { readonly id: string; readonly dueAt: number }[];
}

export type SessionMachineEvent =
  | { type: 'activate' }
  /** `at`: when it arrived (the runtime's clock, which the machine cannot read): the batch's deadlines are times (C20). */
  | { type: 'input'; input: SessionInput; at?: number }
  | { type: 'command'; command: SessionCommand }
  | { type: 'stop' }
  | { type: 'terminate' }
  | { type: 'delete' }
  | { type: 'agent.delta'; turnId: number; text: string }
  | { type: 'agent.steering'; turnId: number }
  | { type: 'agent.pulled'; turnId: number; inputId: string }
  | { type: 'agent.done'; turnId: number; text?: string }
  /** `code`: a typed turn error from the agent (e.g. `RATE_LIMITED`); `WORKER_CRASH` otherwise. */
  | { type: 'agent.error'; turnId: number; message: string; code?: ErrorCode }
  /**
   * The turn ran `turnTimeoutMs`. The host times turns, like it runs them: a timer per
   * turn in the machine (`after`) cost a fifth of every turn in XState's scheduler.
   */
  | { type: 'agent.timeout'; turnId: number }
  /** A tool call of the turn needs the user's approval (its `permission_request` is out). */
  | { type: 'approval.request'; turnId: number; callId: string; expiresAt: number }
  /** The approval's deadline passed: a denial. */
  | { type: 'approval.timeout'; callId: string }
  /** A re-run turn no longer makes the call (its agent took another path): nothing is owed. */
  | { type: 'approval.withdraw'; callId: string }
  /**
   * The user's decision (AEP `permission_response`), stamped `at` by the host; `reason` goes
   * to the host, never to context. One that comes at or after the deadline is too late.
   */
  | { type: 'permission'; decision: { id: string; allowed: boolean; reason?: string }; at?: number }
  /** The session's schedules changed (C20): the ids and due times `/status` lists. */
  | { type: 'schedules'; schedules: readonly { id: string; dueAt: number }[] }
  | { type: 'command.done'; commandId: string; text?: string }
  /** `code`: `TURN_TIMEOUT` when the handler ran past turnTimeoutMs; `INTERNAL_ERROR` otherwise. */
  | { type: 'command.error'; commandId: string; message: string; code?: ErrorCode }
  /** `keep`: a durable store keeps waiting work for the next start instead of cancelling it. */
  | { type: 'shutdown'; keep?: boolean }
  | { type: 'shutdown.abort'; keep?: boolean }
  /**
   * Restored from a store at `at`. XState does not re-arm a restored snapshot's timers: a
   * collecting batch re-arms them from its stored deadlines (C20); a turn re-runs.
   */
  | { type: 'resume'; at?: number };

export type SessionEffect =
  | { type: 'output'; event: MachineOutput }
  | { type: 'receipt'; receipt: MachineReceipt }
  | { type: 'turn.start'; turn: RunningTurn }
  | { type: 'turn.abort'; turnId: number }
  | { type: 'turn.steer'; turnId: number; input: InputRef }
  | { type: 'command.run'; command: SessionCommand }
  /** A pending approval was decided — by the user, or by its deadline (`timedOut`). */
  | { type: 'approval.decided'; callId: string; allowed: boolean; reason?: string; timedOut?: boolean }
  | { type: 'drained' };

type Enqueue = { emit: (effect: SessionEffect) => void; assign: (fields: Partial<SessionContext>) => void };

// Output helpers. They are plain functions, not actions, so several outputs can be
// emitted from one action in a fixed order.
const out = (enqueue: Enqueue, event: MachineOutput) => enqueue.emit({ type: 'output', event });
const receipt = (enqueue: Enqueue, r: MachineReceipt) => enqueue.emit({ type: 'receipt', receipt: r });
/** The id of a turn's reply message (`message.start`, `message.delta`, `message.end`). */
export const replyIdOf = (turnId: number) => `msg_${turnId}`;
const messageId = (turn: RunningTurn) => replyIdOf(turn.id);
/** Only the id enters the context: see {@link InputRef}. */
const refOf = (input: SessionInput): InputRef => ({ id: input.id });
const inputIds = (work: readonly Work[]) =>
  work.map((w) => (w.kind === 'input' ? w.input.id : w.command.id));
const pending = (c: SessionContext) => c.batch.length + c.queue.length;
const isStopCommand = (e: SessionMachineEvent) => e.type === 'stop' || (e.type === 'command' && e.command.name === 'stop');

/** Ends the running turn: `message.end`, optional `error`, `done`. */
function endTurn(
  enqueue: Enqueue,
  turn: RunningTurn,
  outcome: { reason?: DoneReason; error?: { code: ErrorCode; message: string }; cancelled?: readonly string[] },
) {
  // C19: an ended turn owes no decision (the host gives its open calls their results).
  enqueue.assign({ approvals: [] });
  out(enqueue, { type: 'message.end', data: { message_id: messageId(turn) } });
  if (outcome.error) out(enqueue, { type: 'error', data: outcome.error });
  const { reason, cancelled } = outcome;
  out(enqueue, {
    type: 'done',
    data: {
      success: reason === undefined,
      dropped: false,
      input_ids: turn.inputs.map((i) => i.id),
      ...(reason !== undefined && { reason }),
      ...(cancelled !== undefined && cancelled.length > 0 && { cancelled_input_ids: cancelled }),
    },
  });
}

/** The `done` that reports inputs cancelled before any turn took them. */
function cancelDone(enqueue: Enqueue, reason: DoneReason, cancelled: readonly string[]) {
  out(enqueue, {
    type: 'done',
    data: { success: false, dropped: false, reason, input_ids: [], cancelled_input_ids: cancelled },
  });
}

/** Steered inputs the agent never pulled go back to the head of the queue: never lost. */
const unpulled = (turn: RunningTurn): Work[] => turn.steered.map((input) => ({ kind: 'input', input }));

export const sessionMachine = setup({
  types: {
    context: {} as SessionContext,
    events: {} as SessionMachineEvent,
    input: {} as { sessionId: string; settings: SessionSettings },
    emitted: {} as SessionEffect,
  },
  delays: {
    debounce: ({ context, event }) => delay(context, event, 'debounce'),
    maxWait: ({ context, event }) => delay(context, event, 'maxWait'),
  },
  guards: {
    isStop: ({ event }) => isStopCommand(event),
    isCurrentTurn: ({ context, event }) => 'turnId' in event && context.turn?.id === event.turnId,
    isCurrentCommand: ({ context, event }) => 'commandId' in event && context.command?.id === event.commandId,
    backlogFull: ({ context }) => pending(context) >= context.settings.backlogCap,
    batchingOff: ({ context }) => context.settings.debounceMs <= 0 || context.settings.maxWaitMs <= 0,
    orderedLane: ({ context }) => context.settings.commandLane === 'ordered',
    /** Ordered lane: an input must wait behind a command that arrived before it. */
    behindCommand: ({ context }) =>
      context.settings.commandLane === 'ordered' && (context.command !== null || context.queue.length > 0),
    rejectWhenBusy: ({ context }) => context.settings.busyPolicy === 'reject',
    canSteer: ({ context }) => context.settings.busyPolicy === 'steer' && context.turn?.steering === true,
    interruptToNext: ({ context }) =>
      context.settings.busyPolicy === 'interrupt' && context.queue[0]?.kind !== 'command',
    interruptToIdle: ({ context }) => context.settings.busyPolicy === 'interrupt',
    /** The next turn may start: inputs wait at the head of the queue and no earlier command runs. */
    turnDue: ({ context }) =>
      !context.draining &&
      (context.queue[0]?.kind === 'input' || (context.turn?.steered.length ?? 0) > 0) &&
      (context.settings.commandLane === 'priority' || context.command === null),
    /** The lane is free and a built-in command (answered by the machine itself) is next. */
    builtinDue: ({ context }) => {
      const next = context.command === null ? nextCommand(context) : undefined;
      return next !== undefined && BUILTINS.has(next.name);
    },
    /** The lane is free and a user command is next. */
    commandDue: ({ context }) => context.command === null && nextCommand(context) !== undefined,
    keepWork: ({ event }) => 'keep' in event && event.keep === true,
    /** Something besides a turn occupies the session: a command runs or waits, or inputs are held. */
    holdsWork: ({ context }) => context.command !== null || context.commands.length > 0 || pending(context) > 0,
    drainComplete: ({ context }) =>
      context.draining && !context.drained && context.turn === null && context.command === null,
    awaitingApproval: ({ context }) => context.approvals.length > 0,
    /** The event names a call that waits for a decision (and the session is not shut down meanwhile); a decision comes in time. */
    isPendingApproval: ({ context, event }) => {
      const pending = pendingOf(context, event);
      if (pending === undefined || context.drained) return false;
      return event.type !== 'permission' || event.at === undefined || event.at < pending.expiresAt;
    },
    /** A decision for a pending call that comes at or after its deadline (its timer has not fired yet: a passivated session runs none). */
    isExpiredApproval: ({ context, event }) => event.type === 'permission' && pendingOf(context, event) !== undefined && !context.drained,
    laneFree: ({ context }) => context.command === null,
  },
  actions: {
    announceCreated: emit({ type: 'output', event: { type: 'state', data: { state: 'created' } } }),
    announceIdle: emit({ type: 'output', event: { type: 'state', data: { state: 'idle' } } }),
    announceTerminated: emit({ type: 'output', event: { type: 'state', data: { state: 'terminated' } } }),
    announceDeleted: emit({ type: 'output', event: { type: 'state', data: { state: 'deleted' } } }),

    rejectBusy: emit({
      type: 'receipt',
      receipt: { status: 'rejected', code: 'SESSION_BUSY', message: 'the session is busy or its backlog is full' },
    }),
    rejectDecision: emit(({ event }) => ({
      type: 'receipt' as const,
      receipt: {
        status: 'rejected' as const,
        code: 'INVALID_MESSAGE' as const,
        message: `no permission request "${event.type === 'permission' ? event.decision.id : ''}" is waiting for a decision`,
      },
    })),
    rejectTerminated: emit({
      type: 'receipt',
      receipt: { status: 'rejected', code: 'SESSION_TERMINATED', message: 'the session is terminated' },
    }),

    /** An input joins the open batch (idle or collecting). */
    addToBatch: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'input') return;
      const { debounceMs, maxWaitMs } = context.settings;
      const sealAt =
        event.at === undefined ? null : { debounce: event.at + debounceMs, maxWait: context.sealAt && context.batch.length > 0 ? context.sealAt.maxWait : event.at + maxWaitMs };
      enqueue.assign({ batch: [...context.batch, refOf(event.input)], sealAt });
      receipt(enqueue, { status: 'accepted', mode: 'primary' });
    }),
    /** An input waits in the queue (busy, activating, or behind an ordered command). */
    addToQueue: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'input') return;
      enqueue.assign({ queue: [...context.queue, { kind: 'input', input: refOf(event.input) }] });
      receipt(enqueue, { status: 'accepted', mode: 'queued' });
    }),
    /** Moves the next turn's inputs from the queue to the batch: all leading inputs, or one for `followup`. */
    takeFromQueue: assign(({ context }) => {
      const take = context.settings.busyPolicy === 'followup' ? 1 : leadingInputs(context.queue);
      const taken = context.queue.slice(0, take).flatMap((w) => (w.kind === 'input' ? [w.input] : []));
      return { batch: [...context.batch, ...taken], queue: context.queue.slice(take) };
    }),
    /** busy's entry: the batch becomes the turn. */
    startTurn: enqueueActions(({ context, enqueue }) => {
      const turn: RunningTurn = { id: context.turns + 1, inputs: context.batch, steering: false, steered: [] };
      enqueue.assign({ turn, turns: turn.id, batch: [], sealAt: null });
      out(enqueue, { type: 'state', data: { state: 'running' } });
      out(enqueue, { type: 'message.start', data: { id: messageId(turn), role: 'assistant', content_type: 'text' } });
      enqueue.emit({ type: 'turn.start', turn });
    }),
    forwardDelta: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'agent.delta' || context.turn === null || event.text === '') return;
      out(enqueue, { type: 'message.delta', data: { message_id: messageId(context.turn), content: event.text } });
    }),
    completeTurn: enqueueActions(({ context, event, enqueue }) => {
      const turn = context.turn;
      if (event.type !== 'agent.done' || turn === null) return;
      if (event.text) out(enqueue, { type: 'message.delta', data: { message_id: messageId(turn), content: event.text } });
      endTurn(enqueue, turn, {});
      enqueue.assign({ turn: null, queue: [...unpulled(turn), ...context.queue] });
    }),
    failTurn: enqueueActions(({ context, event, enqueue }) => {
      const turn = context.turn;
      if (event.type !== 'agent.error' || turn === null) return;
      endTurn(enqueue, turn, { reason: 'failed', error: { code: event.code ?? 'WORKER_CRASH', message: event.message } });
      enqueue.assign({ turn: null, queue: [...unpulled(turn), ...context.queue] });
    }),
    timeOutTurn: enqueueActions(({ context, enqueue }) => {
      const turn = context.turn;
      if (turn === null) return;
      enqueue.emit({ type: 'turn.abort', turnId: turn.id });
      const message = `the turn exceeded turnTimeoutMs (${context.settings.turnTimeoutMs} ms)`;
      endTurn(enqueue, turn, { reason: 'timeout', error: { code: 'TURN_TIMEOUT', message } });
      enqueue.assign({ turn: null, queue: [...unpulled(turn), ...context.queue] });
    }),
    /** `interrupt` policy: the new input aborts the turn and waits for the next one. */
    interruptTurn: enqueueActions(({ context, event, enqueue }) => {
      const turn = context.turn;
      if (event.type !== 'input' || turn === null) return;
      enqueue.emit({ type: 'turn.abort', turnId: turn.id });
      endTurn(enqueue, turn, { reason: 'interrupted' });
      const queue: Work[] = [...unpulled(turn), ...context.queue, { kind: 'input', input: refOf(event.input) }];
      enqueue.assign({ turn: null, queue });
      receipt(enqueue, { status: 'accepted', mode: 'queued' });
    }),
    /** C6: abort the turn, cancel the open batch and every queued input. */
    stopAll: enqueueActions(({ context, enqueue }) => {
      const turn = context.turn;
      const cancelledWork = context.queue.filter((w) => w.kind === 'input');
      const cancelled = [...context.batch.map((i) => i.id), ...(turn?.steered ?? []).map((i) => i.id), ...inputIds(cancelledWork)];
      if (turn !== null) {
        enqueue.emit({ type: 'turn.abort', turnId: turn.id });
        endTurn(enqueue, turn, { reason: 'stopped_by_user', cancelled });
      } else if (cancelled.length > 0) {
        cancelDone(enqueue, 'stopped_by_user', cancelled);
      }
      enqueue.assign({ turn: null, batch: [], queue: context.queue.filter((w) => w.kind === 'command') });
    }),
    steerInput: enqueueActions(({ context, event, enqueue }) => {
      const turn = context.turn;
      if (event.type !== 'input' || turn === null) return;
      const input = refOf(event.input);
      enqueue.assign({ turn: { ...turn, steered: [...turn.steered, input] } });
      enqueue.emit({ type: 'turn.steer', turnId: turn.id, input });
      receipt(enqueue, { status: 'accepted', mode: 'injected' });
    }),
    /** C19: a tool call of the running turn waits for the user. */
    awaitApproval: assign(({ context, event }) =>
      event.type === 'approval.request' && !context.approvals.some((a) => a.id === event.callId)
        ? { approvals: [...context.approvals, { id: event.callId, expiresAt: event.expiresAt }] }
        : {},
    ),
    /** The decision settles the call: the host runs the tool or gives it its denied result. */
    decideApproval: enqueueActions(({ context, event, enqueue }) => {
      if (event.type === 'permission') {
        const { id, allowed, reason } = event.decision;
        enqueue.assign({ approvals: context.approvals.filter((a) => a.id !== id) });
        enqueue.emit({ type: 'approval.decided', callId: id, allowed, ...(reason !== undefined && { reason }) });
        receipt(enqueue, { status: 'accepted' });
      } else if (event.type === 'approval.timeout') {
        enqueue.assign({ approvals: context.approvals.filter((a) => a.id !== event.callId) });
        enqueue.emit({ type: 'approval.decided', callId: event.callId, allowed: false, timedOut: true });
      }
    }),
    /** Too late: the deadline denies the call now, and the decision is refused. */
    expireApproval: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'permission') return;
      const { id } = event.decision;
      enqueue.assign({ approvals: context.approvals.filter((a) => a.id !== id) });
      enqueue.emit({ type: 'approval.decided', callId: id, allowed: false, timedOut: true });
      receipt(enqueue, { status: 'rejected', code: 'INVALID_MESSAGE', message: `permission request "${id}" expired before this decision came` });
    }),
    noteSchedules: assign(({ event }) => (event.type === 'schedules' ? { schedules: event.schedules.map(({ id, dueAt }) => ({ id, dueAt })) } : {})),
    withdrawApproval: assign(({ context, event }) =>
      event.type === 'approval.withdraw' ? { approvals: context.approvals.filter((a) => a.id !== event.callId) } : {},
    ),
    acceptSteering: assign(({ context }) => (context.turn ? { turn: { ...context.turn, steering: true } } : {})),
    /** The agent pulled a steered input: it now belongs to this turn. */
    takeSteered: assign(({ context, event }) => {
      const turn = context.turn;
      if (event.type !== 'agent.pulled' || turn === null) return {};
      const input = turn.steered.find((i) => i.id === event.inputId);
      if (!input) return {};
      const steered = turn.steered.filter((i) => i !== input);
      return { turn: { ...turn, inputs: [...turn.inputs, input], steered } };
    }),

    /** Every command is acknowledged; `/stop` acts at once (in the transition), the rest wait for the lane. */
    admitCommand: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'command') return;
      // Commands wait too: they count against the cap (/stop never waits, so never refused).
      if (event.command.name !== 'stop' && pending(context) + context.commands.length >= context.settings.backlogCap) {
        receipt(enqueue, { status: 'rejected', code: 'SESSION_BUSY', message: 'too many commands and inputs are waiting' });
        return;
      }
      receipt(enqueue, { status: 'accepted', mode: 'command' });
      if (event.command.name === 'stop') return;
      if (context.settings.commandLane === 'ordered') {
        enqueue.assign({ queue: [...context.queue, { kind: 'command', command: event.command }] });
      } else {
        enqueue.assign({ commands: [...context.commands, event.command] });
      }
    }),
    runBuiltin: enqueueActions(({ context, enqueue }) => {
      const command = nextCommand(context);
      if (command === undefined) return;
      enqueue.assign(dequeueCommand(context));
      out(enqueue, { type: 'message', data: { id: `${command.id}:reply`, role: 'system', content: builtinReply(command, context) } });
    }),
    startCommand: enqueueActions(({ context, enqueue }) => {
      const command = nextCommand(context);
      if (command === undefined) return;
      enqueue.assign({ ...dequeueCommand(context), command });
      enqueue.emit({ type: 'command.run', command });
    }),
    finishCommand: enqueueActions(({ context, event, enqueue }) => {
      const command = context.command;
      if (command === null) return;
      if (event.type === 'command.done' && event.text) {
        out(enqueue, { type: 'message', data: { id: `${command.id}:reply`, role: 'system', content: event.text } });
      } else if (event.type === 'command.error') {
        const code = event.code ?? 'INTERNAL_ERROR';
        out(enqueue, { type: 'error', data: { code, message: `/${command.name} failed: ${event.message}`, event_id: command.id } });
      }
      enqueue.assign({ command: null });
    }),

    /**
     * Shutdown (C14): nothing new starts. Waiting inputs are cancelled and reported — or,
     * with `keep` (a durable store), kept in order for the next start. Commands are not
     * durable: they are always cancelled and reported.
     */
    beginDrain: enqueueActions(({ context, event, enqueue }) => {
      const keep = event.type === 'shutdown' && event.keep === true;
      const waiting: Work[] = [...context.batch.map((input) => ({ kind: 'input' as const, input })), ...context.queue];
      const kept = keep ? waiting.filter((w) => w.kind === 'input') : [];
      const cancelled = [...inputIds(keep ? waiting.filter((w) => w.kind === 'command') : waiting), ...context.commands.map((c) => c.id)];
      enqueue.assign({ draining: true, batch: [], queue: kept, commands: [], cancelled: [...context.cancelled, ...cancelled] });
    }),
    /** Drain time is up and the store keeps the turn: stop the agent, keep the turn to re-run. */
    abortAgent: emit(({ context }) => ({ type: 'turn.abort' as const, turnId: context.turn?.id ?? 0 })),
    undrain: assign({ draining: false, drained: false }),
    /**
     * Restored mid-turn: the turn's inputs become the batch again and the turn re-runs. Its
     * old agent died with the process; the abort makes sure of it if one is still around.
     */
    requeueTurn: enqueueActions(({ context, enqueue }) => {
      const turn = context.turn;
      if (turn === null) return;
      enqueue.emit({ type: 'turn.abort', turnId: turn.id });
      enqueue.assign({ batch: turn.inputs, queue: [...unpulled(turn), ...context.queue], turn: null });
    }),
    /**
     * Restored while a command ran: it may have finished before the crash, and commands are
     * not in the durable inbox, so it is not run again — the client is told to.
     */
    abandonCommand: enqueueActions(({ context, enqueue }) => {
      const command = context.command;
      if (command === null) return;
      const message = `/${command.name} was interrupted by a restart; send it again if it is still wanted`;
      out(enqueue, { type: 'error', data: { code: 'INTERNAL_ERROR', message, event_id: command.id } });
      enqueue.assign({ command: null });
    }),
    /** Drain time is up: the running turn is aborted. */
    abortForShutdown: enqueueActions(({ context, enqueue }) => {
      const turn = context.turn;
      if (turn === null) return;
      enqueue.emit({ type: 'turn.abort', turnId: turn.id });
      const cancelled = [...context.cancelled, ...turn.steered.map((i) => i.id)];
      endTurn(enqueue, turn, { reason: 'shutdown', cancelled });
      enqueue.assign({ turn: null, cancelled: [] });
    }),
    dropCommand: assign({ command: null }),
    finishDrain: enqueueActions(({ context, enqueue }) => {
      if (context.cancelled.length > 0) cancelDone(enqueue, 'shutdown', context.cancelled);
      enqueue.assign({ cancelled: [], drained: true });
      enqueue.emit({ type: 'drained' });
    }),
  },
}).createMachine({
  id: 'session',
  context: ({ input }) => ({
    sessionId: input.sessionId,
    settings: input.settings,
    batch: [],
    queue: [],
    commands: [],
    turn: null,
    command: null,
    turns: 0,
    draining: false,
    drained: false,
    cancelled: [],
    approvals: [],
    sealAt: null,
    schedules: [],
  }),
  initial: 'created',
  states: {
    // Activating (loading from a store): inputs wait, commands queue, /stop still works.
    created: {
      entry: 'announceCreated',
      on: {
        activate: { target: 'running', actions: 'announceIdle' },
        input: [{ guard: 'backlogFull', actions: 'rejectBusy' }, { actions: 'addToQueue' }],
        command: [{ guard: 'isStop', actions: ['admitCommand', 'stopAll'] }, { actions: 'admitCommand' }],
        stop: { actions: 'stopAll' },
        terminate: { target: 'terminated', actions: 'stopAll' },
        delete: { target: 'deleted', actions: 'stopAll' },
        shutdown: { actions: ['beginDrain', 'finishDrain'] },
        permission: { actions: 'rejectDecision' },
      },
    },
    // The command lane (C5) lives in context, not in a parallel region: a user command is
    // running while `context.command` is set, and the lane's eventless transitions start
    // the next one when it is free. (A parallel region cost a fifth of every step.)
    running: {
      initial: 'idle',
      always: [
        { guard: 'drainComplete', actions: 'finishDrain' },
        { guard: 'builtinDue', actions: 'runBuiltin' },
        { guard: 'commandDue', actions: 'startCommand' },
      ],
      on: {
        // Every command is acknowledged; /stop acts in the state it finds (below).
        command: { actions: 'admitCommand' },
        'command.done': { guard: 'isCurrentCommand', actions: 'finishCommand' },
        'command.error': { guard: 'isCurrentCommand', actions: 'finishCommand' },
        terminate: { target: 'terminated', actions: 'stopAll' },
        delete: { target: 'deleted', actions: 'stopAll' },
        shutdown: { actions: 'beginDrain' },
        'shutdown.abort': { actions: 'dropCommand' },
        // Restored: a command that was running may have finished before the crash.
        resume: { actions: ['undrain', 'abandonCommand'] },
        // No turn waits for a decision here (busy answers the ones that do).
        permission: { actions: 'rejectDecision' },
        schedules: { actions: 'noteSchedules' },
      },
      states: {
        // Split by what the lane holds, so the `quiescent` tag is exact: the host passivates on
        // the tag alone, and a running command or held work must not look idle.
        idle: {
          initial: 'quiet',
          always: { guard: 'turnDue', target: 'busy', actions: 'takeFromQueue' },
          on: {
            input: [
              { guard: 'backlogFull', actions: 'rejectBusy' },
              { guard: 'behindCommand', actions: 'addToQueue' },
              { guard: 'batchingOff', target: 'busy', actions: 'addToBatch' },
              { target: 'collecting', actions: 'addToBatch' },
            ],
            command: { guard: 'isStop', actions: ['admitCommand', 'stopAll'] },
            stop: { actions: 'stopAll' },
          },
          states: {
            // Nothing runs and nothing waits.
            quiet: { tags: ['quiescent'], always: { guard: 'holdsWork', target: 'occupied' } },
            // A command runs beside, or work is held while the session drains.
            occupied: { always: { guard: not('holdsWork'), target: 'quiet' } },
          },
        },
        // C3: sealed `debounce` after the latest input or `maxWait` after the first.
        collecting: {
          initial: 'debouncing',
          after: { maxWait: 'busy' },
          on: {
            command: [
              { guard: 'isStop', target: 'idle', actions: ['admitCommand', 'stopAll'] },
              // Ordered lane: later inputs must not overtake the command, so the batch seals now.
              { guard: 'orderedLane', target: 'busy', actions: 'admitCommand' },
            ],
            stop: { target: 'idle', actions: 'stopAll' },
            // The open batch is cancelled or kept: a drained session must not seal it later.
            shutdown: { target: 'idle', actions: 'beginDrain' },
            // Restored: XState does not re-arm the batch's timers; re-entering arms them again
            // from the stored deadlines (sealing at once if they passed while it was down).
            resume: { target: 'collecting', reenter: true, actions: ['undrain', 'abandonCommand'] },
          },
          states: {
            debouncing: {
              after: { debounce: '#session.running.busy' },
              on: {
                input: [
                  { guard: 'backlogFull', actions: 'rejectBusy' },
                  // Re-enter only this child: the max-wait timer on the parent keeps running.
                  { target: 'debouncing', reenter: true, actions: 'addToBatch' },
                ],
              },
            },
          },
        },
        // C1: exactly one turn in flight; nothing here starts another one.
        busy: {
          tags: ['busy'],
          entry: 'startTurn',
          initial: 'working',
          states: {
            working: { always: { guard: 'awaitingApproval', target: 'waiting' } },
            // C19: the turn waits for the user's decision on a tool call. The agent is parked,
            // so the session may passivate here; the decision brings it back.
            waiting: {
              tags: ['waiting-for-user'],
              always: { guard: not('awaitingApproval'), target: 'working' },
              initial: 'parked',
              // Split by the lane, like idle: a command running beside the parked turn must not
              // look quiescent, or passivation would cut it off.
              states: {
                parked: { tags: ['quiescent'], always: { guard: not('laneFree'), target: 'occupied' } },
                occupied: { always: { guard: 'laneFree', target: 'parked' } },
              },
              on: {
                // Nothing to drain: a durable store keeps the turn and its pending approval for
                // the next start; otherwise the wait ends now.
                shutdown: [
                  { guard: and(['keepWork', 'laneFree']), actions: ['beginDrain', 'finishDrain'] },
                  { target: '#session.running.idle', actions: ['beginDrain', 'abortForShutdown', 'announceIdle'] },
                ],
              },
            },
          },
          on: {
            'approval.request': { guard: 'isCurrentTurn', actions: 'awaitApproval' },
            permission: [
              { guard: 'isPendingApproval', actions: 'decideApproval' },
              { guard: 'isExpiredApproval', actions: 'expireApproval' },
              { actions: 'rejectDecision' },
            ],
            'approval.timeout': { guard: 'isPendingApproval', actions: 'decideApproval' },
            'approval.withdraw': { actions: 'withdrawApproval' },
            input: [
              { guard: 'backlogFull', actions: 'rejectBusy' },
              { guard: 'rejectWhenBusy', actions: 'rejectBusy' },
              { guard: 'canSteer', actions: 'steerInput' },
              { guard: 'interruptToNext', target: 'busy', reenter: true, actions: ['interruptTurn', 'takeFromQueue'] },
              { guard: 'interruptToIdle', target: 'idle', actions: ['interruptTurn', 'announceIdle'] },
              { actions: 'addToQueue' },
            ],
            'agent.delta': { guard: 'isCurrentTurn', actions: 'forwardDelta' },
            'agent.steering': { guard: 'isCurrentTurn', actions: 'acceptSteering' },
            'agent.pulled': { guard: 'isCurrentTurn', actions: 'takeSteered' },
            'agent.done': [
              { guard: and(['isCurrentTurn', 'turnDue']), target: 'busy', reenter: true, actions: ['completeTurn', 'takeFromQueue'] },
              { guard: 'isCurrentTurn', target: 'idle', actions: ['completeTurn', 'announceIdle'] },
            ],
            'agent.error': [
              { guard: and(['isCurrentTurn', 'turnDue']), target: 'busy', reenter: true, actions: ['failTurn', 'takeFromQueue'] },
              { guard: 'isCurrentTurn', target: 'idle', actions: ['failTurn', 'announceIdle'] },
            ],
            // C7: the host's turn timer ran out (armed with every `turn.start`, turnTimeoutMs).
            'agent.timeout': [
              { guard: and(['isCurrentTurn', 'turnDue']), target: 'busy', reenter: true, actions: ['timeOutTurn', 'takeFromQueue'] },
              { guard: 'isCurrentTurn', target: 'idle', actions: ['timeOutTurn', 'announceIdle'] },
            ],
            command: { guard: 'isStop', target: 'idle', actions: ['admitCommand', 'stopAll', 'announceIdle'] },
            stop: { target: 'idle', actions: ['stopAll', 'announceIdle'] },
            'shutdown.abort': [
              { guard: 'keepWork', actions: ['abortAgent', 'dropCommand'] },
              { target: 'idle', actions: ['abortForShutdown', 'dropCommand', 'announceIdle'] },
            ],
            // Restored mid-turn: the agent's work is lost with the process; run the turn again.
            resume: { target: 'busy', reenter: true, actions: ['undrain', 'abandonCommand', 'requeueTurn'] },
          },
        },
      },
    },
    // Nothing ever runs here again: a command still queued by the ordered lane never will.
    terminated: {
      tags: ['quiescent'],
      entry: 'announceTerminated',
      on: {
        permission: { actions: 'rejectDecision' },
        resume: { actions: 'undrain' },
        input: { actions: 'rejectTerminated' },
        command: { actions: 'rejectTerminated' },
        delete: 'deleted',
        shutdown: { actions: ['beginDrain', 'finishDrain'] },
      },
    },
    deleted: { type: 'final', entry: 'announceDeleted' },
  },
});

const BUILTINS = new Set(['status', 'help']);

/** The pending approval an approval event names, if any. */
function pendingOf(c: SessionContext, event: SessionMachineEvent): PendingApproval | undefined {
  const id = event.type === 'permission' ? event.decision.id : 'callId' in event ? event.callId : undefined;
  return id === undefined ? undefined : c.approvals.find((a) => a.id === id);
}

/**
 * A batch timer's delay: the setting, or — when `resume` re-arms a restored batch — what is
 * left of it at the stored deadline (none if that has passed; a snapshot stored without
 * deadlines seals at once, as it did before they were stored).
 */
function delay(context: SessionContext, event: SessionMachineEvent, timer: 'debounce' | 'maxWait'): number {
  const setting = timer === 'debounce' ? context.settings.debounceMs : context.settings.maxWaitMs;
  if (event.type !== 'resume') return setting;
  if (context.sealAt === null || event.at === undefined) return 0;
  // Never longer than the setting: a process whose clock is behind the one that stored the
  // deadline must not hold the batch for the difference.
  return Math.min(setting, Math.max(0, context.sealAt[timer] - event.at));
}

function leadingInputs(queue: readonly Work[]): number {
  const firstCommand = queue.findIndex((w) => w.kind === 'command');
  return firstCommand === -1 ? queue.length : firstCommand;
}

/** The command the lane may run now, if any. Ordered-lane commands wait for earlier work. */
function nextCommand(c: SessionContext): SessionCommand | undefined {
  if (c.draining) return undefined;
  if (c.commands[0] !== undefined) return c.commands[0];
  const head = c.queue[0];
  if (head?.kind === 'command' && c.turn === null && c.batch.length === 0 && c.command === null) return head.command;
  return undefined;
}

function dequeueCommand(c: SessionContext): Partial<SessionContext> {
  return c.commands.length > 0 ? { commands: c.commands.slice(1) } : { queue: c.queue.slice(1) };
}

function builtinReply(command: SessionCommand, c: SessionContext): string {
  if (command.name === 'status') {
    const state = c.turn !== null ? 'busy' : c.batch.length > 0 ? 'collecting' : 'idle';
    const waiting = c.approvals.length > 0 ? `; waiting for approval: ${c.approvals.map((a) => a.id).join(', ')}` : '';
    // Times as ISO strings: the runtime's clock is epoch milliseconds.
    const schedules = c.schedules.length > 0 ? `; schedules: ${c.schedules.map((s) => `${s.id} at ${new Date(s.dueAt).toISOString()}`).join(', ')}` : '';
    return `state: ${state}; backlog: ${pending(c)}; turns: ${c.turns}${waiting}${schedules}`;
  }
  const registered = c.settings.commandHelp.map((h) => `/${h.name} — ${h.description}`);
  return ['/stop — stop the running turn and clear the backlog', '/status — the session state and backlog size', '/help — this list', ...registered].join('\n');
}

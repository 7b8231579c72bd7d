import { describe, expect, it } from 'vitest';
import { createMachine, type AnyMachineSnapshot, type AnyStateMachine } from 'xstate';
import { sessionMachine, type SessionContext, type SessionMachineEvent, type SessionSettings } from '../../src/index.ts';
import { checkMachine, formatPath, type ModelCheckOptions, type ModelCheckReport, type Step } from '../../src/testing/index.ts';
import { settings } from '../machine-helpers.ts';
import { expectReadmeShows } from './readme.ts';

const ctx = (s: AnyMachineSnapshot) => s.context as SessionContext;
const outputs = (step: Step) => step.emitted.flatMap((e) => (e.type === 'output' ? [(e as unknown as { event: { type: string } }).event.type] : [e.type]));
const inputsOf = (s: AnyMachineSnapshot) => [...ctx(s).batch.map((i) => i.id), ...ctx(s).queue.flatMap((w) => (w.kind === 'input' ? [w.input.id] : []))];

/** Events to try in a state: everything the machine knows, tagged with the live turn and command ids and with stale ones. */
function sessionEvents(s: AnyMachineSnapshot): SessionMachineEvent[] {
  const c = ctx(s);
  const turnId = c.turn?.id ?? 1;
  const n = c.turns + c.batch.length + c.queue.length;
  return [
    { type: 'activate' },
    { type: 'input', input: { id: `i${n}`, content: 'hello' } },
    { type: 'command', command: { id: `c${n}`, name: 'status', args: '' } },
    { type: 'command', command: { id: `u${n}`, name: 'user', args: '' } },
    { type: 'command', command: { id: `s${n}`, name: 'stop', args: '' } },
    { type: 'stop' },
    { type: 'terminate' },
    { type: 'delete' },
    { type: 'shutdown' },
    { type: 'shutdown.abort' },
    { type: 'shutdown', keep: true },
    { type: 'shutdown.abort', keep: true },
    { type: 'agent.delta', turnId, text: 'x' },
    { type: 'agent.steering', turnId },
    { type: 'agent.pulled', turnId, inputId: c.turn?.steered[0]?.id ?? 'none' },
    { type: 'agent.done', turnId, text: 'ok' },
    { type: 'agent.error', turnId, message: 'boom' },
    { type: 'agent.timeout', turnId },
    { type: 'agent.done', turnId: 0 },
    { type: 'command.done', commandId: c.command?.id ?? 'none', text: 'done' },
    { type: 'command.error', commandId: c.command?.id ?? 'none', message: 'failed' },
    // C19: one never asked, anywhere; and, while a turn runs, a call asks, the user decides the
    // pending one, its deadline passes, or a re-run withdraws it.
    { type: 'permission', decision: { id: 'call_9_9', allowed: true } },
    ...approvalEvents(c, turnId),
    // C20: the host lists the schedules; a restore re-arms a batch's deadlines.
    { type: 'schedules', schedules: [{ id: 'x', dueAt: 1 }] },
    { type: 'resume', at: 0 },
  ];
}

function approvalEvents(c: SessionContext, turnId: number): SessionMachineEvent[] {
  if (c.turn === null) return [{ type: 'approval.request', turnId, callId: 'call_0_1', expiresAt: 10 }]; // no turn: ignored
  const pending = c.approvals[0]?.id;
  return [
    ...(c.approvals.length < 2 ? [{ type: 'approval.request' as const, turnId, callId: `call_${turnId}_${c.approvals.length + 1}`, expiresAt: 10 }] : []),
    ...(pending === undefined
      ? []
      : [
          { type: 'permission' as const, decision: { id: pending, allowed: true }, at: 5 },
          { type: 'permission' as const, decision: { id: pending, allowed: true }, at: 10 }, // too late
          { type: 'approval.timeout' as const, callId: pending },
          { type: 'approval.withdraw' as const, callId: pending },
        ]),
  ];
}

/** A `done` among a step's outputs. */
function outputsDone(emitted: readonly { type: string }[]): boolean {
  return emitted.some((e) => e.type === 'output' && (e as unknown as { event: { type: string } }).event.type === 'done');
}

/** Two snapshots are the same state when they agree on everything but ids and counters. */
function abstractSession(s: AnyMachineSnapshot): string {
  const c = ctx(s);
  return JSON.stringify({
    value: s.value,
    batch: Math.min(c.batch.length, 3),
    queue: c.queue.slice(0, 3).map((w) => w.kind[0]).join('') + (c.queue.length > 3 ? '+' : ''),
    commands: Math.min(c.commands.length, 2),
    turn: c.turn && { steering: c.turn.steering, steered: Math.min(c.turn.steered.length, 2) },
    command: c.command !== null,
    draining: c.draining,
    drained: c.drained,
    cancelled: c.cancelled.length > 0,
    approvals: Math.min(c.approvals.length, 2),
    settings: c.settings,
  });
}

const inputs: { sessionId: string; settings: SessionSettings }[] = [
  settings({ backlogCap: 2 }),
  settings({ commandLane: 'ordered', backlogCap: 2 }),
  settings({ debounceMs: 0, busyPolicy: 'interrupt', commandLane: 'ordered', backlogCap: 3 }),
  settings({ debounceMs: 0, busyPolicy: 'steer', backlogCap: 3 }),
  settings({ debounceMs: 0, busyPolicy: 'reject', backlogCap: 2 }),
  settings({ debounceMs: 0, busyPolicy: 'followup', commandLane: 'ordered', backlogCap: 3 }),
].map((s) => ({ sessionId: 's', settings: s }));

/** The invariants that matter for the session machine. */
export const sessionInvariants: Pick<ModelCheckOptions, 'invariants' | 'stepInvariants'> = {
  invariants: {
    'busy exactly when a turn is held': (s) => s.matches({ running: 'busy' }) === (ctx(s).turn !== null),
    'collecting exactly when a batch is open': (s) => s.matches({ running: 'collecting' }) === (ctx(s).batch.length > 0),
    // C11: the runtime passivates on the `quiescent` tag alone, so it must never hide work —
    // except a turn parked on the user's decision (C19), which re-runs from its journal.
    'quiescent (the tag) only where nothing runs and no input waits, or a turn waits for the user': (s) =>
      !s.hasTag('quiescent') ||
      (s.matches({ running: { busy: 'waiting' } }) && ctx(s).approvals.length > 0 && ctx(s).command === null) ||
      (ctx(s).turn === null && inputsOf(s).length === 0 && (s.matches('terminated') || (ctx(s).command === null && ctx(s).queue.length === 0 && ctx(s).commands.length === 0))),
    // C19: approvals belong to a running turn, and waiting is exactly having one to decide.
    'approvals only while busy': (s) => ctx(s).approvals.length === 0 || s.matches({ running: 'busy' }),
    'waiting for the user exactly when an approval is pending': (s) =>
      s.matches({ running: { busy: 'waiting' } }) === (ctx(s).approvals.length > 0 && s.matches({ running: 'busy' })),
    'idle with nothing running or waiting is quiescent': (s) =>
      !s.matches({ running: 'idle' }) || ctx(s).command !== null || ctx(s).commands.length > 0 || ctx(s).queue.length > 0 || ctx(s).batch.length > 0 || s.hasTag('quiescent'),
    'busy (the tag) exactly when a turn runs': (s) => s.hasTag('busy') === (ctx(s).turn !== null),
  },
  stepInvariants: {
    'never two turns in flight': (step) => {
      let inFlight = ctx(step.from).turn !== null;
      for (const effect of outputs(step)) {
        if (effect === 'turn.start') {
          if (inFlight) return false;
          inFlight = true;
        }
        if (effect === 'done') inFlight = false;
        // A restored turn is aborted and re-run, never reported done: its inputs land in one done only.
        if (effect === 'turn.abort' && step.event.type === 'resume') inFlight = false;
      }
      return true;
    },
    'a sealed batch never grows': ({ from, event, to }) => {
      const before = ctx(from).turn;
      const after = ctx(to).turn;
      if (!before || !after || before.id !== after.id) return true;
      const allowed = before.inputs.length + (event.type === 'agent.pulled' ? 1 : 0);
      return after.inputs.length <= allowed;
    },
    // C19: a turn that ends owes no decision; a decision is only ever for a pending call, and only once.
    'an ended turn leaves no approvals': ({ to, emitted }) => !outputsDone(emitted) || ctx(to).turn !== null || ctx(to).approvals.length === 0,
    'a decision only for a pending call, and a refusal changes nothing': ({ from, event, to, emitted }) => {
      const decided = emitted.filter((e) => e.type === 'approval.decided') as unknown as { callId: string }[];
      if (decided.length > 1) return false;
      if (decided.some((d) => !ctx(from).approvals.some((a) => a.id === d.callId))) return false;
      const decision = event.type === 'permission' ? (event as Extract<SessionMachineEvent, { type: 'permission' }>).decision : undefined;
      if (!decision) return true;
      const pending = ctx(from).approvals.find((a) => a.id === decision.id);
      // Too late: refused, and the deadline's denial is the only decision.
      if (pending && decided.length === 1 && (decided[0] as unknown as { allowed: boolean }).allowed) {
        const at = (event as { at?: number }).at;
        if (at !== undefined && at >= pending.expiresAt) return false;
      }
      if (pending) return true;
      const receipt = emitted.find((e) => e.type === 'receipt') as unknown as { receipt: { status: string; code?: string } } | undefined;
      return receipt?.receipt.status === 'rejected' && receipt.receipt.code === 'INVALID_MESSAGE' && to.context === from.context;
    },
    '/stop always reaches idle with nothing waiting': ({ from, event, to }) => {
      const isStop = event.type === 'stop' || (event.type === 'command' && (event as SessionMachineEvent & { type: 'command' }).command.name === 'stop');
      if (!isStop || !from.matches('running')) return true;
      return to.matches({ running: 'idle' }) && inputsOf(to).length === 0;
    },
    'no accepted input is lost': ({ from, event, to, emitted }) => {
      // Every input waiting before the step is still waiting, in the turn, or reported in a done.
      const reported = new Set(
        emitted.flatMap((e) => {
          const out = (e as { event?: { type: string; data: { input_ids?: string[]; cancelled_input_ids?: string[] } } }).event;
          return out?.type === 'done' ? [...(out.data.input_ids ?? []), ...(out.data.cancelled_input_ids ?? [])] : [];
        }),
      );
      const kept = new Set([...inputsOf(to), ...(ctx(to).turn?.inputs.map((i) => i.id) ?? []), ...(ctx(to).turn?.steered.map((i) => i.id) ?? []), ...ctx(to).cancelled]);
      const before = [...inputsOf(from), ...(ctx(from).turn?.inputs.map((i) => i.id) ?? []), ...(ctx(from).turn?.steered.map((i) => i.id) ?? [])];
      return event.type === 'delete' || before.every((id) => kept.has(id) || reported.has(id));
    },
  },
};

function check(machine: AnyStateMachine) {
  return checkMachine(machine, {
    name: 'session',
    inputs,
    events: sessionEvents,
    serializeState: abstractSession,
    maxDepth: 14,
    // Approvals (C19) double the states a turn can be in.
    limit: 80_000,
    ...sessionInvariants,
  });
}

describe('model check: session machine', () => {
  // The walk takes seconds: run once, read by both tests below.
  let checked: ModelCheckReport | undefined;
  const sessionReport = () => (checked ??= check(sessionMachine));

  it('reaches every state and transition, and every invariant holds', () => {
    const report = sessionReport();
    console.log(report.summary);
    expect(report.violations.map(formatPath)).toEqual([]);
    expect(report.transitions.missing).toEqual([]);
    expect(report.states.missing).toEqual([]);
  });

  it('is reported in the README exactly as printed', () => {
    expectReadmeShows(sessionReport());
  });

  it('catches a planted bug: a transition that starts a turn from busy', () => {
    // A copy of the machine where an input during a turn re-enters busy, starting a second turn.
    const config = sessionMachine.config as { states: Record<string, any> };
    const running = config.states.running;
    const busy = running.states.busy;
    const broken = createMachine(
      {
        ...config,
        states: {
          ...config.states,
          running: {
            ...running,
            states: {
              ...running.states,
              busy: { ...busy, on: { ...busy.on, input: [{ target: 'busy', reenter: true, actions: 'addToBatch' }, ...busy.on.input] } },
            },
          },
        },
      } as never,
      sessionMachine.implementations as never,
    );
    const report = check(broken);
    const caught = report.violations.find((v) => v.invariant === 'never two turns in flight');
    expect(caught).toBeDefined();
    console.log(`planted bug caught — ${formatPath(caught!)}`);
    expect(caught!.path.at(-1)?.event).toBe('input');
  });
});

import type { AnyMachineSnapshot, AnyStateMachine, EventObject } from 'xstate';
import type { DoneData } from '../../machines/events.ts';
import type { InboxEntry, TranscriptEntry } from './store.ts';
import type { Clock } from './clock.ts';

/**
 * A kind of session: the machine that runs it and how the runtime talks to it. Baton has
 * two (`agent`, the default, and `onboarding`); register your own with the `kinds` option.
 *
 * The machine speaks a small protocol with the runtime:
 * - it receives `{ type: 'input', input: { id, content, metadata?, questionId? } }` for each
 *   input, and must emit `{ type: 'receipt', receipt: { status: 'accepted' | 'rejected', mode?, code?, message? } }`
 *   while handling it (an input that produces no receipt is rejected as `INVALID_MESSAGE`);
 * - it emits `{ type: 'output', event: { type, data } }` for every session event (AEP
 *   vocabulary); the runtime numbers them (C8) and publishes them;
 * - it may handle `activate` (sent right after start), `start`, `stop`, `terminate`, `delete`
 *   (reaching a final state removes the session) and `shutdown` (emit `{ type: 'drained' }`
 *   when nothing runs any more; otherwise it is stopped when `drainMs` is up).
 *
 * @example
 * const echoKind: SessionKind = {
 *   machine: echoMachine,            // a machine that follows the protocol above
 *   input: (sessionId) => ({ sessionId }),
 * };
 * createRuntime({ agent, kinds: { echo: echoKind } }).open('s1', { kind: 'echo' });
 */
export interface SessionKind {
  readonly machine: AnyStateMachine;
  /** The machine's `input` for a new session. */
  input(sessionId: string): unknown;
  /**
   * Parse inputs starting with the command prefix as commands (`{ type: 'command', command: { id, name, args } }`).
   * @default false
   */
  readonly commands?: boolean;
  /**
   * Accept `question_response` answers (`runtime.respond`), sent as inputs with a `questionId`.
   * @default false
   */
  readonly answers?: boolean;
  /** Runs effects of the machine other than output/receipt/drained; one driver per session. */
  driver?(session: DriverContext): KindDriver;
  /**
   * The ids of the inputs a snapshot holds (waiting or in a turn). After a crash, inputs in
   * the durable inbox that the saved snapshot does not hold are sent again, in order.
   * @default none: every unconsumed input is sent again
   */
  holds?(snapshot: AnyMachineSnapshot): readonly string[];
  /** Summarises a snapshot. @default the state value, backlog 0, turns 0 */
  status?(snapshot: AnyMachineSnapshot): { state: string; backlog: number; turns: number };
}

/** What a kind's driver may do with its session. */
export interface DriverContext {
  readonly sessionId: string;
  /** The machine input {@link SessionKind.input} made for this session. */
  readonly input: unknown;
  /** Sends an event to the session's actor. */
  dispatch(event: EventObject): void;
  /**
   * The content and metadata of an accepted input the session holds, by id. Machines keep
   * input ids in their context, not what the client sent: XState revives context values
   * shaped like actor references when it restores a snapshot.
   */
  payload(inputId: string): InboxEntry | undefined;
  /** Runs `task` after the actor's current step (never call user code while it processes). */
  defer(task: () => void): void;
  now(): number;
  /** The runtime's clock (simulated in tests); its callbacks run like any event, after the step. */
  readonly clock: Clock;
}

export interface KindDriver {
  /** Called while the actor processes: record, and `defer` anything that calls out. */
  effect(effect: EventObject): void;
  /**
   * A `done` is being emitted: end the running turn, if any. Returns its duration in ms and
   * the transcript entries it adds, which are stored with the rest of the step.
   */
  closeTurn?(done: Omit<DoneData, 'stats'>): { durationMs: number; transcript?: readonly TranscriptEntry[] };
  /** The session is being stopped: abort what runs. */
  stop(): void;
}

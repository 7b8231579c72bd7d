import type { AnyStateMachine, EmittedFrom, EventFromLogic, EventObject, SnapshotFrom } from 'xstate';
import type { DoneData, MachineOutput } from '../../machines/events.ts';
import type { InboxEntry, ScheduleRecord, TranscriptEntry } from './store.ts';
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
 *   when nothing runs any more; otherwise it is stopped when `drainMs` is up);
 * - its states carry tags ({@link SessionTags}) that tell the runtime what the session is
 *   doing; the runtime reads these, never state names:
 *   - `quiescent`: nothing runs and nothing waits — no turn, no invoked actor, no timer, no
 *     input or command the machine would take up without a new event from outside. The
 *     runtime passivates a session in such a state (snapshot saved, actor stopped) after
 *     `idleTimeoutMs`, or earlier to stay under `maxLiveSessions`; its next input brings it
 *     back. The tag alone decides, so a state that may hold work must not carry it: split
 *     it (the agent kind's `running.idle` has `quiet` and `occupied` children). A kind
 *     without the tag is never passivated;
 *   - `busy`: a turn or an analysis runs (status `busy: true`; on the wire `running`);
 *   - `waiting-for-user`: the session has asked the user something and waits for the
 *     answer (status `waitingForUser: true`).
 *
 * @example
 * const echoKind: SessionKind = {
 *   machine: echoMachine,            // a machine that follows the protocol above
 *   input: (sessionId) => ({ sessionId }),
 * };
 * createRuntime({ agent, kinds: { echo: echoKind } }).open('s1', { kind: 'echo' });
 */
/**
 * The state tags of the {@link SessionKind} protocol, by name. Tag a machine's states with
 * these strings (machines stay free of runtime imports, so they spell them out).
 *
 * @example
 * setup({}).createMachine({
 *   initial: 'asking',
 *   states: {
 *     asking: { tags: ['waiting-for-user', 'quiescent'], on: { input: 'scoring' } },
 *     scoring: { tags: ['busy'], invoke: { src: 'score', onDone: 'rated' } },
 *     rated: { tags: ['quiescent'] },
 *   },
 * });
 */
export const SessionTags = {
  /** Nothing runs and nothing waits: the runtime may passivate the session. */
  quiescent: 'quiescent',
  /** A turn or an analysis runs. */
  busy: 'busy',
  /** A question is asked and the session waits for the user's answer. */
  waitingForUser: 'waiting-for-user',
} as const;

export type SessionTag = (typeof SessionTags)[keyof typeof SessionTags];

/**
 * Generic over its machine: a kind's driver, `holds` and `status` see that machine's own
 * events, emitted effects and snapshots, type-checked (`SessionKind<typeof myMachine>`).
 */
export interface SessionKind<TMachine extends AnyStateMachine = AnyStateMachine> {
  readonly machine: TMachine;
  /** The machine's `input` for a new session. */
  input(sessionId: string): unknown;
  /**
   * Parse inputs starting with the command prefix as commands (`{ type: 'command', command: { id, name, args } }`).
   * @default false
   */
  readonly commands?: boolean;
  /**
   * Take schedules (C20): they fire as inputs (`timer:<id>:<due time>`, typed `kind: 'timer'`
   * for an agent), so only a kind whose inputs are messages may say yes.
   * @default false
   */
  readonly schedules?: boolean;
  /**
   * Accept `question_response` answers (`runtime.respond`), sent as inputs with a `questionId`.
   * @default false
   */
  readonly answers?: boolean;
  /** Runs effects of the machine other than output/receipt/drained; one driver per session. */
  driver?(session: DriverContext<EventFromLogic<TMachine>>): KindDriver<EmittedFrom<TMachine>>;
  /**
   * The ids of the inputs a snapshot holds (waiting or in a turn). After a crash, inputs in
   * the durable inbox that the saved snapshot does not hold are sent again, in order.
   * @default none: every unconsumed input is sent again
   */
  holds?(snapshot: SnapshotFrom<TMachine>): readonly string[];
  /**
   * Configuration never lives in a stored snapshot: `persist` takes it (and process-local
   * flags) out of a persisted snapshot before it is stored, and `restore` puts the runtime's
   * current configuration — from this activation's {@link SessionKind.input} — back in
   * before the snapshot is restored. So a restart with new settings applies them.
   * @default stored and restored as they are
   */
  persist?(snapshot: PersistedSnapshot): PersistedSnapshot;
  /**
   * The version of this kind's machine, stored with every snapshot. Raise it when a change
   * of the machine makes old snapshots wrong (states renamed or removed, context reshaped).
   * @default 1
   */
  readonly version?: number;
  /**
   * Turns a snapshot stored by an older `version` into one of this version; `undefined` if it
   * cannot. Without it (or when it gives up) the session is rebuilt: a fresh machine that
   * keeps its seq, its transcript and its durable inbox, whose waiting inputs run again.
   * @default none: rebuild
   */
  migrate?(snapshot: PersistedSnapshot, fromVersion: number): PersistedSnapshot | undefined;
  restore?(snapshot: PersistedSnapshot, input: unknown): PersistedSnapshot;
  /**
   * When a session in this snapshot must run again though nothing is sent to it — the
   * earliest deadline its driver keeps a timer for (an approval that runs out). The runtime
   * stores it with the step, so a passivated session is activated at that time (or at its
   * next start, if that is later) and its driver's timer fires there. A time that is not a
   * finite number (NaN, Infinity) is no wake; a fraction is taken down to the whole ms.
   * @default never: a passivated session runs again only when something is sent to it
   */
  wakeAt?(snapshot: SnapshotFrom<TMachine>): number | undefined;
  /**
   * Outputs that close what a crash (or a shutdown that kept the work) cut off in a restored
   * snapshot — an open reply, a turn without its `done` — published before the session
   * resumes, so no turn on the wire is left open when the work runs again.
   * @default none
   */
  interrupted?(snapshot: SnapshotFrom<TMachine>): readonly MachineOutput[];
  /**
   * Summarises a snapshot for `runtime.status`: a name for its state, the inputs waiting, the
   * turns taken. `busy` and `waitingForUser` come from the state's tags, whatever this says.
   * @default the state value as a string (JSON for a nested one), backlog 0, turns 0
   */
  status?(snapshot: SnapshotFrom<TMachine>): { state: string; backlog: number; turns: number };
}

/** A persisted XState snapshot as the store keeps it (JSON-safe). */
export interface PersistedSnapshot {
  readonly context?: unknown;
  readonly [key: string]: unknown;
}

/** What a kind's driver may do with its session. */
export interface DriverContext<TEvent extends EventObject = EventObject> {
  readonly sessionId: string;
  /** The machine input {@link SessionKind.input} made for this session. */
  readonly input: unknown;
  /** Sends an event to the session's actor. */
  dispatch(event: TEvent): void;
  /**
   * Emits an output the machine has already decided on, without a machine step: numbered,
   * committed and published like the machine's own. For output that changes nothing in the
   * machine — a streamed delta of a turn the machine opened and has not closed.
   */
  output(event: MachineOutput): void;
  /**
   * The content and metadata of an accepted input the session holds, by id. Machines keep
   * input ids in their context, not what the client sent: XState revives context values
   * shaped like actor references when it restores a snapshot.
   */
  payload(inputId: string): InboxEntry | undefined;
  /**
   * The newest entries of the session's transcript (up to the runtime's `historyWindow`),
   * oldest first: read from the store at activation, kept up to date by every closed turn.
   */
  history(): readonly TranscriptEntry[];
  /** Runs `task` after the actor's current step (never call user code while it processes). */
  defer(task: () => void): void;
  /**
   * What {@link KindDriver.journal} returned when the session was last stored, if it was
   * restored from a store: the driver's own state, which the machine's context must not hold.
   */
  readonly journal: unknown;
  /** The driver's journal changed: it is stored (with the snapshot) in the session's next commit. */
  journalChanged(): void;
  /** The session's schedules (C20), and setting (throws a typed error if the session refuses it) or cancelling one in its next step. */
  schedules(): readonly ScheduleRecord[];
  setSchedule(record: ScheduleRecord): void;
  cancelSchedule(id: string): boolean;
  now(): number;
  /** The runtime's clock (simulated in tests); its callbacks run like any event, after the step. */
  readonly clock: Clock;
}

export interface KindDriver<TEffect extends EventObject = EventObject> {
  /** Called while the actor processes: record, and `defer` anything that calls out. */
  effect(effect: TEffect): void;
  /**
   * A `done` is being emitted: end the running turn, if any. Returns its duration in ms and
   * the transcript entries it adds, which are stored with the rest of the step.
   */
  closeTurn?(done: Omit<DoneData, 'stats'>): { durationMs: number; transcript?: readonly TranscriptEntry[] };
  /** The session is being stopped: abort what runs. */
  stop(): void;
  /**
   * Work of the session runs outside the machine even though its state says `quiescent`
   * (the agent kind: a tool of a turn that waits for the user still runs): the runtime does
   * not passivate it now.
   * @default never
   */
  busy?(): boolean;
  /**
   * The driver's own durable state (JSON-safe), stored beside the snapshot whenever it
   * reports {@link DriverContext.journalChanged} and handed back on restore: the agent kind
   * keeps the running turn's tool calls here (C19). `undefined`: nothing to keep.
   */
  journal?(): unknown;
}

/** Per session actor system: the commit of the session's current step (see {@link whenCommitted}). */
const commitGates = new WeakMap<object, () => Promise<boolean>>();

/** @internal The host registers its session's actor system. */
export function registerCommitGate(system: object, committed: () => Promise<boolean>): void {
  commitGates.set(system, committed);
}

/**
 * Resolves `true` once the step now running in the session that owns `system` is committed,
 * `false` if its commit failed (the session is then stopped). XState starts an invoked actor
 * inside the step itself, before the output gate: an invoked effect that must not happen for
 * a step the store did not take (an LLM call, say) awaits this first (C16). Outside a
 * session it resolves `true` at once.
 *
 * @example
 * fromPromise(async ({ input, system, signal }) => {
 *   if (!(await whenCommitted(system))) throw new Error('not committed');
 *   return analyze(input, signal);
 * })
 */
export function whenCommitted(system: object): Promise<boolean> {
  return commitGates.get(system)?.() ?? Promise.resolve(true);
}

/** A persisted snapshot with some context fields replaced (undefined ones are not stored). */
export function withContext(snapshot: PersistedSnapshot, fields: Record<string, unknown>): PersistedSnapshot {
  return { ...snapshot, context: { ...(snapshot.context as object), ...fields } };
}

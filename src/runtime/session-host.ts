import { createActor, type AnyActor, type EventObject } from 'xstate';
import type { MachineOutput, MachineReceipt } from '../../machines/events.ts';
import type { Clock } from './clock.ts';
import type { InspectionObserver } from './options.ts';
import type { Dispatcher } from './dispatcher.ts';
import { registerCommitGate, SessionTags, type KindDriver, type PersistedSnapshot, type SessionKind } from './kind.ts';
import type { ScheduleSummary, SessionEvent, SessionStatus } from './types.ts';
import { RecentIds } from './recent-ids.ts';
import type { InboxEntry, LoadedSession, ScheduleRecord, StepRecord, StoredSession, TranscriptEntry } from './store.ts';
import { clientSchedules, MAX_SCHEDULES_PER_SESSION, nextDueAfter, RESERVED_SCHEDULE_PREFIX, WAKE_SCHEDULE_ID, wakeDue } from './schedule.ts';
import { InvalidMessageError, SessionTerminatedError, type BatonError } from '../errors.ts';
import { timerEntry } from './timer-input.ts';
import type { GroupCommit } from './group-commit.ts';
import { OutputGate } from './output-gate.ts';

export interface HostDeps {
  /** The dispatcher's wrapped clock: XState's timers run through it. */
  readonly clock: Clock;
  readonly now: () => number;
  readonly dispatcher: Dispatcher;
  readonly idempotencyWindow: number;
  /** How many transcript entries a turn sees as `turn.history`. */
  readonly historyWindow: number;
  readonly inspect?: InspectionObserver | undefined;
  /** Whether the store survives a crash: only then is every changed snapshot written. */
  readonly durable: boolean;
  publish(event: SessionEvent): void;
  /** User code threw (a deferred task): report it, never rethrow (C7). */
  report(error: unknown): void;
  /** A commit failed (C16): the session is stopped and nothing of its step was published. */
  failed(host: SessionHost, error: unknown): void;
  /** A step of the session was committed. */
  stored(host: SessionHost): void;
  /** Commits the steps of all sessions of one tick together. */
  readonly commits: GroupCommit;
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
 *
 * The output gate (C16): everything a step makes visible — its events, the work it starts
 * (an agent, a command), its receipts, a drain notice — waits in the step's outbox until
 * the step is committed, inputs it accepted included. A failed commit releases nothing:
 * the session stops and the runtime re-activates it from what was committed.
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
  /** What the steps since the last commit wrote and what they make visible (C16). */
  readonly #gate: OutputGate;
  /** The snapshot of the step being committed. */
  #committing: unknown;
  /** The last seq committed, and the last seq of the step being committed. */
  #committedSeq = 0;
  #committingSeq = 0;
  /** The next step writes the snapshot even to a store that is not durable (passivation, shutdown). */
  #checkpoint = false;
  #failed = false;
  /** The actor failed or reached its final state: its snapshot is not written again. */
  #ending: 'deleted' | 'failed' | undefined;
  /** The snapshot the store holds: a step that leaves it as it is (a delta) does not rewrite it. */
  #committed: unknown;
  #receipt: MachineReceipt | undefined;
  #stopped = false;
  #drained: (() => void) | undefined;
  readonly #loaded: LoadedSession | undefined;
  /** Restored from the store without its snapshot (another version, or unreadable): see #start. */
  readonly #rebuilt: boolean;
  /**
   * Ids in context, payloads beside it: the machine keeps only the ids of the inputs it
   * holds; their content and metadata wait here until a turn takes them. After a restore
   * they come from the durable inbox. (Client data in context would go through XState's
   * actor revival on restore.)
   */
  readonly #payloads = new Map<string, InboxEntry>();
  /** The transcript's newest entries, for `turn.history`. */
  #history: TranscriptEntry[];
  /** The driver's journal changed since the last commit: the next one writes the snapshot (it travels with it). */
  #journalChanged = false;
  /** The session's schedules (C20) as its steps left them, committed or on their way. */
  readonly #schedules: Map<string, ScheduleRecord>;
  /** When the kind wants the session run again though nothing comes (`SessionKind.wakeAt`), as stored. */
  #wake: number | undefined;

  /**
   * Creates the session, or — given what a store kept of it — restores it: from its saved
   * snapshot, re-running a turn the process lost and re-sending inputs the snapshot does
   * not hold yet (C11, C12).
   */
  constructor(id: string, kindName: string, kind: SessionKind, deps: HostDeps, loaded?: LoadedSession) {
    this.id = id;
    this.kindName = kindName;
    this.kind = kind;
    this.#deps = deps;
    // After the step, with every other session's steps of this tick: one transaction for all.
    this.#gate = new OutputGate(() => deps.commits.enqueue(this), deps.report);
    this.recent = new RecentIds(deps.idempotencyWindow);
    this.#history = [...(loaded?.history ?? [])];
    this.#schedules = new Map(clientSchedules(loaded?.schedules ?? []).map((s) => [s.id, s]));
    this.#wake = loaded?.schedules?.find((s) => s.id === WAKE_SCHEDULE_ID)?.dueAt;
    const input = kind.input(id);
    const options = { input, clock: deps.clock, ...(deps.inspect && { inspect: deps.inspect }) };
    const snapshot = loaded && restorable(kind, loaded.session, input);
    let actor: AnyActor | undefined;
    try {
      actor = snapshot === undefined ? undefined : createActor(kind.machine, { ...options, snapshot: snapshot as never });
    } catch {
      // A snapshot this machine cannot take (a state it no longer has): rebuilt below.
    }
    this.#rebuilt = loaded !== undefined && actor === undefined;
    this.#actor = actor ?? createActor(kind.machine, options);
    registerCommitGate(this.#actor.system, () => this.#gate.committed());
    this.#driver = kind.driver?.({
      sessionId: id,
      input,
      dispatch: (event) => this.#dispatch(event),
      output: (event) => {
        if (!this.#stopped) this.#report(event);
      },
      payload: (inputId) => this.#payloads.get(inputId),
      history: () => this.#history.slice(),
      defer: (task) => this.#gate.hold(task),
      journal: loaded === undefined || this.#rebuilt ? undefined : journalOf(loaded.session),
      schedules: () => this.schedules(),
      setSchedule: (record) => {
        const refusal = this.scheduleRefusal(record);
        if (refusal) throw refusal;
        this.setSchedule(record);
      },
      cancelSchedule: (id) => this.cancelSchedule(id),
      journalChanged: () => {
        if (this.#stopped) return;
        this.#journalChanged = true;
        this.#gate.touch();
      },
      now: deps.now,
      clock: deps.clock,
    });
    this.#actor.on('*', (effect: EventObject) => this.#record(effect));
    // Every root actor is observed: an unobserved actor error would kill the process.
    this.#actor.subscribe({
      // Reaching a final state (`deleted`) completes the actor — and so does stop(), which
      // passivation and shutdown use: only the first means the session is gone. Its end is
      // part of the step: the deletion is committed with it, and only then announced.
      complete: () => {
        if (this.#stopped || this.#ending) return;
        this.#ending = 'deleted';
        this.#gate.hold(() => this.#end());
      },
      error: (error: unknown) => {
        if (this.#stopped || this.#ending) return;
        // The last committed snapshot stays: the next activation starts from it.
        this.#ending = 'failed';
        const message = `session actor failed: ${error instanceof Error ? error.message : String(error)}`;
        this.#report({ type: 'error', data: { code: 'INTERNAL_ERROR', message } } as MachineOutput);
        this.#gate.hold(() => this.#end(error));
      },
    });
    this.#loaded = loaded;
  }

  /**
   * Starts the actor: activates a new session, or resumes a restored one. Separate from the
   * constructor so the runtime can register the session first — user code that runs during
   * the start (a subscriber that sends to this very session) must find it, not create another.
   */
  start(): void {
    // Idle from now, not from the clock's start: the first sweep must not passivate it at once.
    this.lastActive = this.#deps.now();
    const loaded = this.#loaded;
    if (!loaded) {
      this.#deps.dispatcher.run(() => {
        this.#actor.start();
        this.#actor.send({ type: 'activate' });
      });
      // A new session is stored at once, even if it has said nothing yet.
      if (this.#deps.durable) this.checkpoint();
      return;
    }
    // Everything a client saw was stored before it was sent: numbering goes on from there.
    this.#seq = loaded.lastSeq;
    this.#committedSeq = loaded.lastSeq;
    for (const entry of loaded.recent) this.recent.remember(entry.id, entry.content);
    // The snapshot holds ids only: the inputs' payloads come from the durable inbox, before
    // `resume` re-runs a turn that needs them.
    if (this.#driver) for (const entry of loaded.pending) this.#payloads.set(entry.id, entry);
    // Closed before the work runs again: the turn a crash cut off (the host's own report, it
    // closes no turn of the machine's).
    if (!this.#rebuilt) for (const output of this.kind.interrupted?.(this.#actor.getSnapshot()) ?? []) this.#report(output);
    this.#deps.dispatcher.run(() => {
      this.#actor.start();
      // A rebuilt session starts afresh and takes every waiting input again, in order.
      this.#actor.send(this.#rebuilt ? { type: 'activate' } : ({ type: 'resume', at: this.#deps.now() } as EventObject));
      const held = new Set(this.#rebuilt ? [] : (this.kind.holds?.(this.#actor.getSnapshot()) ?? []));
      for (const entry of loaded.pending) if (!held.has(entry.id)) this.offerStored({ type: 'input', input: entry } as EventObject, entry, 'after a restart');
    });
  }

  /**
   * An input already in the durable inbox — waiting at a restart, or mailed by another node
   * of a cluster — offered to the machine. Acknowledged once, it may be refused now: that is
   * said, and it leaves the inbox; it is never dropped silently.
   */
  offerStored(event: EventObject, entry: InboxEntry, when: string): void {
    const receipt = this.#offer(event, entry);
    if (receipt?.status === 'accepted') {
      this.recent.remember(entry.id, entry.content);
      if (!this.kind.holds) this.#gate.consume([entry.id]); // see send()
      return;
    }
    const code = receipt?.code ?? 'INVALID_MESSAGE';
    const message = `input "${entry.id}" could not be taken ${when}: ${receipt?.message ?? 'the session does not take it'}`;
    this.#report({ type: 'error', data: { code, message, event_id: entry.id } });
    // The host's own report, not the machine's: it must not close the turn `resume` just restarted.
    this.#report({ type: 'done', data: { success: false, dropped: false, reason: 'failed', input_ids: [], cancelled_input_ids: [entry.id] } });
  }

  /** Runs `fn` as one step: what it sends to the machine commits together. */
  step(fn: () => void): void {
    this.#deps.dispatcher.run(fn);
  }

  /** Mail a step took (a cluster): consumed with it if it was a command or a control. */
  took(mail: readonly string[], consumed: readonly string[]): void {
    this.#gate.take(mail);
    if (consumed.length > 0) this.#gate.consume(consumed);
  }

  /** Reports a problem of the session as its own error event, naming the input (`event_id`). */
  reportError(code: MachineReceipt['code'], message: string, eventId: string): void {
    this.#report({ type: 'error', data: { code: code ?? 'INVALID_MESSAGE', message, event_id: eventId } } as MachineOutput);
  }

  /** The session's schedules, earliest first (C20). */
  schedules(): ScheduleRecord[] {
    return [...this.#schedules.values()].sort((a, b) => a.dueAt - b.dueAt);
  }

  /** The earliest due time of its schedules and its wake, if any. */
  nextDue(): number | undefined {
    let next = this.#wake;
    for (const s of this.#schedules.values()) if (next === undefined || s.dueAt < next) next = s.dueAt;
    return next;
  }

  /**
   * Why the session may not take this schedule, if it may not (C20) — the one check for
   * `runtime.schedule`, `turn.schedule` and a kind's driver: a kind without schedules, an id
   * the runtime keeps for itself, a terminated session, a due time that fired already (its
   * input id is known, C10: setting it again would fire nothing), or a full session.
   */
  scheduleRefusal(record: ScheduleRecord): BatonError | undefined {
    if (!this.kind.schedules) return new InvalidMessageError(`session "${this.id}" (${this.kindName}) takes no schedules`);
    // A kind's driver sets schedules without parseSchedule: one named like the runtime's wake
    // would share its row, and come back from the store as a wake nothing clears.
    if (record.id.startsWith(RESERVED_SCHEDULE_PREFIX)) return new InvalidMessageError(`schedule.id may not start with "${RESERVED_SCHEDULE_PREFIX}": those are the runtime's`);
    if (this.status().state === 'terminated') return new SessionTerminatedError(this.id);
    if (this.recent.check(timerEntry({ id: record.id, dueAt: record.dueAt }).id, '') !== undefined) {
      return new InvalidMessageError(`schedule "${record.id}" fired for ${new Date(record.dueAt).toISOString()} already; give another time or id`);
    }
    if (!this.#schedules.has(record.id) && this.#schedules.size >= MAX_SCHEDULES_PER_SESSION) {
      return new InvalidMessageError(`session "${this.id}" has ${MAX_SCHEDULES_PER_SESSION} schedules already (the most one may have); cancel one first`);
    }
    return undefined;
  }

  /** Sets (or replaces, by id) a schedule: stored with the step, like everything the step does (C16, C20). */
  setSchedule(record: ScheduleRecord): void {
    if (this.#stopped) return;
    this.#schedules.set(record.id, record);
    this.#gate.schedule(record.id, record);
    this.#noteSchedules();
  }

  /** Cancels a schedule; `false` if the session has none by that id. */
  cancelSchedule(id: string): boolean {
    if (this.#stopped || !this.#schedules.delete(id)) return false;
    this.#gate.schedule(id, null);
    this.#noteSchedules();
    return true;
  }

  /**
   * Fires every schedule due by `now` (C20), in one step: each as a durable input
   * `timer:<id>:<due time>` that the session takes as it takes any input (its busy policy
   * decides), and in the same commit the schedule is re-armed from its due time or, a
   * one-shot, removed. An input id it has seen (a fire already taken) is not offered again:
   * once per due time. A fire the session refuses is said in its stream, never dropped
   * silently.
   */
  fireDue(now: number): void {
    const due = this.schedules().filter((s) => s.dueAt <= now);
    if (due.length === 0 || this.#stopped) return;
    this.step(() => {
      for (const schedule of due) {
        const entry = timerEntry({ id: schedule.id, dueAt: schedule.dueAt, ...(schedule.payload !== undefined && { payload: schedule.payload }) });
        if (this.recent.check(entry.id, entry.content) === undefined) {
          const receipt = this.send({ type: 'input', input: entry } as EventObject, entry);
          if (receipt?.status === 'accepted') this.recent.remember(entry.id, entry.content);
          else this.reportError(receipt?.code ?? 'INVALID_MESSAGE', `schedule "${schedule.id}" fired, and the session refused it: ${receipt?.message ?? 'it takes no input now'}`, entry.id);
          // A terminated session takes nothing ever again: its schedules end here.
          if (receipt?.code === 'SESSION_TERMINATED') {
            this.cancelSchedule(schedule.id);
            continue;
          }
        }
        // A recurrence that cannot be worked out (a cron stored before a rule that refuses it)
        // ends here: it must not stay first in due order, failing every wake after it.
        let next: number | undefined;
        try {
          next = nextDueAfter(schedule, now);
        } catch (error) {
          this.reportError('INVALID_MESSAGE', `schedule "${schedule.id}" has no next due time and ends: ${error instanceof Error ? error.message : String(error)}`, entry.id);
        }
        if (next === undefined) this.cancelSchedule(schedule.id);
        else this.setSchedule({ ...schedule, dueAt: next });
      }
    });
  }

  /** The machine lists the schedules' ids and due times in `/status`. */
  #noteSchedules(): void {
    const schedules = this.schedules().map(({ id, dueAt }) => ({ id, dueAt }));
    this.#dispatch({ type: 'schedules', schedules } as EventObject);
  }

  /** `true` once a commit failed: the session is stopped and must be activated again. */
  get failed(): boolean {
    return this.#failed;
  }

  /**
   * Commits the session's snapshot with its next step (passivation, shutdown, a retry's
   * probe). Resolves `true` once it is stored, `false` if the store failed (the session is
   * then stopped, C16).
   */
  checkpoint({ release = false }: { release?: boolean } = {}): Promise<boolean> {
    this.#checkpoint = true;
    if (release) this.#release = true;
    return this.#gate.committed();
  }

  /** The next step gives the session up (a cluster store lets another node claim it), if it leaves the session quiescent. */
  #release = false;
  #released = false;

  /** A step of this session gave it up (see {@link checkpoint}): it may be stopped, and only then. */
  get released(): boolean {
    return this.#released;
  }

  /**
   * Resolves once everything the session did so far is committed (`true`), or its commit
   * failed (`false`). Receipts wait for it: an input is acknowledged only when its step is
   * stored (C16).
   */
  committed(): Promise<boolean> {
    return this.#gate.committed();
  }

  /** Nothing runs and nothing waits (the state's `quiescent` tag): the session may be passivated. */
  quiescent(): boolean {
    return this.#actor.getSnapshot().hasTag(SessionTags.quiescent) && this.#driver?.busy?.() !== true;
  }

  /** Everything the session did is committed, its snapshot included: it may be stopped without loss. */
  settled(): boolean {
    return this.#gate.settled && !this.#journalChanged && this.#actor.getSnapshot() === this.#committed;
  }

  /**
   * Sends one event and returns the receipt the machine decided, if it decided one. An
   * accepted input enters the durable inbox with the step's commit; its `payload` is kept
   * beside the machine (which keeps its id).
   */
  send(event: EventObject, payload?: InboxEntry, memo?: InboxEntry): MachineReceipt | undefined {
    const decided = this.#offer(event, payload);
    // A command's id and text: kept in the inbox, consumed at once, so a resent command is
    // still known as a duplicate after passivation or a restart (C10).
    if (memo && decided?.status === 'accepted') {
      this.#gate.accept(memo);
      this.#gate.consume([memo.id]);
    }
    if (payload && decided?.status === 'accepted') {
      this.#gate.accept(payload);
      // A kind without `holds` keeps no input for later: what it made of this one is in the
      // snapshot committed with this same step, so the input is consumed with it.
      if (!this.kind.holds) this.#gate.consume([payload.id]);
    }
    return decided;
  }

  /** Sends an event and returns the receipt the machine decided while processing it. */
  #offer(event: EventObject, payload?: InboxEntry): MachineReceipt | undefined {
    if (this.#stopped) return undefined;
    this.#receipt = undefined;
    // Kept before the machine decides: a turn it starts right away needs it.
    // Only a driver reads payloads: a kind without one keeps none.
    if (payload && this.#driver) this.#payloads.set(payload.id, payload);
    this.#dispatch(event);
    const decided = this.#receipt as MachineReceipt | undefined; // set by #record while the machine ran
    this.#receipt = undefined;
    if (payload && decided?.status !== 'accepted') this.#payloads.delete(payload.id);
    return decided;
  }

  status(): SessionStatus {
    const snapshot = this.#actor.getSnapshot();
    const summary = this.kind.status?.(snapshot) ?? { state: stateName(snapshot.value), backlog: 0, turns: 0 };
    return {
      sessionId: this.id,
      kind: this.kindName,
      ...summary,
      busy: snapshot.hasTag(SessionTags.busy),
      waitingForUser: snapshot.hasTag(SessionTags.waitingForUser),
      schedules: this.schedules().map(scheduleSummary),
      // What was committed: a seq of a step still on its way could yet go to another event.
      seq: this.#committedSeq,
    } as SessionStatus;
  }

  /** The actor's current snapshot, read-only: context, state value, status. */
  snapshot(): unknown {
    return this.#actor.getSnapshot();
  }

  /**
   * Starts draining (C14); resolves once nothing runs. With a durable store, waiting work
   * is kept for the next start instead of cancelled.
   */
  drain(): Promise<void> {
    return new Promise((resolve) => {
      this.#drained = resolve;
      if (this.#stopped) return resolve();
      this.#dispatch({ type: 'shutdown', keep: this.#deps.durable } as EventObject);
    });
  }

  /** Drain time is up: abort what still runs. A kind that never reports `drained` is released here. */
  abortDrain(): void {
    this.#dispatch({ type: 'shutdown.abort', keep: this.#deps.durable } as EventObject);
    this.#drained?.();
  }

  /**
   * The persisted snapshot as the store keeps it: session state, no configuration — and
   * the driver's journal beside it (never in the machine's context, see {@link JOURNAL_KEY}).
   */
  #persisted(): unknown {
    const snapshot = this.#actor.getPersistedSnapshot() as PersistedSnapshot;
    const persisted = this.kind.persist ? this.kind.persist(snapshot) : snapshot;
    const journal = this.#driver?.journal?.();
    return journal === undefined ? persisted : { ...persisted, [JOURNAL_KEY]: journal };
  }

  /** Takes the session out of service as a failed commit would (the store was fenced, C17). */
  abandon(error: unknown): void {
    this.#fail(error);
  }

  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#actor.stop();
    this.#driver?.stop();
  }

  /** When the session last did anything (clock ms), for passivation. */
  lastActive = 0;

  #dispatch(event: EventObject): void {
    if (this.#stopped) return;
    const now = (this.lastActive = this.#deps.now());
    // Stamped with the runtime's clock, which machines cannot read: deadlines are times (C20).
    const stamped = event.type === 'input' || event.type === 'permission' ? { ...event, at: now } : event;
    this.#deps.dispatcher.run(() => this.#actor.send(stamped));
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
      case 'output':
        this.#announce(effect.event);
        return;
      case 'drained':
        this.#gate.hold(() => this.#drained?.());
        return;
      default:
        this.#driver?.effect(e);
    }
  }

  /**
   * Numbers an output of the machine (C8); it is published once its step is committed. A
   * `done` closes the running turn, if any — the driver measured it — and its inputs leave
   * the durable inbox in the same transaction as the event.
   */
  #announce(output: MachineOutput): void {
    if (output.type !== 'done') return this.#report(output);
    const closed = this.#driver?.closeTurn?.(output.data);
    if (closed?.transcript) this.#remember(closed.transcript);
    this.#report(output, closed?.durationMs ?? 0);
  }

  /**
   * Numbers an output (C8) — the machine's, or the host's own report, which closes no turn —
   * and hands it to the gate: stored with the step before it is published, so a client
   * never sees what a crash could undo, and a seq it saw is never reused.
   */
  #report(output: MachineOutput, durationMs = 0): void {
    const seq = ++this.#seq;
    if (output.type !== 'done') return this.#gate.emit({ sessionId: this.id, seq, ...output } as SessionEvent, this.#deps.publish);
    const { input_ids: used, cancelled_input_ids: cancelled = [] } = output.data;
    this.#gate.emit({ sessionId: this.id, seq, type: 'done', data: { ...output.data, stats: { duration_ms: durationMs } } }, this.#deps.publish);
    this.#gate.consume([...used, ...cancelled]);
    for (const id of used) this.#payloads.delete(id);
    for (const id of cancelled) this.#payloads.delete(id);
  }

  /** A closed turn's transcript entries: stored with the step, and the next turn's history. */
  #remember(entries: readonly TranscriptEntry[]): void {
    this.#gate.consume([], entries);
    const window = this.#deps.historyWindow;
    if (window === 0) return;
    this.#history.push(...entries);
    if (this.#history.length > window) this.#history = this.#history.slice(-window);
  }

  /**
   * Hands the group commit what the steps since the last commit wrote — inputs they
   * accepted, their events, what a finished turn consumed, the transcript it adds and, for
   * a durable store, the snapshot after them — and sets their outbox aside for
   * {@link release}. `undefined` when there is nothing to write (the outbox is still released).
   */
  takeStep(): StepRecord | undefined {
    this.#syncWake();
    const { accepted, events, consumed, transcript, taken, schedules } = this.#gate.writes();
    const checkpoint = this.#checkpoint;
    // The session is given up only by a step that leaves it quiescent: one that started work
    // since the passivation asked (an input that opens a turn, mail taken) keeps it here, and
    // its claim with it; the passivation then stops nothing and the next sweep tries again.
    const release = this.#release && this.quiescent();
    this.#checkpoint = false;
    this.#release = false;
    // A stopped host writes nothing more: another activation (or process) may own the session now.
    if (this.#failed || this.#stopped) return undefined;
    if (release) this.#released = true;
    if (this.#ending === 'deleted') return { sessionId: this.id, events: [], consumed: [], deleted: true };
    // XState keeps the snapshot object when a step changes nothing (a streamed delta): then
    // only the events are written. Every other step writes it, whatever the store: recovery
    // after a failed commit starts from what the store holds.
    const current = this.#actor.getSnapshot();
    const changed = this.#ending === undefined && (current !== this.#committed || this.#journalChanged || (checkpoint && this.#committed === undefined));
    this.#journalChanged = false;
    const scheduled = scheduleWrites(schedules);
    if (!changed && !release && !scheduled && accepted.length === 0 && events.length === 0 && consumed.length === 0 && transcript.length === 0 && taken.length === 0) return undefined;
    if (changed) this.#committing = current;
    if (events.length > 0) this.#committingSeq = events.at(-1)!.seq;
    return {
      sessionId: this.id,
      ...(accepted.length > 0 && { accepted }),
      events,
      consumed,
      ...(transcript.length > 0 && { transcript }),
      ...(taken.length > 0 && { taken }),
      ...(scheduled && { schedules: scheduled }),
      ...(release && { release }),
      ...(changed && {
        session: { sessionId: this.id, kind: this.kindName, snapshot: this.#persisted(), seq: this.#seq, version: this.kind.version ?? 1, at: this.#deps.now() },
      }),
    };
  }

  /**
   * Stores the kind's wake time when it changed (C19: a passivated session waiting for a
   * decision is denied when the approval runs out), in the step that changed it, as the
   * runtime's own schedule — which fires no input: activation is all it is for.
   */
  #syncWake(): void {
    if (this.#failed || this.#stopped || this.#ending !== undefined) return;
    // A kind without wakeAt still clears a wake the store holds for it (one a former version
    // of the kind set): nothing else would, and it would stay due for good.
    let wake: number | undefined;
    try {
      wake = wakeDue(this.kind.wakeAt?.(this.#actor.getSnapshot() as never));
    } catch (error) {
      // User code: reported, and the stored wake is kept, rather than failing the commit.
      this.#deps.report(error);
      return;
    }
    if (wake === this.#wake) return;
    this.#wake = wake;
    this.#gate.schedule(WAKE_SCHEDULE_ID, wake === undefined ? null : { id: WAKE_SCHEDULE_ID, dueAt: wake });
  }

  /** The step is committed: now, and only now, what it made visible is released, in order (C16). */
  release(): void {
    if (this.#failed) return;
    if (this.#committing !== undefined) this.#committed = this.#committing;
    this.#committing = undefined;
    this.#committedSeq = Math.max(this.#committedSeq, this.#committingSeq);
    this.#deps.stored(this);
    this.#gate.release();
  }

  /** The step's commit failed: nothing of it is released, and the session stops (C16). */
  commitFailed(error: unknown): void {
    this.#committing = undefined;
    this.#fail(error);
  }

  /**
   * A commit failed: nothing of the uncommitted steps is released, the actor and its work
   * stop, and the runtime takes the session out of service until the store works again.
   * What was committed is intact, so no seq a client saw is reused and no acknowledged
   * input is lost.
   */
  #fail(error: unknown): void {
    if (this.#failed) return;
    this.#failed = true;
    this.#gate.close();
    this.stop();
    this.#drained?.();
    this.#deps.failed(this, error);
  }

  #end(error?: unknown): void {
    this.stop();
    this.#drained?.();
    this.#deps.ended(this, error);
  }
}

/** A schedule without its payload, for a status. */
export function scheduleSummary({ id, dueAt, everyMs, cron }: ScheduleRecord): ScheduleSummary {
  return { id, dueAt, ...(everyMs !== undefined && { everyMs }), ...(cron !== undefined && { cron }) };
}

/** A step's schedule writes as the store takes them; `undefined` if it wrote none. */
function scheduleWrites(writes: ReadonlyMap<string, ScheduleRecord | null>): StepRecord['schedules'] {
  if (writes.size === 0) return undefined;
  const set: ScheduleRecord[] = [];
  const cancel: string[] = [];
  for (const [id, record] of writes) {
    if (record) set.push(record);
    else cancel.push(id);
  }
  return { ...(set.length > 0 && { set }), ...(cancel.length > 0 && { cancel }) };
}

/**
 * Whether a saved snapshot waits for the user (its state's `waiting-for-user` tag), read
 * without starting an actor: a passivated session reports it like a live one.
 */
export function waitsForUser(kind: SessionKind | undefined, snapshot: unknown): boolean {
  const saved = snapshot as { value?: unknown; context?: unknown } | undefined;
  if (!kind || saved?.value === undefined) return false;
  try {
    return kind.machine.resolveState({ value: saved.value as never, context: saved.context }).hasTag(SessionTags.waitingForUser);
  } catch {
    return false; // a snapshot of a state the machine no longer has: it says nothing
  }
}

/**
 * Where a stored snapshot carries its driver's journal: a key of the stored JSON beside
 * XState's own, so every store keeps it without knowing of it, and the machine's context —
 * which XState revives on restore — never holds what tools took in and gave back.
 */
const JOURNAL_KEY = 'baton:journal';

function journalOf(session: StoredSession): unknown {
  return isRecord(session.snapshot) ? session.snapshot[JOURNAL_KEY] : undefined;
}

function withoutJournal(snapshot: unknown): unknown {
  if (!isRecord(snapshot) || !(JOURNAL_KEY in snapshot)) return snapshot;
  const { [JOURNAL_KEY]: _journal, ...rest } = snapshot;
  return rest;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

/**
 * The stored snapshot as this activation restores it: migrated if an older version of the
 * kind wrote it, with this activation's configuration put in; `undefined` to rebuild.
 */
function restorable(kind: SessionKind, restored: StoredSession, input: unknown): unknown {
  const version = kind.version ?? 1;
  const from = restored.version ?? 1;
  let snapshot: PersistedSnapshot | undefined = withoutJournal(restored.snapshot) as PersistedSnapshot;
  if (from !== version) snapshot = from < version ? kind.migrate?.(snapshot, from) : undefined;
  if (snapshot === undefined) return undefined;
  return kind.restore ? kind.restore(snapshot, input) : snapshot;
}

function stateName(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

import type { MachineOutput, ToolResultData } from '../../machines/events.ts';
import type { TranscriptEntry } from './store.ts';
import type { Tool, ToolError, ToolResult } from './tool.ts';

/**
 * The most tool calls one turn may make. The turn's journal is stored with every commit of
 * the turn, so what a turn writes grows with the square of its calls; past this many, a call
 * is refused at once (`too_many_calls`, no event) instead of growing it further.
 */
export const MAX_TOOL_CALLS_PER_TURN = 128;

/** What one turn's tool calls need from the session that runs the turn. */
export interface ToolCallHost {
  readonly sessionId: string;
  readonly tools: ReadonlyMap<string, Tool>;
  /** How long a permission request waits before it is a denial. */
  readonly approvalTimeoutMs: number;
  now(): number;
  /** The turn's signal: aborted on stop, interrupt, timeout, shutdown. */
  signal(): AbortSignal;
  /** Numbers and gates an event of the turn (C8, C16); dropped once the turn is over. */
  output(event: MachineOutput): void;
  /** Runs `task` once what was emitted so far is committed (C16). */
  defer(task: () => void): void;
  /** The journal changed: it is stored with the session's next commit. */
  changed(): void;
  /** The call waits for the user: the machine enters `waiting`, the deadline is armed. */
  awaitApproval(callId: string, expiresAt: number): void;
  /** The call no longer waits (the re-run agent went another way, or the call was settled). */
  withdrawApproval(callId: string): void;
  /** User code threw where nobody awaits it. */
  report(error: unknown): void;
}

/**
 * One call as the turn's journal keeps it (C19): enough to replay it when the turn re-runs
 * after a crash or a passivation. JSON-safe: it is stored with the session's snapshot.
 */
export interface CallRecord {
  readonly id: string;
  readonly name: string;
  /** The input as `tool_call` carried it (a JSON copy). */
  readonly input: unknown;
  /** Set when the call needs the user's approval. */
  approval?: { readonly expiresAt: number; decision?: { readonly allowed: boolean; readonly reason?: string; readonly timedOut?: boolean } };
  /** How many times its tool was started: more than one only after a crash while it ran (at-least-once). */
  attempts: number;
  result?: ToolResult;
  /** Where its `tool_call` and `tool_result` stand among the turn's tool events (transcript order). */
  readonly calledAt: number;
  resultAt?: number;
}

/** The tool calls of the running turn, as stored: the calls and the order the last run made them in. */
export interface TurnJournal {
  readonly calls: readonly CallRecord[];
  /** Ids of the calls of the latest run, in the order its agent made them: what a re-run replays. */
  readonly sequence: readonly string[];
  readonly events: number;
}

/**
 * The tool calls of one turn (C19). Each call emits `tool_call`; a call that needs approval
 * emits `permission_request` and waits for the decision; the tool runs only once what
 * allowed it is committed; and the call gets exactly one `tool_result`: the tool's, a
 * denial, or `cancelled` when the turn closes first ({@link close}). Both events are
 * transcript entries, written when the turn closes.
 *
 * The journal makes a turn replayable: when a restored turn re-runs, its agent's n-th call
 * with the same name and input is the journal's n-th call — its recorded result is returned,
 * its recorded decision is not asked again, and its tool runs again only if it was running
 * when the process stopped (attempt + 1). A re-run that calls something else leaves the
 * replay: the old calls it will not make are cancelled.
 */
export class TurnTools {
  readonly #host: ToolCallHost;
  readonly #prefix: string;
  readonly #calls: CallRecord[];
  /** The previous run's calls, in its order: the replay. */
  readonly #replay: readonly CallRecord[];
  #replaying: boolean;
  readonly #sequence: string[] = [];
  readonly #waiters = new Map<string, ((result: ToolResult) => void)[]>();
  readonly #controllers = new Map<string, AbortController>();
  #events: number;
  #count = 0;
  #closed = false;

  /** `prefix` makes call ids unique in the session (`call_<turn>_<n>`); `journal` is what a previous run of the turn left. */
  constructor(host: ToolCallHost, prefix: string, journal?: TurnJournal) {
    this.#host = host;
    this.#prefix = prefix;
    this.#calls = (journal?.calls ?? []).map((c) => ({ ...c }));
    const byId = new Map(this.#calls.map((c) => [c.id, c]));
    this.#replay = (journal?.sequence ?? []).flatMap((id) => byId.get(id) ?? []);
    this.#replaying = this.#replay.length > 0;
    this.#events = journal?.events ?? 0;
  }

  /**
   * What a re-run needs; `undefined` while the turn has made no call. While this run still
   * follows the replay, the sequence is the previous run's whole one (this run's so far is
   * a prefix of it): a re-run cut off before its agent reached the old calls must leave
   * them for the next re-run to replay, not drop them.
   */
  journal(): TurnJournal | undefined {
    if (this.#calls.length === 0) return undefined;
    const sequence = this.#replaying ? this.#replay.map((c) => c.id) : this.#sequence;
    return { calls: this.#calls, sequence, events: this.#events };
  }

  /** Calls inherited from a previous run that still wait for a decision: their deadlines are re-armed. */
  pendingApprovals(): { callId: string; expiresAt: number }[] {
    return this.#calls.flatMap((c) => (c.approval && !c.approval.decision && !c.result ? [{ callId: c.id, expiresAt: c.approval.expiresAt }] : []));
  }

  /** `turn.callTool`: never throws; a failure is a result. */
  call(name: string, input: unknown): Promise<ToolResult> {
    const n = this.#count++;
    const wire = jsonCopy(input);
    if (this.#closed) return Promise.resolve(failure(`${this.#prefix}_${n + 1}`, 'cancelled', 'cancelled', 'the turn is over'));
    const replayed = this.#replayed(n, name, wire);
    if (replayed) return this.#resume(replayed);
    if (this.#calls.length >= MAX_TOOL_CALLS_PER_TURN) {
      return Promise.resolve(failure(`${this.#prefix}_${n + 1}`, 'failed', 'too_many_calls', `a turn may make at most ${MAX_TOOL_CALLS_PER_TURN} tool calls`));
    }
    const record: CallRecord = { id: `${this.#prefix}_${n + 1}`, name, input: wire.ok ? wire.value : null, attempts: 0, calledAt: this.#events++ };
    this.#calls.push(record);
    this.#sequence.push(record.id);
    this.#host.changed();
    this.#host.output({ type: 'tool_call', data: { id: record.id, name, input: record.input } });
    const waiting = this.#wait(record);
    const checked = wire.ok ? this.#check(record) : failure(record.id, 'failed', 'invalid_input', 'input is not JSON-serializable');
    if ('status' in checked) this.#finish(record, checked);
    else if (checked.approval) this.#ask(record, checked.tool);
    else this.#start(record, checked.tool, checked.input);
    return waiting;
  }

  /**
   * The user (or the deadline) decided a pending approval. A denial is the call's result at
   * once; an approval runs the tool — now, or when the re-running agent reaches the call.
   */
  decided(callId: string, decision: { allowed: boolean; reason?: string; timedOut?: boolean }): void {
    const record = this.#calls.find((c) => c.id === callId);
    if (!record?.approval || record.approval.decision || record.result) return;
    record.approval.decision = decision;
    this.#host.changed();
    if (!decision.allowed) return this.#finish(record, denial(record, decision));
    if (!this.#sequence.includes(record.id)) return; // the re-run has not reached it yet
    // Called in the machine's step: the tool's schema (user code) is checked after it.
    this.#host.defer(() => {
      if (record.result || this.#closed) return;
      const checked = this.#check(record);
      if ('status' in checked) this.#finish(record, checked);
      else this.#start(record, checked.tool, checked.input);
    });
  }

  /** Calls whose tool is running now: while one does, the turn is not just waiting for the user. */
  running(): number {
    return this.#controllers.size;
  }

  /**
   * The turn is closing: every call without a result gets `cancelled` now — before the
   * turn's done, in the same step — and its tool's signal is aborted once that is committed.
   */
  close(): void {
    this.#closed = true;
    for (const record of this.#calls) {
      if (record.result) continue;
      this.#finish(record, failure(record.id, 'cancelled', 'cancelled', 'the turn ended before the call finished'));
    }
    for (const controller of this.#controllers.values()) this.#host.defer(() => controller.abort(new Error('tool call cancelled')));
    this.#controllers.clear();
  }

  /** The turn's tool entries for the transcript, in the order their events were emitted. */
  entries(): TranscriptEntry[] {
    const placed: [number, TranscriptEntry][] = [];
    for (const c of this.#calls) {
      placed.push([c.calledAt, { role: 'tool_call', content: JSON.stringify({ id: c.id, name: c.name, input: c.input }) }]);
      if (c.result && c.resultAt !== undefined) placed.push([c.resultAt, { role: 'tool_result', content: JSON.stringify(c.result) }]);
    }
    return placed.sort((a, b) => a[0] - b[0]).map(([, entry]) => entry);
  }

  /** The previous run's n-th call, if this one is the same; leaving the replay cancels the rest of it. */
  #replayed(n: number, name: string, wire: { ok: boolean; value?: unknown }): CallRecord | undefined {
    if (!this.#replaying) return undefined;
    const old = this.#replay[n];
    if (old && old.name === name && wire.ok && JSON.stringify(old.input) === JSON.stringify(wire.value ?? null)) return old;
    this.#replaying = false;
    for (const stale of this.#replay.slice(n)) {
      if (stale.result) continue;
      this.#host.withdrawApproval(stale.id);
      this.#finish(stale, failure(stale.id, 'cancelled', 'cancelled', 'the re-run turn did not make this call again'));
    }
    return undefined;
  }

  /** A replayed call: its result if it has one; else it goes on from where the journal left it. */
  #resume(record: CallRecord): Promise<ToolResult> {
    this.#sequence.push(record.id);
    this.#host.changed();
    if (record.result) return Promise.resolve(record.result);
    const waiting = this.#wait(record);
    if (record.approval && !record.approval.decision) return waiting; // still the user's turn to decide
    const checked = this.#check(record);
    if ('status' in checked) this.#finish(record, checked);
    else this.#start(record, checked.tool, checked.input);
    return waiting;
  }

  /** The tool and parsed input, whether it needs an approval — or the result that refuses it. */
  #check(record: CallRecord): ToolResult | { tool: Tool; input: unknown; approval: boolean } {
    const tool = this.#host.tools.get(record.name);
    if (!tool) return failure(record.id, 'failed', 'unknown_tool', `no tool named "${record.name}"`);
    let parsed: ReturnType<Tool['parameters']['safeParse']>;
    try {
      // A refinement is user code: it may throw, or be async (zod then throws).
      parsed = tool.parameters.safeParse(record.input);
    } catch (error) {
      return failure(record.id, 'failed', 'invalid_input', `the parameters schema threw: ${describe(error)}`);
    }
    if (!parsed.success) {
      const message = parsed.error.issues.map((i) => `${i.path.length > 0 ? i.path.join('.') : 'input'}: ${i.message}`).join('; ');
      return failure(record.id, 'failed', 'invalid_input', message);
    }
    let approval: boolean;
    try {
      approval = typeof tool.needsApproval === 'function' ? tool.needsApproval(parsed.data) : tool.needsApproval === true;
    } catch (error) {
      return failure(record.id, 'failed', 'tool_failed', `needsApproval threw: ${describe(error)}`);
    }
    return { tool, input: parsed.data, approval };
  }

  /** The call waits for the user: `permission_request` goes out with its deadline. */
  #ask(record: CallRecord, tool: Tool): void {
    const expiresAt = this.#host.now() + this.#host.approvalTimeoutMs;
    record.approval = { expiresAt };
    this.#host.output({
      type: 'permission_request',
      data: { id: record.id, tool_name: record.name, input: record.input, description: tool.description, expires_at: expiresAt },
    });
    this.#host.awaitApproval(record.id, expiresAt);
  }

  /** Runs the tool once the step that allowed it (its `tool_call`, or the decision) is committed. */
  #start(record: CallRecord, tool: Tool, input: unknown): void {
    record.attempts++;
    this.#host.changed();
    const controller = new AbortController();
    this.#controllers.set(record.id, controller);
    this.#host.defer(() => this.#run(record, tool, input, controller));
  }

  #run(record: CallRecord, tool: Tool, input: unknown, controller: AbortController): void {
    const signal = AbortSignal.any([this.#host.signal(), controller.signal]);
    // Cancelled, or aborted while what allowed it was being committed: the tool never starts.
    // (A turn that ended gave the call its result; one kept to re-run — a drain with a durable
    // store — leaves it open, and the re-run runs it.)
    if (record.result || signal.aborted) return void this.#controllers.delete(record.id);
    const attempt = record.attempts;
    const settled = (output: { ok: true; value: unknown } | { ok: false; error: unknown }) => {
      this.#controllers.delete(record.id);
      // Already cancelled, or aborted: the late outcome is dropped (as above).
      if (record.result || signal.aborted) return;
      if (!output.ok) return this.#finish(record, failure(record.id, 'failed', 'tool_failed', describe(output.error)));
      const json = jsonCopy(output.value);
      this.#finish(record, json.ok ? { id: record.id, status: 'ok', output: json.value } : failure(record.id, 'failed', 'tool_failed', 'output is not JSON-serializable'));
    };
    try {
      const context = { sessionId: this.#host.sessionId, callId: record.id, attempt, idempotencyKey: `${record.id}:${attempt}`, signal };
      Promise.resolve(tool.run(input, context)).then(
        (value) => settled({ ok: true, value }),
        (error: unknown) => settled({ ok: false, error }),
      ).catch((error: unknown) => this.#host.report(error));
    } catch (error) {
      settled({ ok: false, error });
    }
  }

  /** Resolves with the call's one result. */
  #wait(record: CallRecord): Promise<ToolResult> {
    return new Promise((resolve) => {
      const list = this.#waiters.get(record.id) ?? [];
      list.push(resolve);
      this.#waiters.set(record.id, list);
    });
  }

  /** The call's one result: emitted, journaled, and handed to the agent once committed. */
  #finish(record: CallRecord, result: ToolResult): void {
    if (record.result) return;
    record.result = result;
    record.resultAt = this.#events++;
    this.#host.changed();
    this.#host.output({ type: 'tool_result', data: result as ToolResultData });
    const waiters = this.#waiters.get(record.id) ?? [];
    this.#waiters.delete(record.id);
    this.#host.defer(() => {
      for (const resolve of waiters) resolve(result);
    });
  }
}

function denial(record: CallRecord, decision: { reason?: string; timedOut?: boolean }): ToolResult {
  if (decision.timedOut) return failure(record.id, 'denied', 'approval_timeout', 'no decision came before the permission request expired');
  return failure(record.id, 'denied', 'denied', decision.reason ?? 'the user denied the call');
}

function failure(id: string, status: 'failed' | 'denied' | 'cancelled', code: ToolError['code'], message: string): ToolResult {
  return { id, status, error: { code, message } };
}

/** A JSON round trip: what the store will keep, or why it cannot. */
function jsonCopy(value: unknown): { ok: true; value: unknown } | { ok: false } {
  try {
    const text = JSON.stringify(value);
    return { ok: true, value: text === undefined ? null : JSON.parse(text) };
  } catch {
    return { ok: false };
  }
}

/** What went wrong, as text — even for a thrown value that has none (`Object.create(null)`). */
function describe(error: unknown): string {
  try {
    return error instanceof Error ? error.message : String(error);
  } catch {
    return 'a value that cannot be shown as text';
  }
}

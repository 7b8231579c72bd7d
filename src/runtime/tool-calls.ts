import type { MachineOutput, ToolResultData } from '../../machines/events.ts';
import type { TranscriptEntry } from './store.ts';
import type { Tool, ToolError, ToolResult } from './tool.ts';

/** What one turn's tool calls need from the session that runs the turn. */
export interface ToolCallHost {
  readonly sessionId: string;
  readonly tools: ReadonlyMap<string, Tool>;
  /** The turn's signal: aborted on stop, interrupt, timeout, shutdown. */
  signal(): AbortSignal;
  /** Numbers and gates an event of the turn (C8, C16); dropped once the turn is over. */
  output(event: MachineOutput): void;
  /** Runs `task` once what was emitted so far is committed (C16). */
  defer(task: () => void): void;
  /** User code threw where nobody awaits it. */
  report(error: unknown): void;
}

interface OpenCall {
  readonly controller: AbortController;
  readonly resolve: (result: ToolResult) => void;
}

/**
 * The tool calls of one turn (C19). Each call emits `tool_call`, runs its tool only once
 * that event is committed, and gets exactly one `tool_result`: the tool's, or `cancelled`
 * when the turn closes first ({@link close}). Both events are also transcript entries, kept
 * in call order for the turn's closing step. Nothing here touches the machine: tool events
 * change nothing in it, like streamed deltas. (Approvals, when they come, are states.)
 */
export class TurnTools {
  /** The transcript entries of the turn's calls, in the order their events were emitted. */
  readonly entries: TranscriptEntry[] = [];
  readonly #host: ToolCallHost;
  readonly #prefix: string;
  readonly #open = new Map<string, OpenCall>();
  #count = 0;
  #closed = false;

  /** `prefix` makes call ids unique in the session (`call_<turn>_<n>`). */
  constructor(host: ToolCallHost, prefix: string) {
    this.#host = host;
    this.#prefix = prefix;
  }

  /** `turn.callTool`: never throws; a failure is a result. */
  call(name: string, input: unknown): Promise<ToolResult> {
    const id = `${this.#prefix}_${++this.#count}`;
    if (this.#closed) return Promise.resolve(failure(id, 'cancelled', 'cancelled', 'the turn is over'));
    // Events are stored as JSON: an input that is not JSON never reaches the store (C15).
    const wire = jsonCopy(input);
    this.#emit({ type: 'tool_call', data: { id, name, input: wire.ok ? wire.value : null } });
    return new Promise((resolve) => {
      const controller = new AbortController();
      this.#open.set(id, { controller, resolve });
      const refused = wire.ok ? this.#refusal(id, name, wire.value) : failure(id, 'failed', 'invalid_input', 'input is not JSON-serializable');
      if (typeof refused === 'object' && 'status' in refused) return this.#finish(id, refused);
      const { tool, input: parsed } = refused;
      this.#host.defer(() => this.#run(id, tool, parsed, controller));
    });
  }

  /**
   * The turn is closing: every open call gets its `cancelled` result now — before the
   * turn's `done`, in the same step — and its tool's signal is aborted once that is committed.
   */
  close(): void {
    this.#closed = true;
    for (const [id, call] of [...this.#open]) {
      this.#finish(id, failure(id, 'cancelled', 'cancelled', 'the turn ended while the tool ran'));
      this.#host.defer(() => call.controller.abort(new Error('tool call cancelled')));
    }
  }

  /** Why a call may not run (a result), or the tool and its parsed input. */
  #refusal(id: string, name: string, input: unknown): ToolResult | { tool: Tool; input: unknown } {
    const tool = this.#host.tools.get(name);
    if (!tool) return failure(id, 'failed', 'unknown_tool', `no tool named "${name}"`);
    const parsed = tool.parameters.safeParse(input);
    if (!parsed.success) {
      const message = parsed.error.issues.map((i) => `${i.path.length > 0 ? i.path.join('.') : 'input'}: ${i.message}`).join('; ');
      return failure(id, 'failed', 'invalid_input', message);
    }
    let approval: boolean;
    try {
      approval = typeof tool.needsApproval === 'function' ? tool.needsApproval(parsed.data) : tool.needsApproval === true;
    } catch (error) {
      return failure(id, 'failed', 'tool_failed', `needsApproval threw: ${describe(error)}`);
    }
    if (approval) return failure(id, 'denied', 'approval_required', `"${name}" needs an approval, and approvals are not supported yet`);
    return { tool, input: parsed.data };
  }

  /** Runs the tool once its `tool_call` is committed; its settling is the call's result unless the turn closed first. */
  #run(id: string, tool: Tool, input: unknown, controller: AbortController): void {
    if (!this.#open.has(id)) return; // cancelled before it could start
    const signal = AbortSignal.any([this.#host.signal(), controller.signal]);
    // Aborted while its tool_call was being committed: the tool never starts.
    if (signal.aborted) return this.#finish(id, failure(id, 'cancelled', 'cancelled', 'the turn was aborted before the tool ran'));
    const settled = (output: { ok: true; value: unknown } | { ok: false; error: unknown }) => {
      if (!this.#open.has(id)) return; // already cancelled: the late outcome is dropped
      if (signal.aborted) return this.#finish(id, failure(id, 'cancelled', 'cancelled', 'the turn was aborted while the tool ran'));
      if (!output.ok) return this.#finish(id, failure(id, 'failed', 'tool_failed', describe(output.error)));
      const json = jsonCopy(output.value);
      this.#finish(id, json.ok ? { id, status: 'ok', output: json.value } : failure(id, 'failed', 'tool_failed', 'output is not JSON-serializable'));
    };
    try {
      const result = tool.run(input, { sessionId: this.#host.sessionId, callId: id, signal });
      Promise.resolve(result).then(
        (value) => settled({ ok: true, value }),
        (error: unknown) => settled({ ok: false, error }),
      ).catch((error: unknown) => this.#host.report(error));
    } catch (error) {
      settled({ ok: false, error });
    }
  }

  /** The call's one result: emitted, recorded, and handed to the agent once committed. */
  #finish(id: string, result: ToolResult): void {
    const call = this.#open.get(id);
    if (!call) return;
    this.#open.delete(id);
    this.#emit({ type: 'tool_result', data: result as ToolResultData });
    this.#host.defer(() => call.resolve(result));
  }

  #emit(event: Extract<MachineOutput, { type: 'tool_call' | 'tool_result' }>): void {
    this.entries.push({ role: event.type, content: JSON.stringify(event.data) });
    this.#host.output(event);
  }
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

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

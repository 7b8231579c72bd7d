import type { SessionInput } from '../../machines/session.ts';
import type { ScheduleRecord, TranscriptEntry } from './store.ts';
import type { ScheduleSpec } from './schedule.ts';
import type { Tool, ToolResult } from './tool.ts';

/**
 * Steering (busy policy `steer`): inputs that arrive while the turn runs. Iterate it to
 * wait for them, or `drain()` to take those already here without waiting. Either tells the
 * runtime the agent accepts steering.
 */
export interface Steering extends AsyncIterable<SessionInput> {
  drain(): SessionInput[];
}

/**
 * One turn handed to the agent: the batch's inputs in arrival order, a signal aborted on
 * `/stop`, timeout, interrupt or shutdown, and `emit` to stream text (each call becomes
 * a `message.delta`).
 *
 * @example
 * const agent: Agent = async (turn) => {
 *   for (const word of turn.inputs.map((i) => i.content).join(' ').split(' ')) {
 *     if (turn.signal.aborted) return;
 *     turn.emit(word + ' ');
 *   }
 * };
 */
export interface Turn {
  readonly sessionId: string;
  readonly inputs: readonly SessionInput[];
  readonly signal: AbortSignal;
  emit(delta: string): void;
  /**
   * Present under busy policy `steer`. Reading it tells the runtime the agent accepts
   * steering; from then on inputs that arrive during the turn are delivered here
   * (`input.ack` mode `injected`). Inputs the agent has not pulled when the turn ends go
   * to the next batch — never lost.
   */
  readonly steer?: Steering;
  /**
   * The session's transcript before this turn, oldest first: the last `historyWindow`
   * entries (inputs as `user`, replies as `assistant`; an unfinished reply is marked
   * `interrupted` or `failed`).
   */
  readonly history: readonly TranscriptEntry[];
  /**
   * Calls a tool registered with the runtime or the agent (C19): the input is validated
   * against the tool's `parameters`, `tool_call` is emitted (and committed) before the tool
   * runs with a signal aborted when the turn ends, and `tool_result` follows — exactly once,
   * `cancelled` if the turn is stopped, interrupted or times out first. Both go to the
   * transcript. Never throws: bad input, an unknown tool, a tool that throws are results
   * with `status: 'failed'`.
   *
   * @example
   * const result = await turn.callTool('echo_upper', { text: 'hi' });
   * if (result.status === 'ok') turn.emit(String(result.output));
   */
  callTool(name: string, input: unknown): Promise<ToolResult>;
  /**
   * Sets (or replaces) a schedule of this session (C20), as `runtime.schedule` does: stored
   * with the turn's next step, so it exists only if that step is committed. Throws
   * `InvalidMessageError` for a bad spec or once the turn is over.
   *
   * @example
   * turn.schedule({ id: 'follow-up', afterMs: 24 * 3_600_000, payload: { ask: 'did it work?' } });
   */
  schedule(spec: ScheduleSpec): ScheduleRecord;
  /** Cancels a schedule of this session; `false` if it has none by that id. */
  cancelSchedule(id: string): boolean;
  /**
   * The tools `callTool` reaches: the runtime's `tools`, then the agent's own `agent.tools`
   * (C19). Read-only, the same for every turn of the runtime; an agent describes them to a
   * model with `toolSchema` (from the package root).
   *
   * @example
   * const functions = turn.tools.map(toolSchema); // [{ name, description, parameters }]
   */
  readonly tools: readonly Tool[];
}

/**
 * The agent runs one turn. It streams with `turn.emit` and/or resolves with the whole
 * text (sent as one delta when nothing was streamed). Throwing or rejecting fails the
 * turn with `WORKER_CRASH` (C7).
 */
export type Agent = ((turn: Turn) => Promise<string | void> | string | void) & {
  /** Tools this agent calls, besides the runtime's `tools` (C19). @default none */
  readonly tools?: readonly Tool[];
};

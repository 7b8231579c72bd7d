import { z } from 'zod';

/** What a tool's `run` gets besides its input: the turn's session and a signal aborted when the call is cancelled. */
export interface ToolContext {
  readonly sessionId: string;
  /** The call's id (the `id` of its `tool_call` and `tool_result` events). */
  readonly callId: string;
  /**
   * 1 on the first run. A tool that was running when the process died (or the session was
   * moved) runs again after the restart — at-least-once — with `attempt` 2, 3, ….
   */
  readonly attempt: number;
  /**
   * `<callId>:<attempt>`: hand it to whatever the tool calls (a payment API, an email
   * service) so a retried run is recognised there. A decision or a finished result is never
   * repeated; only a run cut off midway is.
   */
  readonly idempotencyKey: string;
  /** Aborted when the turn is stopped, interrupted, times out or ends with the call still open. */
  readonly signal: AbortSignal;
}

/**
 * A tool an agent may call with `turn.callTool(name, input)` (C19). `parameters` is a zod
 * schema: the runtime validates every input against it, and model providers get it as JSON
 * Schema ({@link toolSchema}).
 */
export interface Tool<TInput = unknown, TOutput = unknown> {
  readonly name: string;
  readonly description: string;
  readonly parameters: z.ZodType<TInput>;
  /**
   * The call needs a user's approval before it runs: `permission_request` goes out, the turn
   * waits (the session's state is tagged `waiting-for-user`), and the tool runs only if the
   * user allows it before `approvalTimeoutMs`. A denial or the deadline is a `denied` result.
   * @default false
   */
  readonly needsApproval?: boolean | ApprovalCheck<TInput>;
  run(input: TInput, context: ToolContext): Promise<TOutput> | TOutput;
}

/**
 * `needsApproval` as a function of the input. Written as a method's type so a
 * `Tool<{ city: string }>` still fits where any tool does (`tools: Tool[]`): method
 * parameters are compared both ways, plain function types only contravariantly.
 */
type ApprovalCheck<TInput> = { check(input: TInput): boolean }['check'];

/** Why a tool call did not produce an output. */
export type ToolErrorCode =
  /** The input does not match the tool's `parameters`. */
  | 'invalid_input'
  /** No tool by that name is registered. */
  | 'unknown_tool'
  /** The tool threw or rejected. */
  | 'tool_failed'
  /** The user denied the call (`permission_response{allowed:false}`). */
  | 'denied'
  /** No decision came before the permission request expired (`approvalTimeoutMs`). */
  | 'approval_timeout'
  /** The turn made more than `MAX_TOOL_CALLS_PER_TURN` (128) calls: refused at once, with no event. */
  | 'too_many_calls'
  /** The turn was stopped, interrupted, timed out or ended while the tool ran or waited for approval. */
  | 'cancelled';

export interface ToolError {
  readonly code: ToolErrorCode;
  readonly message: string;
}

/**
 * The one result of one tool call, as `turn.callTool` resolves it and as `tool_result`
 * carries it. It never throws: a failure is a result.
 */
export type ToolResult =
  | { readonly id: string; readonly status: 'ok'; readonly output: unknown }
  | { readonly id: string; readonly status: 'failed' | 'denied' | 'cancelled'; readonly error: ToolError };

/**
 * Defines a tool. The input type comes from the zod schema.
 *
 * @example
 * const weather = defineTool({
 *   name: 'weather',
 *   description: 'The weather in a city',
 *   parameters: z.object({ city: z.string() }),
 *   run: async ({ city }, { signal }) => (await fetch(`https://wttr.in/${city}?format=3`, { signal })).text(),
 * });
 * createRuntime({ agent, tools: [weather] });
 */
export function defineTool<TSchema extends z.ZodType, TOutput>(tool: {
  readonly name: string;
  readonly description: string;
  readonly parameters: TSchema;
  readonly needsApproval?: boolean | ((input: z.output<TSchema>) => boolean);
  run(input: z.output<TSchema>, context: ToolContext): Promise<TOutput> | TOutput;
}): Tool<z.output<TSchema>, TOutput> {
  if (typeof tool?.name !== 'string' || !/^[a-zA-Z0-9_-]{1,64}$/.test(tool.name)) {
    throw new TypeError(`defineTool: name must be 1–64 letters, digits, "_" or "-", got ${JSON.stringify(tool?.name)}`);
  }
  if (typeof tool.run !== 'function') throw new TypeError(`defineTool: run of "${tool.name}" must be a function, got ${typeof tool.run}`);
  if (!(tool.parameters instanceof z.ZodType)) throw new TypeError(`defineTool: parameters of "${tool.name}" must be a zod schema`);
  return tool as Tool<z.output<TSchema>, TOutput>;
}

/**
 * A tool as model providers describe it: name, description and the parameters as JSON
 * Schema (zod 4's `z.toJSONSchema`).
 *
 * @example
 * const functions = tools.map(toolSchema); // [{ name, description, parameters: { type: 'object', … } }]
 */
export function toolSchema(tool: Tool): { name: string; description: string; parameters: Record<string, unknown> } {
  return { name: tool.name, description: tool.description, parameters: z.toJSONSchema(tool.parameters) as Record<string, unknown> };
}

/** The tools of a runtime by name; a name given twice is a `TypeError`. */
export function toolsByName(where: string, ...lists: readonly (readonly Tool[] | undefined)[]): ReadonlyMap<string, Tool> {
  const byName = new Map<string, Tool>();
  for (const tool of lists.flatMap((list) => list ?? [])) {
    if (byName.has(tool.name)) throw new TypeError(`${where}: tool "${tool.name}" is defined twice`);
    byName.set(tool.name, tool);
  }
  return byName;
}

import type OpenAI from 'openai';
import type { ChatCompletionFunctionTool, ChatCompletionMessageParam } from 'openai/resources/chat/completions';
import type { SessionInput } from '../../machines/session.ts';
import type { Agent, Turn } from '../runtime/turn.ts';
import { toolSchema, type Tool } from '../runtime/tool.ts';
import { historyMessages, roundMessages } from './openai-messages.ts';
import { openaiSdk, streamReply, type StreamedCall, type StreamedReply } from './openai-stream.ts';

export interface OpenAIAgentOptions {
  /** The model name, e.g. `gpt-4o-mini`, or what a local server serves. Required. */
  model: string;
  /** @default process.env.OPENAI_API_KEY */
  apiKey?: string;
  /** An OpenAI-compatible endpoint (vLLM, llama.cpp server, Ollama). @default process.env.OPENAI_BASE_URL, else OpenAI's */
  baseURL?: string;
  /** A system message put before the history. @default none */
  system?: string;
  /**
   * Retries the SDK makes on its own. Kept at 0 by default so a rate limit reaches the
   * session at once as `RATE_LIMITED`, and the runtime's turn timeout stays the only clock.
   * @default 0
   */
  maxRetries?: number;
  /** Use this client instead of making one (tests, proxies). */
  client?: OpenAI;
  /**
   * Tools of this agent (they become `agent.tools`), besides the runtime's `tools`. The
   * model is offered both: every tool `turn.tools` lists. @default none
   */
  tools?: readonly Tool[];
  /**
   * The most rounds of tool calls in one turn: a round is one response that asks for tools,
   * whose calls are all made. Past it, calls the model asks for are not made, and the turn
   * ends with a note in the reply (see {@link openaiAgent}). A positive integer.
   * @default 8
   */
  maxToolRounds?: number;
}

const defaults = { maxRetries: 0, maxToolRounds: 8 } as const;

/** What a turn needs, fixed when the agent is made. */
interface AgentConfig {
  readonly client: OpenAI;
  readonly model: string;
  readonly system: string | undefined;
  readonly maxToolRounds: number;
}

/**
 * An agent that streams chat completions from an OpenAI-compatible API with the official
 * `openai` package, and calls tools when the model asks (C19). The transcript
 * (`turn.history`) and the batch become the messages; every streamed chunk becomes a
 * `message.delta`; the turn's AbortSignal cancels the HTTP request. A rate limit ends the
 * turn with `RATE_LIMITED`; any other HTTP or API error with `WORKER_CRASH`, naming the status.
 *
 * Tools: the model is offered `turn.tools` (the runtime's and the agent's) as functions.
 * When a response asks for some, each is called with `turn.callTool` — together, as the
 * model asked for them together — so the stream shows `tool_call` / `tool_result`; the
 * results go back as `tool` messages and the model is asked again, until it answers without
 * tools. Arguments that are not JSON are passed as the text they are, which an object schema
 * refuses (`invalid_input`, told to the model like any failed result). After
 * `maxToolRounds` rounds, a response that still asks for tools ends the turn with
 * `[stopped: …]` in the reply: a bound reached is a policy, not a crash, and the note stays in
 * the transcript, so the next turn's model knows its work was cut short. Tool entries of
 * earlier turns are sent as the `tool_calls` / `tool` messages they were.
 *
 * Under busy policy `steer`, inputs that arrive while a reply streams or tools run are
 * appended to the next request of the same turn; inputs that arrive after its last request
 * go to the next batch, as the runtime guarantees.
 *
 * @example
 * const weather = defineTool({ name: 'weather', description: 'The weather in a city', parameters: z.object({ city: z.string() }), run: lookUp });
 * createRuntime({ agent: openaiAgent({ model: 'gpt-4o-mini', tools: [weather] }), busyPolicy: 'steer' });
 */
export function openaiAgent(options: OpenAIAgentOptions): Agent {
  const sdk = openaiSdk();
  validate(options);
  const apiKey = options.apiKey ?? process.env.OPENAI_API_KEY;
  const baseURL = options.baseURL ?? process.env.OPENAI_BASE_URL;
  const client =
    options.client ??
    new sdk.OpenAI({
      // A local server needs no key, but the SDK insists on one.
      apiKey: apiKey ?? (baseURL ? 'not-needed' : undefined),
      ...(baseURL && { baseURL }),
      maxRetries: options.maxRetries ?? defaults.maxRetries,
    });
  const config: AgentConfig = { client, model: options.model, system: options.system, maxToolRounds: options.maxToolRounds ?? defaults.maxToolRounds };
  const agent = (turn: Turn) => runTurn(turn, config);
  return options.tools ? Object.assign(agent, { tools: options.tools }) : agent;
}

function validate(options: OpenAIAgentOptions): void {
  if (typeof options.model !== 'string' || options.model === '') {
    throw new TypeError(`openaiAgent: option "model" must be a non-empty string, got ${JSON.stringify(options.model)}`);
  }
  const rounds = options.maxToolRounds;
  if (rounds !== undefined && !(Number.isInteger(rounds) && rounds >= 1)) {
    throw new TypeError(`openaiAgent: option "maxToolRounds" must be a positive integer, got ${JSON.stringify(rounds)}`);
  }
  if (options.tools !== undefined && !Array.isArray(options.tools)) {
    throw new TypeError(`openaiAgent: option "tools" must be an array of tools (defineTool), got ${typeof options.tools}`);
  }
}

/** One turn: requests until the model answers without tools, steering in between. */
async function runTurn(turn: Turn, config: AgentConfig): Promise<void> {
  turn.steer?.drain(); // accept steering from the start of the turn
  const tools = turn.tools.map((tool): ChatCompletionFunctionTool => ({ type: 'function', function: toolSchema(tool) }));
  const messages: ChatCompletionMessageParam[] = [
    ...(config.system ? [{ role: 'system' as const, content: config.system }] : []),
    ...historyMessages(turn.history),
    ...userMessages(turn.inputs),
  ];
  // The text of each request after the first starts on a new paragraph, once it has text.
  let separator = '';
  const emit = (delta: string) => {
    turn.emit(separator + delta);
    separator = '';
  };
  for (let rounds = 0; ; ) {
    const request = { model: config.model, messages, ...(tools.length > 0 && { tools }) };
    const reply = await streamReply(config.client, request, turn.signal, emit);
    if (turn.signal.aborted) return; // stopped: no tool runs, nothing more is said
    if (reply.text !== '') separator = '\n\n';
    if (reply.calls.length === 0) {
      const steered = turn.steer?.drain() ?? [];
      if (steered.length === 0) return; // the final answer
      messages.push({ role: 'assistant', content: reply.text }, ...userMessages(steered));
      continue;
    }
    if (rounds === config.maxToolRounds) {
      emit(`[stopped: the model asked for tools again after ${rounds} rounds of tool calls (maxToolRounds)]`);
      return;
    }
    rounds++;
    messages.push(...(await callTools(turn, reply)));
    if (turn.signal.aborted) return;
    messages.push(...userMessages(turn.steer?.drain() ?? []));
  }
}

/**
 * Makes a round's calls, all at once as the model asked for them together, and returns the
 * messages that report them: the assistant's `tool_calls` (with the runtime's call ids, the
 * ids the transcript keeps) and one `tool` message per call.
 */
async function callTools(turn: Turn, reply: StreamedReply): Promise<ChatCompletionMessageParam[]> {
  const inputs = reply.calls.map(argumentsOf);
  const results = await Promise.all(reply.calls.map((call, i) => turn.callTool(call.name, inputs[i])));
  const calls = results.map((result, i) => ({ id: result.id, name: reply.calls[i]!.name, input: inputs[i] }));
  return roundMessages(reply.text, calls, new Map(results.map((result) => [result.id, result])));
}

/**
 * The model's arguments, parsed. Text that is not JSON is passed as it is: an object schema
 * refuses it (`invalid_input`), so the call is in the stream and the transcript with its
 * failed result, and the model is told — rather than a result made up here, which clients
 * would never see. (A tool whose `parameters` accept a bare string would get the text;
 * OpenAI accepts only object schemas for functions.) No arguments at all mean none: `{}`.
 */
function argumentsOf(call: StreamedCall): unknown {
  if (call.arguments.trim() === '') return {};
  try {
    return JSON.parse(call.arguments);
  } catch {
    return call.arguments;
  }
}

function userMessages(inputs: readonly SessionInput[]): ChatCompletionMessageParam[] {
  return inputs.map((input) => ({ role: 'user', content: input.content }));
}

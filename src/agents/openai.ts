import type OpenAI from 'openai';
import { requirePeer } from '../peer.ts';
import type { ChatCompletionMessageParam } from 'openai/resources/chat/completions';
import { RateLimitedError, WorkerCrashError } from '../errors.ts';
import type { Agent, Turn } from '../runtime/turn.ts';

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
}

/**
 * An agent that streams chat completions from an OpenAI-compatible API with the official
 * `openai` package. The transcript (`turn.history`) and the batch become the messages;
 * every streamed chunk becomes a `message.delta`; the turn's AbortSignal cancels the HTTP
 * request. A rate limit ends the turn with `RATE_LIMITED`; any other HTTP or API error
 * with `WORKER_CRASH`, naming the status.
 *
 * Under busy policy `steer`, inputs that arrive while a reply streams are appended to the
 * next request of the same turn (after the reply so far); inputs that arrive after its last
 * request go to the next batch, as the runtime guarantees.
 *
 * @example
 * createRuntime({ agent: openaiAgent({ model: 'gpt-4o-mini' }), busyPolicy: 'steer' });
 */
export function openaiAgent(options: OpenAIAgentOptions): Agent {
  const sdk = openaiSdk();
  if (typeof options.model !== 'string' || options.model === '') {
    throw new TypeError(`openaiAgent: option "model" must be a non-empty string, got ${JSON.stringify(options.model)}`);
  }
  const apiKey = options.apiKey ?? process.env.OPENAI_API_KEY;
  const baseURL = options.baseURL ?? process.env.OPENAI_BASE_URL;
  const client =
    options.client ??
    new sdk.OpenAI({
      // A local server needs no key, but the SDK insists on one.
      apiKey: apiKey ?? (baseURL ? 'not-needed' : undefined),
      ...(baseURL && { baseURL }),
      maxRetries: options.maxRetries ?? 0,
    });

  return async (turn: Turn) => {
    turn.steer?.drain(); // accept steering from the start of the turn
    const messages: ChatCompletionMessageParam[] = [
      ...(options.system ? [{ role: 'system' as const, content: options.system }] : []),
      // Tool entries (C19) are not sent to OpenAI yet: this adapter offers it no tools.
      ...turn.history.flatMap((entry) => (entry.role === 'user' || entry.role === 'assistant' ? [{ ...entry, role: entry.role }] : [])).map((entry) => ({
        role: entry.role,
        content: entry.status ? `${entry.content}\n[reply ${entry.status}]` : entry.content,
      })),
      ...turn.inputs.map((input) => ({ role: 'user' as const, content: input.content })),
    ];
    let reply = '';
    for (;;) {
      const part = await stream(client, options.model, messages, turn);
      reply += part;
      const steered = turn.signal.aborted ? [] : (turn.steer?.drain() ?? []);
      if (steered.length === 0) return;
      messages.push({ role: 'assistant', content: reply }, ...steered.map((i) => ({ role: 'user' as const, content: i.content })));
      turn.emit('\n\n');
    }
  };
}

/** One streamed request; returns the text it produced. */
async function stream(client: OpenAI, model: string, messages: ChatCompletionMessageParam[], turn: Turn): Promise<string> {
  let text = '';
  try {
    const chunks = await client.chat.completions.create({ model, messages, stream: true }, { signal: turn.signal });
    for await (const chunk of chunks) {
      const delta = chunk.choices[0]?.delta?.content;
      if (delta) {
        text += delta;
        turn.emit(delta);
      }
    }
    return text;
  } catch (error) {
    if (turn.signal.aborted || error instanceof openaiSdk().APIUserAbortError) return text; // stopped: say nothing more
    throw typedError(error);
  }
}

function typedError(error: unknown): Error {
  if (error instanceof openaiSdk().APIError) {
    const status = error.status ?? 'no status';
    const message = `model API error (HTTP ${status}): ${error.message}`;
    return error.status === 429 ? new RateLimitedError(message, { cause: error }) : new WorkerCrashError(message, { cause: error });
  }
  return new WorkerCrashError(`model request failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
}

type OpenAISdk = typeof import('openai');
let sdk: OpenAISdk | undefined;

/** The `openai` package, an optional peer: loaded when the first agent is made. */
function openaiSdk(): OpenAISdk {
  return (sdk ??= requirePeer<OpenAISdk>('openai', 'baton-runtime/openai'));
}

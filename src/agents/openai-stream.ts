import type OpenAI from 'openai';
import type { ChatCompletionCreateParamsStreaming } from 'openai/resources/chat/completions';
import { requirePeer } from '../peer.ts';
import { RateLimitedError, WorkerCrashError } from '../errors.ts';

/** A function call the model streamed, assembled from its fragments. */
export interface StreamedCall {
  readonly name: string;
  /** As the model wrote them: JSON, if the model got it right. */
  readonly arguments: string;
}

/** What one streamed request produced. */
export interface StreamedReply {
  readonly text: string;
  /** The function calls it asked for, in the model's order; empty for a final answer. */
  readonly calls: readonly StreamedCall[];
}

/**
 * One streamed chat completion. Text goes to `emit` chunk by chunk; function calls arrive
 * as fragments (`delta.tool_calls[]`: the first with `index`, `id` and the name, then pieces
 * of the arguments) and are assembled by `index`. Whether there are calls is read from the
 * fragments, not from `finish_reason`: some compatible servers say `stop` after tool calls.
 *
 * Aborting `signal` cancels the HTTP request and resolves with what came so far. An API or
 * HTTP error rejects with a typed error: `RATE_LIMITED` for 429, else `WORKER_CRASH`.
 */
export async function streamReply(
  client: OpenAI,
  request: Omit<ChatCompletionCreateParamsStreaming, 'stream'>,
  signal: AbortSignal,
  emit: (delta: string) => void,
): Promise<StreamedReply> {
  let text = '';
  const calls: { name: string; arguments: string }[] = [];
  const reply = () => ({ text, calls: calls.filter((call) => call !== undefined) }); // indexes may skip
  try {
    const chunks = await client.chat.completions.create({ ...request, stream: true }, { signal });
    for await (const chunk of chunks) {
      const delta = chunk.choices[0]?.delta;
      if (delta?.content) {
        text += delta.content;
        emit(delta.content);
      }
      for (const fragment of delta?.tool_calls ?? []) {
        const call = (calls[fragment.index] ??= { name: '', arguments: '' });
        // The name comes whole, once; servers that repeat it in every fragment must not double it.
        if (fragment.function?.name && call.name === '') call.name = fragment.function.name;
        call.arguments += fragment.function?.arguments ?? '';
      }
    }
    return reply();
  } catch (error) {
    if (signal.aborted || error instanceof openaiSdk().APIUserAbortError) return reply(); // stopped: say nothing more
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
export function openaiSdk(): OpenAISdk {
  return (sdk ??= requirePeer<OpenAISdk>('openai', 'baton-runtime/openai'));
}

import type {
  ChatCompletionAssistantMessageParam,
  ChatCompletionMessageParam,
  ChatCompletionToolMessageParam,
} from 'openai/resources/chat/completions';
import type { ToolCallData, ToolResultData } from '../../machines/events.ts';
import type { TranscriptEntry } from '../runtime/store.ts';

/**
 * The transcript as chat completion messages. Inputs are `user` messages, replies
 * `assistant` ones (an unfinished reply says so). The tool entries of a turn (C19) become
 * `assistant` messages with `tool_calls`, each followed by one `tool` message per call, so a
 * provider always gets a valid transcript:
 * - a call whose result is not in the history (a crash cut it off) gets a `cancelled` one;
 * - a result whose call is not (the history window starts after it) is left out;
 * - a call that comes after a result starts a new assistant message — the transcript does
 *   not keep the model's rounds, and this is how the openai agent's rounds come out (a round
 *   emits all its calls before any result, bar inputs refused at once).
 *
 * The text a turn streamed between its rounds is in its one `assistant` entry, so it comes
 * after the turn's tool messages.
 */
export function historyMessages(history: readonly TranscriptEntry[]): ChatCompletionMessageParam[] {
  const messages: ChatCompletionMessageParam[] = [];
  let tools: TranscriptEntry[] = [];
  for (const entry of history) {
    if (entry.role === 'tool_call' || entry.role === 'tool_result') {
      tools.push(entry);
      continue;
    }
    messages.push(...toolMessages(tools));
    tools = [];
    messages.push(
      entry.role === 'user'
        ? { role: 'user', content: entry.content }
        : { role: 'assistant', content: entry.status ? `${entry.content}\n[reply ${entry.status}]` : entry.content },
    );
  }
  messages.push(...toolMessages(tools));
  return messages;
}

/**
 * One round of tool calls as the model must see it next: the assistant message that asked
 * for them (with the text it streamed, if any), then each call's result in call order.
 * `results` holds a result per call id; a call without one gets a `cancelled` result.
 */
export function roundMessages(text: string, calls: readonly ToolCallData[], results: ReadonlyMap<string, ToolResultData>): ChatCompletionMessageParam[] {
  const ask: ChatCompletionAssistantMessageParam = {
    role: 'assistant',
    content: text === '' ? null : text,
    tool_calls: calls.map((call) => ({
      id: call.id,
      type: 'function',
      // The input as the runtime recorded it: always JSON, even when the model's arguments were not.
      function: { name: call.name, arguments: JSON.stringify(call.input ?? null) },
    })),
  };
  return [ask, ...calls.map((call) => toolMessage(results.get(call.id) ?? cancelled(call.id)))];
}

/** A tool result for the model: the output as JSON, or `{ status, error }` as JSON. */
function toolMessage(result: ToolResultData): ChatCompletionToolMessageParam {
  const content = result.status === 'ok' ? result.output : { status: result.status, error: result.error };
  return { role: 'tool', tool_call_id: result.id, content: JSON.stringify(content ?? null) };
}

/** A turn's run of tool entries, as rounds (see {@link historyMessages}). */
function toolMessages(entries: readonly TranscriptEntry[]): ChatCompletionMessageParam[] {
  const results = new Map<string, ToolResultData>();
  const rounds: ToolCallData[][] = [];
  let resultSeen = true; // the first call opens a round
  for (const entry of entries) {
    // An entry that is not what the runtime writes is left out rather than sent broken.
    if (entry.role === 'tool_result') {
      const result = resultOf(entry.content);
      if (result) results.set(result.id, result);
      resultSeen = true;
      continue;
    }
    const call = callOf(entry.content);
    if (!call) continue;
    if (resultSeen) rounds.push([]);
    rounds.at(-1)!.push(call);
    resultSeen = false;
  }
  return rounds.flatMap((calls) => roundMessages('', calls, results));
}

function cancelled(id: string): ToolResultData {
  return { id, status: 'cancelled', error: { code: 'cancelled', message: 'the call has no result in the transcript' } };
}

const statuses: readonly string[] = ['ok', 'failed', 'denied', 'cancelled'] satisfies ToolResultData['status'][];

function callOf(content: string): ToolCallData | undefined {
  const data = readJson(content);
  return typeof data?.id === 'string' && typeof data.name === 'string' ? { id: data.id, name: data.name, input: data.input } : undefined;
}

function resultOf(content: string): ToolResultData | undefined {
  const data = readJson(content);
  if (typeof data?.id !== 'string' || !statuses.includes(data.status as string)) return undefined;
  return { ...data, id: data.id, status: data.status as ToolResultData['status'] };
}

function readJson(content: string): Record<string, unknown> | undefined {
  try {
    const data: unknown = JSON.parse(content);
    return typeof data === 'object' && data !== null ? (data as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import type { Agent, Turn } from '../runtime/turn.ts';
import { defineTool } from '../runtime/tool.ts';

export interface DemoAgentOptions {
  /** Wait before each word, so a long input makes a slow turn. @default 20 */
  delayMs?: number;
}

/**
 * The demo agent's tool: the text in upper case, after `delayMs` (aborted with its turn).
 * It needs the user's approval (C19), so `npm run chat` shows the whole flow without a
 * model: `tool hello` → `permission_request` → y/n → `tool_result`.
 *
 * @example
 * createRuntime({ agent, tools: [echoUpper()] });
 */
export function echoUpper({ delayMs = 20 }: DemoAgentOptions = {}) {
  return defineTool({
    name: 'echo_upper',
    description: 'Returns the text in upper case',
    parameters: z.object({ text: z.string() }),
    needsApproval: true,
    run: async ({ text }, { signal }) => {
      if (delayMs > 0) await sleep(delayMs, undefined, { signal });
      return text.toUpperCase();
    },
  });
}

/**
 * The demo agent `npm start` uses: replies `echo: <the batch's inputs joined by newline>`,
 * streamed one word (split on spaces) per `message.delta`, waiting `delayMs` before each
 * word, and stopping as soon as its turn is aborted. An input `tool <text>` calls its tool
 * `echo_upper` with `{ text }` — a `tool_call`, a `permission_request` the user answers,
 * then a `tool_result` (C19) — and replies with the output or the denial.
 *
 * @example
 * createRuntime({ agent: demoAgent({ delayMs: 0 }) });
 */
export function demoAgent({ delayMs = 20 }: DemoAgentOptions = {}): Agent {
  const agent: Agent = (turn) => {
    const call = turn.inputs.find((i) => i.content.startsWith('tool '));
    return call ? callEchoUpper(turn, call.content.slice('tool '.length)) : streamEcho(turn, delayMs);
  };
  return Object.assign(agent, { tools: [echoUpper({ delayMs })] });
}

/** The reply to `tool <text>`: the tool's output, or why there is none (nothing once the turn is aborted). */
async function callEchoUpper(turn: Turn, text: string): Promise<string | undefined> {
  const result = await turn.callTool('echo_upper', { text });
  if (turn.signal.aborted) return undefined;
  return result.status === 'ok' ? `echo_upper: ${String(result.output)}` : `echo_upper ${result.status}: ${result.error.message}`;
}

/** The echo, one word per delta. */
async function streamEcho(turn: Turn, delayMs: number): Promise<void> {
  const words = `echo: ${turn.inputs.map((i) => i.content).join('\n')}`.split(' ');
  for (const [i, word] of words.entries()) {
    if (delayMs > 0) {
      try {
        await sleep(delayMs, undefined, { signal: turn.signal });
      } catch {
        return; // aborted: stop, say nothing more
      }
    }
    if (turn.signal.aborted) return;
    turn.emit(i === 0 ? word : ` ${word}`);
  }
}

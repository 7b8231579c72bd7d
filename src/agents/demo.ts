import { setTimeout as sleep } from 'node:timers/promises';
import type { Agent } from '../runtime/turn.ts';

export interface DemoAgentOptions {
  /** Wait before each word, so a long input makes a slow turn. @default 20 */
  delayMs?: number;
}

/**
 * The demo agent `npm start` uses: replies `echo: <the batch's inputs joined by newline>`,
 * streamed one word (split on spaces) per `message.delta`, waiting `delayMs` before each
 * word, and stopping as soon as its turn is aborted.
 *
 * @example
 * createRuntime({ agent: demoAgent({ delayMs: 0 }) });
 */
export function demoAgent({ delayMs = 20 }: DemoAgentOptions = {}): Agent {
  return async (turn) => {
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
  };
}

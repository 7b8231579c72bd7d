/**
 * The soak's tools (C19): `soak_echo` runs at once, `soak_guarded` needs the user's
 * approval. Both log each execution (call id and attempt) before they do anything, with a
 * synchronous append to a file of their own gateway process: the process may be SIGKILLed
 * the next moment, and the checker compares what ran with what the clients decided.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { defineTool, type Tool } from '../../src/index.ts';
import type { AgentFireRecord, AgentScheduleRecord, ToolRecord } from './history.ts';
import { hash, prng } from './random.ts';

/** The names the chaos agent calls: a plain tool, and one that needs approval. */
export const SOAK_TOOLS = { plain: 'soak_echo', guarded: 'soak_guarded' } as const;

const now = () => performance.timeOrigin + performance.now();

/**
 * Appends one JSON line per execution (and per schedule the agent sets or fire it is handed,
 * C20); `writeSync`, so a line written is a line kept, SIGKILL or not.
 */
export function executionLog(path: string) {
  const fd = openSync(path, 'a');
  return {
    write: (record: ToolRecord | AgentScheduleRecord | AgentFireRecord) => void writeSync(fd, `${JSON.stringify(record)}\n`),
    close: () => closeSync(fd),
  };
}

/**
 * The soak's two tools. Each run sleeps a seeded while (mostly a few ms, sometimes past the
 * turn timeout, so a stop, a timeout or the SIGKILL finds it running), and fails now and
 * then. `skipApproval` is a planted bug: the guarded tool is registered without
 * `needsApproval`, while its log still says it needs it.
 */
export function soakTools({ seed, proc, log, skipApproval = false }: { seed: number; proc: string; log: ReturnType<typeof executionLog>; skipApproval?: boolean }): Tool[] {
  const tool = (name: string, needsApproval: boolean) =>
    defineTool({
      name,
      description: needsApproval ? 'Shouts the text, once the user allows it' : 'Shouts the text',
      parameters: z.object({ text: z.string() }),
      needsApproval: needsApproval && !skipApproval,
      run: async ({ text }, { sessionId, callId, attempt, signal }) => {
        log.write({ k: 'tool', t: now(), proc, session: sessionId, call: callId, attempt, name, needsApproval });
        const random = prng(hash(seed, sessionId, callId, attempt));
        await sleep(random() < 0.1 ? 500 + random() * 1000 : random() * 100, undefined, { signal });
        if (random() < 0.05) throw new Error('chaos: the tool failed');
        return text.toUpperCase();
      },
    });
  return [tool(SOAK_TOOLS.plain, false), tool(SOAK_TOOLS.guarded, true)];
}

/**
 * Attack on C19 (and C15: user code must not take the process down): the tool's zod
 * schema runs again when the decision comes (`TurnTools.decided` → `#check` →
 * `parameters.safeParse`), and that happens inside the session machine's step — the
 * `approval.decided` effect, where "bookkeeping only, never user code" runs. A schema that
 * throws there (a `refine` or `transform` that calls something which fails, or one changed
 * by a deploy between the call and the restart) escapes through XState, which rethrows it
 * as an uncaught exception: the whole process exits, every session with it. In-process the
 * decision is acknowledged, the call never gets a tool_result and the session stays busy.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const fixture = fileURLToPath(new URL('./fixtures/attack-c19-flaky-schema.ts', import.meta.url));

describe('C19 attack: a schema that throws when the decision comes', () => {
  it('C19: a parameters schema throwing at the decision gives the call a failed tool_result; the process stays up', () => {
    const child = spawnSync(process.execPath, ['--import', 'tsx', fixture], { encoding: 'utf8', timeout: 4000 });
    expect(child.status, `exit status; stderr: ${child.stderr.slice(0, 600)}`).toBe(0);
    expect(JSON.parse(child.stdout.trim())).toMatchObject({ id: 'call_1_1', status: 'failed' });
  });
});

import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const soak = fileURLToPath(new URL('./soak/soak.ts', import.meta.url));

/**
 * A short soak (60 sessions, seed 5; 6 s, or less for a plant every turn that calls a tool
 * or takes a schedule's fire shows) against a gateway with `plant` built in: its exit code, output and JSON summary.
 */
function plantedSoak(plant: string, seconds = 6) {
  const child = spawnSync(process.execPath, ['--import', 'tsx', soak, '--sessions', '60', '--seconds', String(seconds), '--seed', '5', '--plant', plant], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { status: child.status, stdout: child.stdout, summary: JSON.parse(child.stdout.trim().split('\n').at(-1)!) };
}

describe('soak: a planted bug is caught', () => {
  it('C1: a gateway whose sessions start a turn while one is running fails the soak, with a counterexample and the seed', () => {
    const { status, stdout, summary } = plantedSoak('overlap');
    expect(status).toBe(1);
    expect(summary.violations.C1).toBeGreaterThan(0);
    expect(stdout).toMatch(/VIOLATION C1 in u\d+\/soak-5-\d+: turn msg_\d+ started at seq \d+ while msg_\d+ \(seq \d+\) had not ended/);
    expect(stdout).toContain('"type":"message.start"');
    expect(stdout).toContain('replay with: npm run soak -- --seed 5');
  }, 130_000);

  it('C19: a gateway that sends every tool_result twice fails the soak', () => {
    const { status, stdout, summary } = plantedSoak('duplicate-result', 2);
    expect(status).toBe(1);
    expect(summary.violations.C19).toBeGreaterThan(0);
    expect(stdout).toMatch(/VIOLATION C19 in u\d+\/soak-5-\d+: tool_result for call_\d+_\d+ at seq \d+: the call already had one at seq \d+/);
    expect(stdout).toContain('replay with: npm run soak -- --seed 5');
  }, 130_000);

  it('C19: a gateway that sends no tool_result fails the soak: the call has none before its turn\'s done', () => {
    const { status, stdout, summary } = plantedSoak('missing-result', 2);
    expect(status).toBe(1);
    expect(summary.violations.C19).toBeGreaterThan(0);
    expect(stdout).toMatch(/VIOLATION C19 in u\d+\/soak-5-\d+: tool_call call_\d+_\d+ \(seq \d+\) has no tool_result before its turn's done at seq \d+/);
  }, 130_000);

  it('C19: a gateway that runs the guarded tool without asking fails the soak, from its execution log', () => {
    const { status, stdout, summary } = plantedSoak('unapproved', 2);
    expect(status).toBe(1);
    expect(summary.violations.C19).toBeGreaterThan(0);
    expect(summary.tools.requests).toBe(0);
    expect(stdout).toMatch(/VIOLATION C19 in u\d+\/soak-5-\d+: call_\d+_\d+ needs approval and ran \(p\d+, attempt \d+\) without an allowing decision/);
    expect(stdout).toContain('"k":"tool"');
  }, 130_000);

  it('C20: a gateway that hands a schedule\'s fire to its session twice fails the soak', () => {
    const { status, stdout, summary } = plantedSoak('double-fire', 2);
    expect(status).toBe(1);
    expect(summary.violations.C20).toBeGreaterThan(0);
    expect(stdout).toMatch(/VIOLATION C20 in u\d+\/soak-5-\d+: schedule \S+ fired 2 times for due time \d+ \(consumed at seq \d+; consumed at seq \d+\)/);
  }, 130_000);
});

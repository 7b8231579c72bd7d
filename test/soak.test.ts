import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const soak = fileURLToPath(new URL('./soak/soak.ts', import.meta.url));

/** Runs the soak CLI; returns its exit code, its output and its last line (the JSON summary). */
function runSoak(args: string[]) {
  const child = spawnSync(process.execPath, ['--import', 'tsx', soak, ...args], { encoding: 'utf8', timeout: 170_000 });
  const lines = child.stdout.trim().split('\n');
  return { status: child.status, stdout: child.stdout, summary: JSON.parse(lines.at(-1)!) };
}

describe('soak: the contracts hold together under load and faults', () => {
  it('C1, C2/C12, C8/C9, C13, C15, C16, C19, C20: a short run with every fault, one SIGKILL and a restart, a store fault: zero violations', () => {
    const { status, stdout, summary } = runSoak(['--sessions', '300', '--seconds', '24', '--seed', '11']);
    expect(summary.violations, stdout).toEqual({ C1: 0, 'C2/C12': 0, 'C8/C9': 0, C13: 0, C15: 0, C16: 0, C19: 0, C20: 0, resources: 0 });
    expect(status).toBe(0);
    // It must have tested something: faults of every kind were injected, and work was done.
    for (const fault of ['input', 'burst', 'status', 'stop', 'resent id', 'malformed', 'oversized', 'disconnect mid-turn', 'slow reader', 'slow reader of a flood', 'gateway_sigkill', 'store_fault', 'resent after a store error', 'approval: allow', 'approval: deny', 'approval: ignore', 'approval: stop', 'schedule: after', 'schedule: at past', 'schedule: every', 'schedule: cancelled soon after', 'schedule cancel']) {
      expect(summary.faults_injected[fault] ?? 0, fault).toBeGreaterThan(0);
    }
    for (const variant of ['bad data', 'unknown type', 'wrong version', 'second init', 'not JSON', 'binary']) {
      expect(summary.faults_injected[`malformed: ${variant}`] ?? 0, variant).toBeGreaterThan(0);
    }
    for (const behaviour of ['fast', 'slow', 'stream', 'throws', 'hangs', 'ignoresAbort', 'tools', 'schedule']) {
      expect(summary.agent_behaviours[behaviour], behaviour).toBeGreaterThan(0);
    }
    expect(summary.inputs).toBeGreaterThan(1000);
    expect(summary.unverified).toBe(0);
    // The exceptions and recoveries the checker allows were exercised, not just permitted.
    expect(summary.droppedDones, 'a slow reader of a flood saw done.dropped').toBeGreaterThan(0);
    expect(summary.resumes.complete, 'clients resumed with last_seq').toBeGreaterThan(0);
    expect(summary.questions, 'onboarding sessions were asked questions').toBeGreaterThan(0);
    // The store fault stopped sessions, refused inputs, and cut turns short that ran again.
    expect(summary.store_fault_sessions_stopped, 'sessions stopped by a failed commit').toBeGreaterThan(0);
    expect(summary.refused, 'inputs refused with INTERNAL_ERROR').toBeGreaterThan(0);
    expect(summary.rerun.store, 'turns run again after a failed commit').toBeGreaterThan(0);
    for (const outcome of ['success', 'failed', 'timeout', 'stopped_by_user']) expect(summary.outcomes[outcome], outcome).toBeGreaterThan(0);
    // C19: tools ran, and every way a call can end happened: allowed, denied, expired, cancelled, failed.
    for (const result of ['ok', 'denied', 'approval_timeout', 'cancelled', 'tool_failed', 'invalid_input']) expect(summary.tools.results[result], result).toBeGreaterThan(0);
    expect(summary.tools.requests, 'permission requests').toBeGreaterThan(0);
    expect(summary.tools.guardedExecutions, 'guarded tool runs after an allow').toBeGreaterThan(0);
    // C20: schedules were acked, cancelled and fired (recurring ones too), and acked one-shots were due early enough that the checker required their fire.
    for (const figure of ['set', 'byAgent', 'cancelled', 'fires', 'consumed', 'recurringFires', 'handed', 'owed']) expect(summary.schedules[figure], figure).toBeGreaterThan(0);
  }, 180_000);
});

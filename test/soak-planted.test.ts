import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const soak = fileURLToPath(new URL('./soak/soak.ts', import.meta.url));

describe('soak: a planted bug is caught', () => {
  it('C1: a gateway whose sessions start a turn while one is running fails the soak, with a counterexample and the seed', () => {
    const child = spawnSync(process.execPath, ['--import', 'tsx', soak, '--sessions', '60', '--seconds', '6', '--seed', '5', '--plant', 'overlap'], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(child.status).toBe(1);
    const summary = JSON.parse(child.stdout.trim().split('\n').at(-1)!);
    expect(summary.violations.C1).toBeGreaterThan(0);
    expect(child.stdout).toMatch(/VIOLATION C1 in u\d+\/soak-5-\d+: turn msg_\d+ started at seq \d+ while msg_\d+ \(seq \d+\) had not ended/);
    expect(child.stdout).toContain('"type":"message.start"');
    expect(child.stdout).toContain('replay with: npm run soak -- --seed 5');
  }, 130_000);
});

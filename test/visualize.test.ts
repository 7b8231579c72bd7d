import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createMachine } from 'xstate';
import { batonMachines } from '../src/visualize/machines.ts';
import { visualize } from '../src/visualize/visualize.ts';
import { toMermaid } from '../src/visualize/mermaid.ts';
import { sessionMachine } from '../src/index.ts';

const root = fileURLToPath(new URL('..', import.meta.url));

describe('visualizations', () => {
  it('are up to date with the machines (what `npm run visualize -- --check` checks)', async () => {
    const { changed } = await visualize(batonMachines, join(root, 'visualizations'), { check: true });
    expect(changed, 'run `npm run visualize` and commit the result').toEqual([]);
  });

  it('are deterministic: a second run changes nothing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'baton-viz-'));
    try {
      const first = await visualize(batonMachines, dir);
      expect(first.changed).toHaveLength(9);
      const second = await visualize(batonMachines, dir);
      expect(second.changed).toEqual([]);
      expect(await readFile(join(dir, 'session.svg'), 'utf8')).toMatch(/^<\?xml[\s\S]*<svg[\s\S]*cluster_session\.running\.collecting[\s\S]*after debounce/);
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  it('draws nested states, guards and delays in Mermaid', () => {
    const mermaid = toMermaid(sessionMachine);
    expect(mermaid).toMatch(/^stateDiagram-v2\n/);
    expect(mermaid).toContain('state running {');
    expect(mermaid).toContain('running_collecting --> running_busy : after debounce');
    expect(mermaid).toContain('running_busy --> running_busy : agent.done [isCurrentTurn && turnDue]');
  });

  it('draws parallel regions in Mermaid', () => {
    const machine = createMachine({
      id: 'p',
      type: 'parallel',
      states: { a: { initial: 'x', states: { x: { on: { go: 'y' } }, y: {} } }, b: { initial: 'z', states: { z: {} } } },
    });
    const mermaid = toMermaid(machine);
    expect(mermaid).toContain('\n  --\n'); // between the regions
    expect(mermaid).toContain('a_x --> a_y : go');
  });

  it('are shown in the README, exactly as generated', async () => {
    const readme = await readFile(join(root, 'README.md'), 'utf8');
    for (const name of Object.keys(batonMachines)) {
      const mermaid = await readFile(join(root, 'visualizations', `${name}.mmd`), 'utf8');
      expect(readme, `README shows ${name}.mmd`).toContain(`\`\`\`mermaid\n${mermaid}\`\`\``);
    }
  });

  it('keep machine files pasteable into the Stately visualizer: only xstate is imported at run time', async () => {
    for (const name of Object.keys(batonMachines)) {
      const source = await readFile(join(root, 'machines', `${name}.ts`), 'utf8');
      const imports = [...source.matchAll(/^import (type )?.*from '([^']+)';$/gm)].filter((m) => !m[1]).map((m) => m[2]);
      expect(imports, name).toEqual(['xstate']);
    }
  });
});

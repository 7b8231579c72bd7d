import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createActor, createMachine, type AnyStateMachine, type AnyStateNode } from 'xstate';
import { batonMachines } from '../src/visualize/machines.ts';
import { visualize } from '../src/visualize/visualize.ts';
import { toMermaid } from '../src/visualize/mermaid.ts';
import { guardLabel } from '../src/visualize/graph.ts';
import { sessionMachine } from '../src/index.ts';

const root = fileURLToPath(new URL('..', import.meta.url));

interface JsonTransition {
  readonly source: string;
  readonly eventType: string;
  readonly target?: readonly string[];
  readonly guard?: unknown;
}
interface JsonStateNode {
  readonly states: Record<string, JsonStateNode>;
  readonly on: Record<string, JsonTransition[]>;
  readonly always?: JsonTransition[];
}

const edge = (source: string, eventType: string, targets: readonly string[], guard: unknown) =>
  `${source} --${eventType || 'always'}--> ${targets.join(',') || '(stay)'}${guard === undefined ? '' : ` [${guardLabel(guard)}]`}`;

/** Every transition of a machine, eventless ones included, with its guard. */
function machineEdges(machine: AnyStateMachine): string[] {
  const visit = (node: AnyStateNode): string[] => [
    ...[...node.transitions.values(), node.always ?? []].flat().map((t) => edge(node.id, t.eventType, (t.target ?? []).map((n) => n.id), t.guard)),
    ...Object.values(node.states as Record<string, AnyStateNode>).flatMap(visit),
  ];
  return visit(machine.root).sort();
}

/** Every transition a reader of `visualizations/<name>.json` finds. */
function jsonEdges(node: JsonStateNode): string[] {
  const unhash = (id: string) => id.replace(/^#/, '');
  return [
    ...[...Object.values(node.on).flat(), ...(node.always ?? [])].map((t) => edge(unhash(t.source), t.eventType, (t.target ?? []).map(unhash), t.guard)),
    ...Object.values(node.states).flatMap(jsonEdges),
  ].sort();
}

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

  it('write each machine as JSON with every transition, its targets and its guard: eventless and combined-guard ones too', async () => {
    for (const [name, machine] of Object.entries(batonMachines)) {
      const json = JSON.parse(await readFile(join(root, 'visualizations', `${name}.json`), 'utf8')) as JsonStateNode;
      expect(jsonEdges(json), name).toEqual(machineEdges(machine));
    }
    expect(machineEdges(sessionMachine)).toContain('session.running.idle --always--> session.running.busy [turnDue]');
    expect(machineEdges(sessionMachine)).toContain('session.running.busy --agent.done--> session.running.busy [isCurrentTurn && turnDue]');
  });

  it('write JSON that describes a machine but is no config: a machine created from it fails on start (the README says so)', async () => {
    for (const name of Object.keys(batonMachines)) {
      const json: unknown = JSON.parse(await readFile(join(root, 'visualizations', `${name}.json`), 'utf8'));
      // createMachine does not validate; the resolved `initial` it finds is not a state key.
      const actor = createActor(createMachine(json as never));
      actor.subscribe({ error: () => {} });
      actor.start();
      expect(actor.getSnapshot().status, name).toBe('error');
      expect(String(actor.getSnapshot().error), name).toMatch(/Initial state node .* not found/);
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

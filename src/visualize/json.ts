import type { AnyStateMachine, AnyStateNode } from 'xstate';

/**
 * The machine as XState describes it (`machine.toJSON()`), as JSON text: the resolved state
 * tree, with `#id` targets and every guard, action, delay and actor by its name in `setup()`.
 * For tools that read or diff a machine's structure. It is not a config: `createMachine`
 * cannot load it back (import the machine from `machines/<name>.ts` for that).
 *
 * Two things `toJSON()` alone would lose are put back, or a tool would see a different
 * machine: eventless transitions (`always`, which it leaves out) and combined guards
 * (`and([...])` is a function, which JSON drops, so the transition would read as unguarded;
 * it is written `{ "type": "xstate.and", "guards": [...] }`, the names XState gives it).
 *
 * @example
 * await writeFile('visualizations/session.json', toMachineJson(sessionMachine));
 */
export function toMachineJson(machine: AnyStateMachine): string {
  return `${JSON.stringify(describeNode(machine.root), keepCombinedGuards, 2)}\n`;
}

function describeNode(node: AnyStateNode): object {
  const states = Object.fromEntries(Object.entries(node.states as Record<string, AnyStateNode>).map(([key, child]) => [key, describeNode(child)]));
  return { ...node.definition, states, ...(node.always?.length && { always: node.always }) };
}

function keepCombinedGuards(_key: string, value: unknown): unknown {
  const combined = value as { name: string; guards?: unknown[] };
  // Other functions (the transitions' own `toJSON`) are dropped, as JSON does.
  return typeof value === 'function' && Array.isArray(combined.guards) ? { type: `xstate.${combined.name}`, guards: combined.guards } : value;
}

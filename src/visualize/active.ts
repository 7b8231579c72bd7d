import type { AnyStateNode } from 'xstate';

/** The ids of the state nodes active in a state value: `{ running: 'busy' }` → `session`, `session.running`, `session.running.busy`. */
export function activeStateIds(node: AnyStateNode, value: unknown): string[] {
  const states = node.states as Record<string, AnyStateNode>;
  if (typeof value === 'string') {
    const child = states[value];
    return child ? [child.id] : [];
  }
  if (value === null || typeof value !== 'object') return [];
  return Object.entries(value as Record<string, unknown>).flatMap(([key, sub]) => {
    const child = states[key];
    return child ? [child.id, ...activeStateIds(child, sub)] : [];
  });
}

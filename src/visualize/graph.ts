import type { AnyStateMachine, AnyStateNode } from 'xstate';

/** A machine's shape, neutral to any diagram format. */
export interface StateShape {
  readonly id: string;
  readonly key: string;
  readonly type: 'atomic' | 'compound' | 'parallel' | 'final' | 'history';
  readonly initial: string | undefined;
  readonly children: readonly StateShape[];
}

export interface EdgeShape {
  readonly source: string;
  readonly target: string;
  /** Event name, delay or completion, with its guard: `input [backlogFull]`, `after debounce`. */
  readonly label: string;
}

/** Reads the state tree of a machine. */
export function stateTree(machine: AnyStateMachine): StateShape {
  return shape(machine.root);
}

function shape(node: AnyStateNode): StateShape {
  const children = Object.values(node.states as Record<string, AnyStateNode>).map(shape);
  const initial = node.type === 'compound' ? (node.initial?.target[0]?.id ?? undefined) : undefined;
  return { id: node.id, key: node.key, type: node.type, initial, children };
}

/**
 * Every transition that changes state, in document order. Transitions that only run
 * actions (no target) change no state and are left out of diagrams.
 */
export function edges(machine: AnyStateMachine): EdgeShape[] {
  const out: EdgeShape[] = [];
  const visit = (node: AnyStateNode) => {
    for (const [eventType, defs] of node.transitions as Map<string, AnyTransition[]>) {
      for (const def of defs) pushEdges(out, node, eventLabel(eventType), def);
    }
    for (const def of (node.always ?? []) as AnyTransition[]) pushEdges(out, node, 'always', def);
    for (const child of Object.values(node.states as Record<string, AnyStateNode>)) visit(child);
  };
  visit(machine.root);
  return out;
}

interface AnyTransition {
  readonly target: readonly AnyStateNode[] | undefined;
  readonly guard?: unknown;
  readonly reenter?: boolean;
}

function pushEdges(out: EdgeShape[], source: AnyStateNode, event: string, def: AnyTransition) {
  const guard = def.guard === undefined ? '' : ` [${guardLabel(def.guard)}]`;
  for (const target of def.target ?? []) out.push({ source: source.id, target: target.id, label: `${event}${guard}` });
}

/** `xstate.after.debounce.session.…` → `after debounce`; `xstate.done.actor.analyzer1` → `done: analyzer1`. */
export function eventLabel(eventType: string): string {
  const after = /^xstate\.after\.([^.]+)\./.exec(eventType);
  if (after) return `after ${after[1]}`;
  const done = /^xstate\.(done|error)\.actor\.(.+)$/.exec(eventType);
  if (done) return `${done[1]}: ${done[2]}`;
  return eventType;
}

export function guardLabel(guard: unknown): string {
  if (typeof guard === 'string') return guard;
  // Combinators (`and`, `or`, `not`) are functions carrying their type and operands.
  const g = guard as { type?: string; guards?: unknown[]; params?: { guards?: unknown[] }; name?: string } | null;
  const parts = g?.guards ?? g?.params?.guards;
  if (typeof guard === 'function' && !parts) return g?.name || 'guard';
  const op = g?.type ?? `xstate.${g?.name ?? ''}`;
  if (parts && (op === 'xstate.and' || op === 'xstate.or')) {
    return parts.map(guardLabel).join(op === 'xstate.and' ? ' && ' : ' || ');
  }
  if (op === 'xstate.not' && parts?.[0] !== undefined) return `!${guardLabel(parts[0])}`;
  return g?.type ?? 'guard';
}

/**
 * Edges as a diagram can draw them: between states that are siblings. A transition from a
 * nested state to a state outside its parent is drawn from the ancestor that is the
 * target's sibling (`debouncing → busy` becomes `collecting → busy`, same label); one
 * declared on a parent for all its children (`terminate` on the root) is drawn from each
 * child that can take it.
 */
export function diagramEdges(machine: AnyStateMachine): EdgeShape[] {
  const parent = new Map<string, string>();
  const kind = new Map<string, StateShape['type']>();
  const walk = (s: StateShape) => {
    kind.set(s.id, s.type);
    for (const c of s.children) {
      parent.set(c.id, s.id);
      walk(c);
    }
  };
  const tree = stateTree(machine);
  walk(tree);
  const ancestors = (id: string) => {
    const chain = [id];
    for (let p = parent.get(id); p !== undefined; p = parent.get(p)) chain.push(p);
    return chain;
  };
  const children = (id: string) => [...parent].filter(([, p]) => p === id).map(([c]) => c);
  const out: EdgeShape[] = [];
  const seen = new Set<string>();
  const push = (e: EdgeShape) => {
    const key = `${e.source}>${e.target}>${e.label}`;
    if (!seen.has(key)) out.push(e), seen.add(key);
  };
  for (const e of edges(machine)) {
    const up = ancestors(e.source);
    const targetChain = ancestors(e.target);
    if (e.source === e.target) {
      push(e);
    } else if (targetChain.includes(e.source)) {
      // Declared on an ancestor of its target: every other child of that ancestor can take it.
      const via = targetChain[targetChain.indexOf(e.source) - 1]!;
      for (const c of children(e.source)) if (c !== via && kind.get(c) !== 'final') push({ ...e, source: c });
    } else {
      const lca = up.find((a) => targetChain.includes(a))!;
      const source = up[up.indexOf(lca) - 1]!;
      const target = targetChain[targetChain.indexOf(lca) - 1]!;
      push({ source, target, label: e.label });
    }
  }
  return out;
}

import {
  createActor,
  SimulatedClock,
  type AnyMachineSnapshot,
  type AnyStateMachine,
  type AnyStateNode,
  type EventObject,
  type InspectionEvent,
} from 'xstate';
import { getShortestPaths, getSimplePaths } from 'xstate/graph';
import { activeStateIds } from '../visualize/active.ts';

/** One step of a machine: the snapshot before, the event, the snapshot after, and what it emitted. */
export interface Step {
  readonly from: AnyMachineSnapshot;
  readonly event: EventObject;
  readonly to: AnyMachineSnapshot;
  /** Events the machine emitted (`emit`) during the step, in order. */
  readonly emitted: readonly EventObject[];
}

export interface ModelCheckOptions {
  /**
   * The machine's inputs to start from; every one is explored and coverage is the union.
   * @default [undefined]
   */
  inputs?: readonly unknown[];
  /** The events to try in each state, with payload samples; or a function of the state. */
  events: readonly EventObject[] | ((snapshot: AnyMachineSnapshot) => readonly EventObject[]);
  /**
   * The key that decides when two snapshots are the same state. Abstract unbounded context
   * (counters, growing lists) here, or the walk never ends.
   * @default JSON of `{ value, context }`
   */
  serializeState?: (snapshot: AnyMachineSnapshot) => string;
  /** Predicates every reachable snapshot must satisfy, by name. */
  invariants?: Readonly<Record<string, (snapshot: AnyMachineSnapshot) => boolean>>;
  /** Predicates every step must satisfy, by name. */
  stepInvariants?: Readonly<Record<string, (step: Step) => boolean>>;
  /** Steps from the start beyond which states are not expanded. @default 25 */
  maxDepth?: number;
  /** Most states to visit; more is an error (make `serializeState` coarser). @default 20000 */
  limit?: number;
  /** `shortest`: one shortest path per state. `simple`: every simple path (slower, more paths). @default 'shortest' */
  paths?: 'shortest' | 'simple';
  /** A name for the report. @default the machine's id */
  name?: string;
}

export interface Violation {
  readonly invariant: string;
  /** The shortest path from the start to the failure: each event and the state value it led to. */
  readonly path: readonly { readonly event: string; readonly state: unknown }[];
  readonly detail?: string;
}

export interface ModelCheckReport {
  readonly name: string;
  readonly states: { readonly reached: number; readonly total: number; readonly missing: readonly string[] };
  readonly transitions: { readonly taken: number; readonly total: number; readonly missing: readonly string[] };
  readonly violations: readonly Violation[];
  readonly ok: boolean;
  /** One line, e.g. `myMachine: states 7/7, transitions 18/18, invariants ok`. */
  readonly summary: string;
}

/**
 * Model-checks any XState machine: walks its reachable states with `xstate/graph`, tries
 * every event in every state on a real actor (restored from the state, on a simulated
 * clock), checks the invariants at every step, and reports state and transition coverage
 * with the shortest path to each broken invariant. Delayed (`after`) transitions are
 * reached through their `xstate.after.…` events, added automatically.
 *
 * @example
 * const report = checkMachine(sessionMachine, {
 *   inputs: [{ sessionId: 's', settings }],
 *   events: [{ type: 'activate' }, { type: 'input', input: { id: 'a', content: 'x' } }],
 *   invariants: { 'busy has a turn': (s) => !s.matches({ running: 'busy' }) || s.context.turn !== null },
 * });
 * expect(report.violations).toEqual([]);
 */
export function checkMachine(machine: AnyStateMachine, options: ModelCheckOptions): ModelCheckReport {
  const name = options.name ?? machine.id;
  const maxDepth = options.maxDepth ?? 25;
  const serialize = options.serializeState ?? ((s: AnyMachineSnapshot) => JSON.stringify({ value: s.value, context: s.context }));
  const catalog = transitionCatalog(machine);
  const allStates = stateIds(machine.root);
  const delayed = [...catalog.values()].map((t) => t.eventType).filter((type) => type.startsWith('xstate.after.'));
  const afterEvents = [...new Set(delayed)].map((type) => ({ type }));
  const eventsFor = (s: AnyMachineSnapshot): readonly EventObject[] => [
    ...(typeof options.events === 'function' ? options.events(s) : options.events),
    ...afterEvents,
  ];
  const reachedStates = new Set<string>();
  const taken = new Set<string>();
  const violations = new Map<string, Violation>();
  const violate = (invariant: string, path: Violation['path'], detail?: string) => {
    const known = violations.get(invariant);
    if (!known || known.path.length > path.length) violations.set(invariant, { invariant, path, ...(detail && { detail }) });
  };

  for (const input of options.inputs ?? [undefined]) {
    const traversal = {
      events: eventsFor,
      serializeState: serialize,
      limit: options.limit ?? 20_000,
      ...(input !== undefined && { input }),
    };
    const paths = options.paths === 'simple' ? getSimplePaths(machine, traversal as never) : getShortestPaths(machine, traversal as never);
    const expanded = new Set<string>();
    for (const statePath of paths) {
      const from = statePath.state as AnyMachineSnapshot;
      const prefix = statePath.steps.slice(1).map((s) => ({ event: (s.event as EventObject).type, state: (s.state as AnyMachineSnapshot).value }));
      const key = serialize(from);
      activeStateIds(machine.root, from.value).forEach((id) => reachedStates.add(id));
      for (const [invariant, holds] of Object.entries(options.invariants ?? {})) {
        if (!safely(() => holds(from))) violate(invariant, [...prefix, { event: '(reached)', state: from.value }]);
      }
      // A final machine takes no more events; past the depth bound nothing is expanded.
      // (Finality is read from the state value: traversal snapshots' `status` is not reliable.)
      if (isFinal(machine, from) || statePath.steps.length > maxDepth || expanded.has(key)) continue;
      expanded.add(key);
      for (const event of eventsFor(from)) {
        const result = replay(machine, from, event, input);
        const path = [...prefix, { event: event.type, state: result.to?.value }];
        if (result.error !== undefined) {
          violate('no errors', path, String(result.error));
          continue;
        }
        result.transitions.forEach((t) => taken.add(catalog.get(t)?.key ?? 'unknown'));
        const to = result.to!;
        activeStateIds(machine.root, to.value).forEach((id) => reachedStates.add(id));
        const step: Step = { from, event, to, emitted: result.emitted };
        for (const [invariant, holds] of Object.entries(options.stepInvariants ?? {})) {
          if (!safely(() => holds(step))) violate(invariant, path);
        }
        for (const [invariant, holds] of Object.entries(options.invariants ?? {})) {
          if (!safely(() => holds(to))) violate(invariant, path);
        }
      }
    }
  }

  const allTransitions = [...catalog.values()].map((t) => t.key);
  const missingStates = allStates.filter((id) => !reachedStates.has(id));
  const missingTransitions = allTransitions.filter((k) => !taken.has(k));
  const list = [...violations.values()];
  const states = { reached: allStates.length - missingStates.length, total: allStates.length, missing: missingStates };
  const transitions = { taken: allTransitions.length - missingTransitions.length, total: allTransitions.length, missing: missingTransitions };
  const verdict = list.length === 0 ? 'invariants ok' : `${list.length} invariant(s) broken: ${list.map((v) => v.invariant).join(', ')}`;
  return {
    name,
    states,
    transitions,
    violations: list,
    ok: list.length === 0,
    summary: `${name}: states ${states.reached}/${states.total}, transitions ${transitions.taken}/${transitions.total}, ${verdict}`,
  };
}

/** Formats a violation's path for a failure message: `start → activate → running.idle → …`. */
export function formatPath(violation: Violation): string {
  const steps = violation.path.map((s) => `  --${s.event}--> ${JSON.stringify(s.state)}`);
  return [`invariant "${violation.invariant}" broken${violation.detail ? ` (${violation.detail})` : ''}:`, '  (start)', ...steps].join('\n');
}

interface Replay {
  readonly to?: AnyMachineSnapshot;
  readonly emitted: EventObject[];
  readonly transitions: object[];
  readonly error?: unknown;
}

/** Runs one event on a real actor restored from `from`, on a clock that never moves. */
function replay(machine: AnyStateMachine, from: AnyMachineSnapshot, event: EventObject, input: unknown): Replay {
  const emitted: EventObject[] = [];
  const transitions: object[] = [];
  let recording = false;
  let error: unknown;
  // Traversal snapshots can carry a stale `status`; the state value is the truth.
  const persisted = { ...(machine.getPersistedSnapshot(from) as object), status: isFinal(machine, from) ? 'done' : 'active' };
  const actor = createActor(machine, {
    snapshot: persisted as never,
    clock: new SimulatedClock(),
    ...(input !== undefined && { input }),
    inspect: (e: InspectionEvent) => {
      if (recording && e.type === '@xstate.microstep' && e.actorRef === actor) transitions.push(...e._transitions);
    },
  });
  actor.on('*', (e) => {
    if (recording) emitted.push(e);
  });
  actor.subscribe({ error: (e) => (error = e) });
  try {
    actor.start();
    recording = true;
    actor.send(event);
    const to = actor.getSnapshot();
    if (to.status === 'error') error ??= to.error;
    return error === undefined ? { to, emitted, transitions } : { emitted, transitions, error };
  } catch (thrown) {
    return { emitted, transitions, error: thrown };
  } finally {
    actor.stop();
  }
}

interface CatalogEntry {
  readonly key: string;
  readonly eventType: string;
}

/** Every transition definition of the machine, keyed `source --event[#n]--> targets`. */
function transitionCatalog(machine: AnyStateMachine): Map<object, CatalogEntry> {
  const catalog = new Map<object, CatalogEntry>();
  const visit = (node: AnyStateNode) => {
    const add = (eventType: string, defs: readonly { target?: readonly AnyStateNode[] }[]) =>
      defs.forEach((def, i) => {
        const targets = (def.target ?? []).map((t) => t.id).join(',') || '(stay)';
        const label = eventType === '' ? 'always' : eventType;
        catalog.set(def, { key: `${node.id} --${label}${defs.length > 1 ? `#${i + 1}` : ''}--> ${targets}`, eventType });
      });
    for (const [eventType, defs] of node.transitions as Map<string, { target?: readonly AnyStateNode[] }[]>) add(eventType, defs);
    add('', (node.always ?? []) as { target?: readonly AnyStateNode[] }[]);
    Object.values(node.states as Record<string, AnyStateNode>).forEach(visit);
  };
  visit(machine.root);
  return catalog;
}

function stateIds(root: AnyStateNode): string[] {
  const ids: string[] = [];
  const visit = (node: AnyStateNode) => {
    for (const child of Object.values(node.states as Record<string, AnyStateNode>)) {
      ids.push(child.id);
      visit(child);
    }
  };
  visit(root);
  return ids;
}

function isFinal(machine: AnyStateMachine, snapshot: AnyMachineSnapshot): boolean {
  const top = typeof snapshot.value === 'string' ? (machine.root.states as Record<string, AnyStateNode>)[snapshot.value] : undefined;
  return top?.type === 'final';
}

function safely(check: () => boolean): boolean {
  try {
    return check();
  } catch {
    return false;
  }
}

import type fc from 'fast-check';
import { SimulatedClock } from 'xstate';
import { createRuntime, type LoadedSession, type Runtime, type RuntimeOptions, type SessionEvent, type Store, type Turn } from '../src/index.ts';

/**
 * Lets every pending promise callback and deferred task run, and the work they start in turn
 * (a step's commit, then its publication, its receipt and its effects). Not a sleep: no time
 * passes on a simulated clock; a few turns of the event loop, so that a commit acknowledged
 * asynchronously is followed through too.
 */
export async function settle(turns = 10): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/**
 * Releases every task a fast-check scheduler holds and lets the runtime work they lead to run,
 * until none is left: a turn's agent is called only after its start was committed, so it may
 * schedule its task after `waitIdle` found the scheduler empty.
 */
export async function runScheduled(s: fc.Scheduler): Promise<void> {
  do {
    await s.waitIdle();
    await settle();
  } while (s.count() > 0);
}

/** One agent call that the test finishes by hand. */
export interface PendingTurn {
  readonly turn: Turn;
  resolve(text?: string): void;
  reject(error: unknown): void;
}

/**
 * An agent whose turns the test completes explicitly, and which records the largest
 * number of turns it ever saw running at once per session (C1).
 */
export function controlledAgent() {
  const calls: PendingTurn[] = [];
  const running = new Map<string, number>();
  const maxConcurrent = new Map<string, number>();
  const agent = (turn: Turn) =>
    new Promise<string | void>((resolve, reject) => {
      const now = (running.get(turn.sessionId) ?? 0) + 1;
      running.set(turn.sessionId, now);
      maxConcurrent.set(turn.sessionId, Math.max(now, maxConcurrent.get(turn.sessionId) ?? 0));
      const leave = () => running.set(turn.sessionId, (running.get(turn.sessionId) ?? 1) - 1);
      calls.push({
        turn,
        resolve: (text) => {
          leave();
          resolve(text);
        },
        reject: (error) => {
          leave();
          reject(error);
        },
      });
    });
  return {
    agent,
    calls,
    /** The latest call not yet finished by the test, for a session. */
    last: (sessionId?: string) => [...calls].reverse().find((c) => sessionId === undefined || c.turn.sessionId === sessionId),
    maxConcurrent: (sessionId: string) => maxConcurrent.get(sessionId) ?? 0,
    contents: () => calls.map((c) => c.turn.inputs.map((i) => i.content)),
  };
}

/** A runtime on a simulated clock, recording every event. */
export function testRuntime(options: Partial<RuntimeOptions> & Pick<RuntimeOptions, 'agent'>) {
  const clock = new SimulatedClock();
  // Commits at every event-loop turn: settle() turns the loop, it does not let real time pass.
  const runtime: Runtime = createRuntime({ clock, commitDelayMs: 0, ...options });
  const events: SessionEvent[] = [];
  runtime.events$.subscribe((e) => events.push(e));
  return {
    runtime,
    clock,
    events,
    of: (sessionId: string) => events.filter((e) => e.sessionId === sessionId),
    types: (sessionId: string) => events.filter((e) => e.sessionId === sessionId).map((e) => e.type),
    dones: (sessionId?: string) =>
      events.flatMap((e) => (e.type === 'done' && (sessionId === undefined || e.sessionId === sessionId) ? [e.data] : [])),
    /** Advances simulated time, then lets the resulting work run. */
    async advance(ms: number) {
      clock.increment(ms);
      await settle();
    },
  };
}

/** Checks C8 on a recorded stream: per session, seq from 1, +1 each time. */
export function seqGaps(events: readonly SessionEvent[]): string[] {
  const last = new Map<string, number>();
  const problems: string[] = [];
  for (const e of events) {
    const expected = (last.get(e.sessionId) ?? 0) + 1;
    if (e.seq !== expected) problems.push(`${e.sessionId}: seq ${e.seq}, expected ${expected}`);
    last.set(e.sessionId, e.seq);
  }
  return problems;
}

/** Checks C1/C8 on a recorded stream: a turn's events sit between `state running` and its `done`. */
export function turnOverlaps(events: readonly SessionEvent[]): string[] {
  const open = new Map<string, boolean>();
  const problems: string[] = [];
  for (const e of events) {
    if (e.type === 'state' && e.data.state === 'running') {
      if (open.get(e.sessionId)) problems.push(`${e.sessionId}: turn started at seq ${e.seq} while another ran`);
      open.set(e.sessionId, true);
    }
    if (e.type === 'message.delta' && !open.get(e.sessionId)) problems.push(`${e.sessionId}: delta outside a turn at seq ${e.seq}`);
    if (e.type === 'done') open.set(e.sessionId, false);
  }
  return problems;
}

/** Everything a store keeps of a session, read without claiming it (tests look, they do not run it). */
export async function stored(store: Store, sessionId: string): Promise<LoadedSession | undefined> {
  const loaded = await store.load(sessionId, { recent: 1000, history: 1000, claim: false });
  return loaded && !('ownedBy' in loaded) ? loaded : undefined;
}

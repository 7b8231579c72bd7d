/**
 * Turn throughput: every session sends one input at a time (the next after its `done`),
 * all sessions at once, with a no-op async agent and batching off. Baton against the
 * ways people hand-roll the same guarantee, and against the ceiling of any XState design.
 */
import PQueue from 'p-queue';
import { createActor, emit, setup } from 'xstate';
import { createRuntime, sessionMachine } from '../src/index.ts';

const agent = async () => {};

/** Submits one input of a session; resolves when its turn is done. */
type Submit = (session: number, input: number) => Promise<void>;
export interface Contender {
  readonly name: string;
  setup(sessions: number): { submit: Submit; close(): Promise<void> | void };
}

export const chain: Contender = {
  name: 'promise chain',
  setup(sessions) {
    const tails = Array.from({ length: sessions }, () => Promise.resolve());
    return { submit: (s) => (tails[s] = tails[s]!.then(agent)), close: () => undefined };
  },
};

export const pqueue: Contender = {
  name: 'p-queue (concurrency 1)',
  setup(sessions) {
    const queues = Array.from({ length: sessions }, () => new PQueue({ concurrency: 1 }));
    return { submit: (s) => queues[s]!.add(agent), close: () => undefined };
  },
};

const loopMachine = setup({ types: { events: {} as { type: 'INPUT' } | { type: 'DONE' } } }).createMachine({
  initial: 'idle',
  states: {
    idle: { on: { INPUT: { target: 'busy', actions: emit({ type: 'start' }) } } },
    busy: { on: { DONE: { target: 'idle', actions: emit({ type: 'done' }) } } },
  },
});

export const xstateLoop: Contender = {
  name: 'minimal XState loop',
  setup(sessions) {
    const waiting: (() => void)[] = [];
    const actors = Array.from({ length: sessions }, (_, s) => {
      const actor = createActor(loopMachine);
      actor.on('start', () => void agent().then(() => actor.send({ type: 'DONE' })));
      actor.on('done', () => waiting[s]?.());
      actor.start();
      return actor;
    });
    return {
      submit: (s) =>
        new Promise<void>((resolve) => {
          waiting[s] = resolve;
          actors[s]!.send({ type: 'INPUT' });
        }),
      close: () => actors.forEach((a) => a.stop()),
    };
  },
};

export const baton: Contender = {
  name: 'Baton',
  setup(sessions) {
    const runtime = createRuntime({ agent, debounceMs: 0 });
    const waiting = new Map<string, Map<string, () => void>>();
    runtime.events$.subscribe((e) => {
      if (e.type !== 'done') return;
      const forSession = waiting.get(e.sessionId);
      for (const id of e.data.input_ids) {
        forSession?.get(id)?.();
        forSession?.delete(id);
      }
    });
    return {
      submit: (s, i) =>
        new Promise<void>((resolve, reject) => {
          const sessionId = `s${s}`;
          const id = `m${i}`;
          let forSession = waiting.get(sessionId);
          if (!forSession) waiting.set(sessionId, (forSession = new Map()));
          forSession.set(id, resolve);
          // Not awaited here: the session is claimed at the call, and the input is done when its `done` comes.
          runtime.send(sessionId, { id, content: 'x' }).then((receipt) => {
            if (receipt.status !== 'accepted') reject(new Error(`bench input rejected: ${receipt.code}`));
          }, reject);
        }),
      close: () => runtime.shutdown({ drainMs: 0 }),
    };
  },
};

/** One input at a time per session; returns turns per second. */
export async function sequential(contender: Contender, sessions: number, perSession: number): Promise<number> {
  const { submit, close } = contender.setup(sessions);
  const start = performance.now();
  await Promise.all(
    Array.from({ length: sessions }, async (_, s) => {
      for (let i = 0; i < perSession; i++) await submit(s, i);
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  await close();
  return (sessions * perSession) / seconds;
}

/** Every input of every session at once; returns inputs per second. */
export async function burst(contender: Contender, sessions: number, perSession: number): Promise<number> {
  const { submit, close } = contender.setup(sessions);
  const start = performance.now();
  const all: Promise<void>[] = [];
  for (let s = 0; s < sessions; s++) for (let i = 0; i < perSession; i++) all.push(submit(s, i));
  await Promise.all(all);
  const seconds = (performance.now() - start) / 1000;
  await close();
  return (sessions * perSession) / seconds;
}

/**
 * Not a contender: Baton's session machine alone, driven synchronously (input, then the
 * agent's done) with no host, store or agent — where the engine's own cost ends and the
 * runtime's begins. Returns turns per second.
 */
export function machineAlone(sessions: number, perSession: number): number {
  const settings = { debounceMs: 0, maxWaitMs: 0, busyPolicy: 'collect', backlogCap: 100, turnTimeoutMs: 120_000, commandLane: 'priority', commandHelp: [] } as const;
  const actors = Array.from({ length: sessions }, (_, s) => {
    const actor = createActor(sessionMachine, { input: { sessionId: `s${s}`, settings } });
    actor.on('*', () => undefined);
    actor.start();
    actor.send({ type: 'activate' });
    return actor;
  });
  const start = performance.now();
  for (let turn = 1; turn <= perSession; turn++) {
    for (const actor of actors) {
      actor.send({ type: 'input', input: { id: `m${turn}`, content: 'x' } });
      actor.send({ type: 'agent.done', turnId: turn });
    }
  }
  const seconds = (performance.now() - start) / 1000;
  for (const actor of actors) actor.stop();
  return (sessions * perSession) / seconds;
}

import { createStore } from '@xstate/store';
import type { ErrorCode } from '../../machines/events.ts';

export interface LastError {
  readonly code: ErrorCode | string;
  readonly message: string;
  readonly at: number;
}

/**
 * The runtime's directory: small shared state outside the sessions — totals, the last
 * error of each session, and how many clients each has attached — for dashboards such as
 * the gateway's `/inspect` page. Session logic never reads it. What a session is doing
 * right now is asked of the session itself (`runtime.status`).
 */
export function createDirectory() {
  return createStore({
    context: {
      turns: 0,
      inputs: 0,
      errors: 0,
      lastErrors: {} as Readonly<Record<string, LastError>>,
      clients: {} as Readonly<Record<string, number>>,
    },
    on: {
      /** Turns and inputs since the last count: counted in bulk, not one store update each. */
      counted: (ctx, e: { turns: number; inputs: number }) => ({ ...ctx, turns: ctx.turns + e.turns, inputs: ctx.inputs + e.inputs }),
      errorSeen: (ctx, e: { sessionId: string; error: LastError }) => ({
        ...ctx,
        errors: ctx.errors + 1,
        lastErrors: { ...ctx.lastErrors, [e.sessionId]: e.error },
      }),
      clientAttached: (ctx, e: { sessionId: string }) => ({
        ...ctx,
        clients: { ...ctx.clients, [e.sessionId]: (ctx.clients[e.sessionId] ?? 0) + 1 },
      }),
      clientDetached: (ctx, e: { sessionId: string }) => {
        const { [e.sessionId]: count = 0, ...rest } = ctx.clients;
        return { ...ctx, clients: count > 1 ? { ...rest, [e.sessionId]: count - 1 } : rest };
      },
      sessionDeleted: (ctx, e: { sessionId: string }) => {
        const { [e.sessionId]: _gone, ...lastErrors } = ctx.lastErrors;
        return { ...ctx, lastErrors };
      },
    },
  });
}

export type Directory = ReturnType<typeof createDirectory>;

/**
 * Counts turns and inputs for a directory at most once per microtask: a dashboard reads the
 * totals every 100 ms, and one store update per input would cost more than the input.
 */
export function createCounter(directory: Directory) {
  let turns = 0;
  let inputs = 0;
  const flush = () => {
    directory.trigger.counted({ turns, inputs });
    turns = inputs = 0;
  };
  const schedule = () => {
    if (turns + inputs === 1) queueMicrotask(flush);
  };
  return {
    turn(): void {
      turns++;
      schedule();
    },
    input(): void {
      inputs++;
      schedule();
    },
  };
}

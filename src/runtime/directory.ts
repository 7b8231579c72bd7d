import { createStore } from '@xstate/store';
import type { ErrorCode } from '../../machines/events.ts';

export interface LastError {
  readonly code: ErrorCode | string;
  readonly message: string;
  readonly at: number;
}

/** How many sessions' last errors the directory keeps (the newest). */
export const LAST_ERRORS_KEPT = 256;

/**
 * The runtime's directory: small shared state outside the sessions — totals, and the last
 * error of the sessions that failed most recently — for dashboards such as the gateway's
 * `/inspect` page. Session logic never reads it. What a session is doing right now is asked
 * of the session itself (`runtime.status`). Every update is O(1) or bounded: nothing here
 * grows with the number of sessions, so a reconnect storm of thousands of clients costs
 * nothing per client.
 */
export function createDirectory() {
  return createStore({
    context: {
      turns: 0,
      inputs: 0,
      errors: 0,
      /** Clients attached right now, over all sessions. */
      clients: 0,
      /** `[sessionId, error]`, oldest first, at most {@link LAST_ERRORS_KEPT}. */
      lastErrors: [] as readonly (readonly [string, LastError])[],
    },
    on: {
      /** Turns and inputs since the last count: counted in bulk, not one store update each. */
      counted: (ctx, e: { turns: number; inputs: number }) => ({ ...ctx, turns: ctx.turns + e.turns, inputs: ctx.inputs + e.inputs }),
      errorSeen: (ctx, e: { sessionId: string; error: LastError }) => ({
        ...ctx,
        errors: ctx.errors + 1,
        lastErrors: [...ctx.lastErrors.filter(([id]) => id !== e.sessionId), [e.sessionId, e.error] as const].slice(-LAST_ERRORS_KEPT),
      }),
      clientAttached: (ctx) => ({ ...ctx, clients: ctx.clients + 1 }),
      clientDetached: (ctx) => ({ ...ctx, clients: Math.max(0, ctx.clients - 1) }),
      sessionDeleted: (ctx, e: { sessionId: string }) =>
        ctx.lastErrors.some(([id]) => id === e.sessionId) ? { ...ctx, lastErrors: ctx.lastErrors.filter(([id]) => id !== e.sessionId) } : ctx,
    },
  });
}

/** The last error the directory keeps for a session, if any. */
export function lastErrorOf(directory: Directory, sessionId: string): LastError | undefined {
  return directory.get().context.lastErrors.findLast(([id]) => id === sessionId)?.[1];
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

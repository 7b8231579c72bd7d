/**
 * The time source of a runtime. Structurally the same as XState's `Clock` (so XState's
 * `SimulatedClock` fits), plus an optional `now()` for turn durations.
 */
export interface Clock {
  setTimeout(fn: (...args: unknown[]) => void, ms: number): unknown;
  clearTimeout(id: unknown): void;
  /** Milliseconds; used only to measure `done.stats.duration_ms`. @default Date.now */
  now?(): number;
}

export const systemClock: Clock = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (id) => clearTimeout(id as NodeJS.Timeout),
  now: () => Date.now(),
};

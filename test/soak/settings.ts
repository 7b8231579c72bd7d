/** The soak gateway's session settings: short enough that hangs, batches and passivation all happen within a run. */
export const SOAK_SETTINGS = { debounceMs: 50, maxWaitMs: 200, turnTimeoutMs: 1000, idleTimeoutMs: 2000 } as const;

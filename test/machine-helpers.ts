import type { SessionSettings } from '../src/index.ts';

/** Machine settings with the runtime's defaults, overridable per test. */
export function settings(overrides: Partial<SessionSettings> = {}): SessionSettings {
  return {
    debounceMs: 300,
    maxWaitMs: 2000,
    busyPolicy: 'collect',
    backlogCap: 100,
    turnTimeoutMs: 120_000,
    commandLane: 'priority',
    commandHelp: [],
    ...overrides,
  };
}

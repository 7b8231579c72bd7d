import { sessionDefaults, type SessionSettings } from '../src/index.ts';

/** Machine settings with the runtime's defaults, overridable per test. */
export function settings(overrides: Partial<SessionSettings> = {}): SessionSettings {
  return { ...sessionDefaults, commandHelp: [], ...overrides };
}

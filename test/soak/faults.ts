/** The soak clients' mix of actions and faults, and the malformed frames they send. */

/** Malformed frames, each with the typed error PROTOCOL.md names for it (after the handshake: the connection stays open). */
export const MALFORMED = {
  'bad data': (id) => ({ payload: JSON.stringify({ version: 'aep/v1', id, event: { type: 'input', data: { content: 42 } } }), code: 'INVALID_MESSAGE', byId: true }),
  'unknown type': (id) => ({ payload: JSON.stringify({ version: 'aep/v1', id, event: { type: 'dance', data: {} } }), code: 'INVALID_MESSAGE', byId: true }),
  'wrong version': (id) => ({ payload: JSON.stringify({ version: 'aep/v0', id, event: { type: 'ping', data: {} } }), code: 'VERSION_MISMATCH', byId: true }),
  'second init': (id) => ({ payload: JSON.stringify({ version: 'aep/v1', id, event: { type: 'init', data: { version: 'aep/v1' } } }), code: 'PROTOCOL_VIOLATION', byId: true }),
  'not JSON': (id) => ({ payload: `{"version":"aep/v1","id":"${id}",`, code: 'INVALID_MESSAGE', byId: false }),
  binary: () => ({ payload: Buffer.from([0xde, 0xad, 0xbe, 0xef]), code: 'INVALID_MESSAGE', byId: false }),
} satisfies Record<string, (id: string) => { payload: string | Buffer; code: string; byId: boolean }>;
export const MALFORMED_WEIGHTS = Object.fromEntries(Object.keys(MALFORMED).map((k) => [k, 1])) as Record<keyof typeof MALFORMED, number>;

/** What a session's client does next, by weight. */
export const ACTIONS = {
  input: 30,
  burst: 12,
  status: 5,
  stop: 4,
  'resent id': 5,
  malformed: 3,
  oversized: 1,
  'disconnect mid-turn': 4,
  'slow reader': 3,
  schedule: 5,
  'schedule cancel': 1,
} as const;
/** `--faults off`: the same traffic without the injected faults. */
export const CALM: Record<keyof typeof ACTIONS, number> = {
  ...ACTIONS,
  'resent id': 0,
  malformed: 0,
  oversized: 0,
  'disconnect mid-turn': 0,
  'slow reader': 0,
};

/**
 * What a session's client does with a `permission_request` (C19), by weight: allow it, deny
 * it, let it time out (`approvalTimeoutMs`), or `/stop` the turn that waits.
 */
export const DECISIONS = { allow: 5, deny: 2, ignore: 2, stop: 1 } as const;

/**
 * The schedules a client sets (C20), by weight: a one-shot 100–1500 ms away, one whose `at`
 * is up to 2 s in the past (due at once), or a recurring one every 1000–2500 ms (1000 is the
 * least `every` the runtime takes).
 */
export const SCHEDULES = { after: 7, 'at past': 2, every: 1 } as const;

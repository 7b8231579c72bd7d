import { z } from 'zod';
import { validateOptions } from '../validate.ts';
import type { BusyPolicy, CommandLane } from '../../machines/session.ts';
import type { InspectionEvent, Observer } from 'xstate';
import type { Agent } from './turn.ts';
import type { Tool } from './tool.ts';

export type InspectionObserver = Observer<InspectionEvent> | ((event: InspectionEvent) => void);
import type { Clock } from './clock.ts';
import type { CommandHandler, CommandSpec } from './commands.ts';
import type { SessionKind } from './kind.ts';
import type { Store } from './store.ts';
import type { OnboardingOptions } from './onboarding-kind.ts';

/** Settings that may differ per session; see {@link RuntimeOptions.settingsFor}. */
export interface SessionOptions {
  /**
   * Seal a batch this long after its latest input (C3). `0` turns batching off: every
   * input that finds the session idle starts a turn at once.
   * @default 300
   */
  debounceMs?: number;
  /**
   * Seal a batch at the latest this long after its first input (C3).
   * @default 2000
   */
  maxWaitMs?: number;
  /**
   * What inputs that arrive during a turn do (C4).
   * @default 'collect'
   */
  busyPolicy?: BusyPolicy;
  /**
   * Most inputs that may wait (open batch + backlog); past it the newest is rejected
   * with `SESSION_BUSY` — never dropped silently.
   * @default 100
   */
  backlogCap?: number;
  /**
   * A turn running longer is aborted with `TURN_TIMEOUT` (C7).
   * @default 120000
   */
  turnTimeoutMs?: number;
  /**
   * `priority`: commands run at once, even during a turn. `ordered`: in arrival order (C5).
   * `/stop` always acts at once: a stop that waited for the turn it stops could never work.
   * @default 'priority'
   */
  commandLane?: CommandLane;
}

export interface RuntimeOptions extends SessionOptions {
  /** Runs one turn. Required. */
  agent: Agent;
  /**
   * Inputs starting with this are commands (C5).
   * @default '/'
   */
  commandPrefix?: string;
  /** Extra commands by name (without the prefix): a handler or `{ description, handler }`. */
  commands?: Record<string, CommandHandler | CommandSpec>;
  /**
   * Tools every agent turn may call with `turn.callTool` (C19), made with `defineTool`.
   * An agent's own `agent.tools` are added; a name given twice is a `TypeError`.
   * @default []
   */
  tools?: readonly Tool[];
  /**
   * Time source for every delay (batching, timeouts, drain). Inject XState's
   * `SimulatedClock` in tests.
   * @default the global timers
   */
  clock?: Clock;
  /**
   * Per-session overrides, asked once when a session is created.
   * @default none
   */
  settingsFor?: (sessionId: string) => SessionOptions;
  /**
   * How many recent input ids each session remembers for duplicate detection (C10).
   * @default 1000
   */
  idempotencyWindow?: number;
  /**
   * An XState inspection observer attached to every session actor (e.g. `@statelyai/inspect`).
   * Costs throughput; off by default.
   * @default none
   */
  inspect?: InspectionObserver;
  /**
   * Where sessions are kept between activations and across restarts. A durable store
   * (`SqliteStore`) makes acknowledged inputs survive a crash (C12).
   * @default a MemoryStore
   */
  store?: Store;
  /**
   * How long a `permission_request` waits for the user's decision before it is a denial
   * (C19): the tool does not run, and the turn goes on with a `denied` result (code
   * `approval_timeout`). The deadline is stored: it survives passivation and restarts.
   * @default 300000 (5 minutes, as AEP's auto-deny)
   */
  approvalTimeoutMs?: number;
  /**
   * How many transcript entries the agent gets as `turn.history`.
   * @default 50
   */
  historyWindow?: number;
  /**
   * A session idle this long is passivated: snapshot saved, actor stopped (C11).
   * @default 600000
   */
  idleTimeoutMs?: number;
  /**
   * Live (activated) sessions kept at most. Past it, the least recently active idle sessions
   * are passivated at once (down to 90 % of the cap), so clients opening session after
   * session cannot exhaust memory before `idleTimeoutMs`. Sessions with work are never
   * passivated, so only sessions that all have work can exceed it.
   * @default 50000
   */
  maxLiveSessions?: number;
  /** The onboarding kind's analyzer and question texts. */
  onboarding?: OnboardingOptions;
  /**
   * Session kinds of your own, by name, chosen with `open(id, { kind })` or
   * `send(id, input, { kind })` when a session is created. `agent` and `onboarding` are built in.
   * @default {}
   */
  kinds?: Record<string, SessionKind>;
  /**
   * Where errors thrown by user code (an event subscriber, a command handler, an analyzer)
   * and store failures are reported (C7). They never take the process down and never stop
   * other subscribers from receiving events.
   * @default console.error
   */
  onError?: (error: unknown) => void;
  /**
   * After a failed commit (C16), how often the runtime tries to re-activate the sessions the
   * failure stopped, from what was committed; `/healthz` answers 503 until the store works.
   * @default 1000
   */
  storeRetryMs?: number;
  /**
   * How long an activation waits for the store to read (and, on a cluster, claim) a
   * session. A read not answered by then is given up: the sends waiting for it are rejected
   * with `StoreUnavailableError` (`INTERNAL_ERROR` on the wire), a retry after a failed
   * commit tries again later, and the next input reads again; a late answer is dropped.
   * A network store can lose a query with its connection and never answer it (measured with
   * the `postgres` client under `pg_terminate_backend`); without this the session's sends
   * would wait forever. Longer than a store's own lock waits (PostgreSQL: `leaseTtlMs`).
   * @default 30000
   */
  loadTimeoutMs?: number;
  /**
   * How often the runtime asks a store that can be shared (SQLite) whether this process
   * still owns it (C17); a fenced process stops every session and reports the fence.
   * @default 1000
   */
  ownerCheckMs?: number;
  /**
   * Retention: a stored session not written for this long, with no waiting input and no
   * live actor — a terminated one, or one nobody came back to — is deleted with its inbox,
   * events and transcript. Checked every hour (or every `retentionMs`, if shorter).
   * @default 2592000000 (30 days)
   */
  retentionMs?: number;
  /**
   * A cluster store only: how often this node sweeps for sessions with waiting inputs whose
   * node died (it claims and runs them), for mail and events whose hint it missed.
   * @default 2000
   */
  clusterSweepMs?: number;
  /**
   * Group commit: the least time between two store transactions. An idle store commits at
   * once; a busy one gathers the steps of this long into one transaction, so a reply
   * streamed one delta per event-loop tick costs a transaction every few ms, not one per
   * delta, and each session's deltas of that time are one step (bench/RESULTS.md). The
   * price: up to this much latency per step while the store is busy. 0 commits every
   * event-loop turn's steps at once: the lowest latency, one transaction per tick.
   * @default 4
   */
  commitDelayMs?: number;
  /**
   * An input's `content` (or an answer's text) longer than this many UTF-8 bytes is refused
   * with `InputLimitError` (`INVALID_MESSAGE`) naming it; nothing of it is stored.
   * @default 262144 (256 KiB)
   */
  maxContentBytes?: number;
  /**
   * An input id (the client message id, C10) longer than this many characters is refused
   * with `InputLimitError`. Ids are kept in every session's idempotency window.
   * @default 256
   */
  maxInputIdLength?: number;
  /**
   * A session id longer than this many characters is refused: by `send` and `respond` with
   * `InputLimitError` naming the input, by `open` with that error thrown.
   * @default 4096 (a gateway principal's session key: its id of up to 256 characters, escaped (up to 9 characters each), `/`, and a session id of up to 512)
   */
  maxSessionIdLength?: number;
  /**
   * Input metadata nested deeper than this (objects and arrays; a cycle counts as too deep) is
   * refused with `InputLimitError`: stores serialize it recursively.
   * @default 32
   */
  maxMetadataDepth?: number;
  /**
   * Input metadata longer than this many UTF-8 bytes as JSON is refused with `InputLimitError`.
   * @default 65536 (64 KiB)
   */
  maxMetadataBytes?: number;
}

export const sessionDefaults = {
  debounceMs: 300,
  maxWaitMs: 2000,
  busyPolicy: 'collect',
  backlogCap: 100,
  turnTimeoutMs: 120_000,
  commandLane: 'priority',
} as const satisfies Required<SessionOptions>;

export const runtimeDefaults = {
  ...sessionDefaults,
  commandPrefix: '/',
  idempotencyWindow: 1000,
  idleTimeoutMs: 600_000,
  maxLiveSessions: 50_000,
  historyWindow: 50,
  approvalTimeoutMs: 300_000,
  storeRetryMs: 1000,
  loadTimeoutMs: 30_000,
  ownerCheckMs: 1000,
  retentionMs: 30 * 24 * 3_600_000,
  clusterSweepMs: 2000,
  commitDelayMs: 4,
  maxContentBytes: 262_144,
  maxInputIdLength: 256,
  maxSessionIdLength: 4096,
  maxMetadataDepth: 32,
  maxMetadataBytes: 65_536,
} as const;

const millis = z.number().int().min(0).max(2_147_483_647);
const sessionShape = {
  debounceMs: millis.optional(),
  maxWaitMs: millis.optional(),
  busyPolicy: z.enum(['collect', 'followup', 'interrupt', 'reject', 'steer']).optional(),
  backlogCap: z.number().int().min(1).optional(),
  turnTimeoutMs: millis.min(1).optional(),
  commandLane: z.enum(['priority', 'ordered']).optional(),
};
const sessionSchema = z.strictObject(sessionShape);
const runtimeSchema = z.strictObject({
  ...sessionShape,
  agent: z.function(),
  commandPrefix: z.string().min(1).optional(),
  commands: z.record(z.string(), z.unknown()).optional(),
  tools: z.array(z.looseObject({ name: z.string(), parameters: z.object({}).loose(), run: z.function() })).optional(),
  clock: z.object({ setTimeout: z.function(), clearTimeout: z.function() }).loose().optional(),
  settingsFor: z.function().optional(),
  idempotencyWindow: z.number().int().min(1).optional(),
  inspect: z.union([z.function(), z.looseObject({})]).optional(),
  store: z.looseObject({ load: z.function(), commit: z.function(), eventsAfter: z.function(), sessionsWithPending: z.function(), prune: z.function() }).optional(),
  idleTimeoutMs: millis.min(1).optional(),
  maxLiveSessions: z.number().int().min(1).optional(),
  historyWindow: z.number().int().min(0).optional(),
  approvalTimeoutMs: millis.min(1).optional(),
  onboarding: z
    .strictObject({
      analyzer: z.function().optional(),
      questions: z.tuple([z.string().min(1), z.string().min(1), z.string().min(1)]).optional(),
    })
    .optional(),
  kinds: z
    .record(z.string(), z.object({ machine: z.object({}).loose(), input: z.function() }).loose())
    .optional(),
  onError: z.function().optional(),
  storeRetryMs: millis.min(1).optional(),
  loadTimeoutMs: millis.min(1).optional(),
  ownerCheckMs: millis.min(1).optional(),
  retentionMs: z.number().int().min(1).optional(),
  clusterSweepMs: millis.min(10).optional(),
  commitDelayMs: z.number().min(0).max(1000).optional(),
  maxContentBytes: z.number().int().min(1).optional(),
  maxInputIdLength: z.number().int().min(1).optional(),
  maxSessionIdLength: z.number().int().min(1).optional(),
  // Deeper metadata would overflow the stack where stores serialize it.
  maxMetadataDepth: z.number().int().min(0).max(1000).optional(),
  maxMetadataBytes: z.number().int().min(2).optional(),
});

/** Validates `createRuntime` options (see {@link validateOptions}). */
export function parseRuntimeOptions(options: RuntimeOptions): RuntimeOptions {
  return validateOptions('createRuntime', runtimeSchema, options);
}

export function parseSessionOptions(where: string, options: SessionOptions): SessionOptions {
  return validateOptions(where, sessionSchema, options);
}

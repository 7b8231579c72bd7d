import type { AepEvent, ErrorCode } from '../../machines/events.ts';
import type { BatonError } from '../errors.ts';

/**
 * One event of one session: an AEP server event (`type`, `data` exactly as on the wire)
 * with its session id and its per-session `seq` — from 1, strictly increasing, no gaps (C8).
 */
export type SessionEvent = { readonly sessionId: string; readonly seq: number } & AepEvent;

/** The synchronous answer of `runtime.send`. */
export interface Receipt {
  readonly status: 'accepted' | 'duplicate' | 'rejected';
  /**
   * For accepted inputs: `primary` (starts or joins a batch), `queued` (backlog while busy,
   * or waiting for activation), `injected` (steered into the running turn), `command`.
   */
  readonly mode?: 'primary' | 'queued' | 'injected' | 'command';
  /** For accepted inputs: `durable` once the store has it (it survives a crash), else `volatile`. */
  readonly durability?: 'durable' | 'volatile';
  /** For rejections: the wire code, e.g. `SESSION_BUSY`. */
  readonly code?: ErrorCode;
  /** For rejections: the typed error. `send` itself never throws. */
  readonly error?: BatonError;
  /** The session also reported this rejection as an `error` event in its stream, with `event_id` = the input's id (onboarding does). */
  readonly announced?: boolean;
}

/** What a session looks like from outside, for dashboards and `/status`-like needs. */
/** A schedule as a status shows it: when it is due next, and how it recurs. */
export interface ScheduleSummary {
  readonly id: string;
  readonly dueAt: number;
  readonly everyMs?: number;
  readonly cron?: string;
}

export interface SessionStatus {
  readonly sessionId: string;
  /** The session's kind: `agent`, `onboarding`, or one registered with the `kinds` option. */
  readonly kind: string;
  /**
   * `created`, `idle`, `collecting`, `busy`, `terminated` for agent sessions; onboarding adds
   * `complete`; user kinds report their own (the state value, unless the kind has a `status`
   * hook). `passivated`: saved in the store, no actor (C11); its next input or attach
   * activates it.
   */
  readonly state: 'created' | 'idle' | 'collecting' | 'busy' | 'complete' | 'terminated' | 'deleted' | 'passivated' | (string & {});
  /** Inputs waiting: the open batch plus the backlog (onboarding: answers waiting). */
  readonly backlog: number;
  /** Turns started (onboarding: questions answered). */
  readonly turns: number;
  /**
   * A turn or an analysis runs: the session's state carries the `busy` tag (see
   * `SessionTags`). An agent session's `state` also says `busy` while a command runs.
   */
  readonly busy: boolean;
  /**
   * The session asked the user something and waits for the answer (the `waiting-for-user`
   * tag), live or passivated: an onboarding question, a custom kind's prompt.
   */
  readonly waitingForUser: boolean;
  /** The session's schedules, earliest first, without their payloads (C20). */
  readonly schedules: readonly ScheduleSummary[];
  /** The seq of the latest event the session emitted. */
  readonly seq: number;
  /** The node that runs it, when another node of a cluster does. */
  readonly node?: string;
}

/** The input to `runtime.send`: `id` is the client message id (C10). */
export interface InputMessage {
  readonly id: string;
  readonly content: string;
  readonly metadata?: Readonly<Record<string, unknown>>;
}

/** The user's decision on a tool call that waits for approval (`permission_response` on the wire, C19). */
export interface PermissionDecision {
  /** The id of the `permission_request` (the tool call's id). */
  readonly id: string;
  readonly allowed: boolean;
  /** Why: handed to the agent in a denial's `error.message`. */
  readonly reason?: string;
}

/** An onboarding answer (`question_response` on the wire). */
export interface AnswerMessage {
  /** The client message id (C10). */
  readonly id: string;
  /** The question answered: `q1`, `q2` or `q3`. */
  readonly questionId: string;
  /** Question text → answer, as in AEP's `question_response`. */
  readonly answers: Readonly<Record<string, string | readonly string[]>>;
}

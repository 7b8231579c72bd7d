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
  /** For rejections: the wire code, e.g. `SESSION_BUSY`. */
  readonly code?: ErrorCode;
  /** For rejections: the typed error. `send` itself never throws. */
  readonly error?: BatonError;
}

/** What a session looks like from outside, for dashboards and `/status`-like needs. */
export interface SessionStatus {
  readonly sessionId: string;
  readonly state: 'created' | 'idle' | 'collecting' | 'busy' | 'terminated' | 'deleted';
  /** Inputs waiting: the open batch plus the backlog. */
  readonly backlog: number;
  readonly turns: number;
  /** The seq of the latest event the session emitted. */
  readonly seq: number;
}

/** The input to `runtime.send`: `id` is the client message id (C10). */
export interface InputMessage {
  readonly id: string;
  readonly content: string;
  readonly metadata?: Readonly<Record<string, unknown>>;
}

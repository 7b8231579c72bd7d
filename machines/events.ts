/**
 * The event vocabulary shared by the library and the wire: the AEP v1 server events
 * (PROTOCOL.md) that sessions emit. Types only, so every machine file can import it
 * with `import type` and still paste into the Stately visualizer unchanged.
 */

/** Every error code Baton uses; each is also the `code` of a typed error class. */
export type ErrorCode =
  | 'INVALID_MESSAGE'
  | 'PROTOCOL_VIOLATION'
  | 'VERSION_MISMATCH'
  | 'AUTH_REQUIRED'
  | 'UNAUTHORIZED'
  | 'SESSION_BUSY'
  | 'SESSION_NOT_FOUND'
  | 'SESSION_TERMINATED'
  | 'WORKER_CRASH'
  | 'TURN_TIMEOUT'
  | 'RATE_LIMITED'
  | 'GATEWAY_OVERLOAD'
  | 'INTERNAL_ERROR'
  | 'CONVERSATION_NOT_STARTED'
  | 'CONVERSATION_ALREADY_COMPLETE';

/** A session's lifecycle as announced by `state` events. */
export type SessionStateName = 'created' | 'running' | 'idle' | 'terminated' | 'deleted';

/** Why a turn did not succeed. */
export type DoneReason = 'stopped_by_user' | 'interrupted' | 'timeout' | 'failed' | 'shutdown';

export interface DoneData {
  readonly success: boolean;
  readonly stats: { readonly duration_ms: number };
  /** AEP's flag for deltas dropped under backpressure (set by the gateway). */
  readonly dropped: boolean;
  readonly reason?: DoneReason;
  /** The client message ids the turn consumed, in order. */
  readonly input_ids: readonly string[];
  /** Inputs that a stop or shutdown cancelled before they reached a turn. */
  readonly cancelled_input_ids?: readonly string[];
}

export interface Question {
  readonly question: string;
  readonly header: string;
  readonly options: readonly string[];
  readonly multi_select: boolean;
}

/** One AEP server event: `type` and `data` exactly as on the wire. */
export type AepEvent =
  | { readonly type: 'state'; readonly data: { readonly state: SessionStateName; readonly message?: string } }
  | { readonly type: 'message.start'; readonly data: { readonly id: string; readonly role: 'assistant'; readonly content_type: 'text' } }
  | { readonly type: 'message.delta'; readonly data: { readonly message_id: string; readonly content: string } }
  | { readonly type: 'message.end'; readonly data: { readonly message_id: string } }
  | {
      readonly type: 'message';
      readonly data: {
        readonly id: string;
        readonly role: 'assistant' | 'system';
        readonly content: string;
        readonly metadata?: Readonly<Record<string, unknown>>;
      };
    }
  | { readonly type: 'done'; readonly data: DoneData }
  | { readonly type: 'error'; readonly data: { readonly code: ErrorCode; readonly message: string; readonly event_id?: string } }
  | { readonly type: 'question_request'; readonly data: { readonly id: string; readonly questions: readonly Question[] } }
  | { readonly type: 'tool_call'; readonly data: ToolCallData }
  | { readonly type: 'tool_result'; readonly data: ToolResultData }
  | { readonly type: 'permission_request'; readonly data: PermissionRequestData };

/**
 * A tool call waits for the user's approval (C19). It is open until the call's
 * `tool_result` (same `id`): answered by `permission_response{id, allowed, reason?}`, or
 * denied by itself at `expires_at` (ms since the epoch, on the runtime's clock).
 */
export interface PermissionRequestData {
  readonly id: string;
  readonly tool_name: string;
  readonly input: unknown;
  readonly description?: string;
  readonly expires_at: number;
}

/** A turn called a tool (C19): `id` names the call; its `tool_result` carries the same id. */
export interface ToolCallData {
  readonly id: string;
  readonly name: string;
  readonly input: unknown;
}

/**
 * The one result of a tool call (C19): `output` when `status` is `ok`, else `error`
 * (`cancelled` when the turn ended while the tool ran).
 */
export interface ToolResultData {
  readonly id: string;
  readonly status: 'ok' | 'failed' | 'denied' | 'cancelled';
  readonly output?: unknown;
  readonly error?: { readonly code: string; readonly message: string };
}

/**
 * What a machine emits as session output. Identical to {@link AepEvent} except that a
 * `done` has no `stats` yet: a pure machine cannot read a clock, so the host measures the
 * turn and fills them in.
 */
export type MachineOutput =
  | Exclude<AepEvent, { type: 'done' }>
  | { readonly type: 'done'; readonly data: Omit<DoneData, 'stats'> };

/** The runtime's answer to `send`, decided synchronously by the session machine. */
export interface MachineReceipt {
  readonly status: 'accepted' | 'rejected';
  /** How an accepted input was taken: starts/joins a batch, waits in the backlog, steered, or a command. */
  readonly mode?: 'primary' | 'queued' | 'injected' | 'command';
  readonly code?: ErrorCode;
  readonly message?: string;
  /** The rejection is also an `error` event in the session's stream, naming the input (`event_id`). */
  readonly announced?: boolean;
}

/**
 * Typed errors. Each class's `code` is the AEP wire error code, so an error thrown in the
 * library and an `error` frame on the wire say the same thing.
 *
 * @example
 * const receipt = runtime.send('s1', { id: 'm1', content: 'hi' });
 * if (receipt.error instanceof SessionBusyError) retryLater();
 */
import type { ErrorCode } from '../machines/events.ts';

export type { ErrorCode };

/** The base class: every Baton error has a stable wire `code`. */
export class BatonError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Bad input: missing or malformed fields, an unknown command, a reused id with new content. */
export class InvalidMessageError extends BatonError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('INVALID_MESSAGE', message, options);
  }
}

/** The names of the runtime's input limits (options of `createRuntime`). */
export type InputLimitName = 'maxContentBytes' | 'maxInputIdLength' | 'maxSessionIdLength' | 'maxMetadataDepth' | 'maxMetadataBytes';

/**
 * An input over one of the runtime's limits (`maxContentBytes`, `maxInputIdLength`,
 * `maxSessionIdLength`, `maxMetadataDepth`, `maxMetadataBytes`): refused before it reaches a
 * session, naming the input. On the wire it is `error{INVALID_MESSAGE, event_id}`.
 *
 * @example
 * const receipt = await runtime.send('s1', { id: 'm1', content: huge });
 * if (receipt.error instanceof InputLimitError) console.log(receipt.error.inputId, receipt.error.limit); // 'm1', 'maxContentBytes'
 */
export class InputLimitError extends InvalidMessageError {
  /** The id of the input refused (cut short if the id itself is over `maxInputIdLength`). */
  readonly inputId: string;
  /** The option whose limit the input exceeds. */
  readonly limit: InputLimitName;
  /** That option's value. */
  readonly max: number;
  constructor(inputId: string, limit: InputLimitName, max: number, detail: string) {
    super(`input "${inputId}": ${detail}; the limit ${limit} is ${max}`);
    this.inputId = inputId;
    this.limit = limit;
    this.max = max;
  }
}

/** Policy `reject` while a turn runs, or the backlog cap is reached. Nothing was queued. */
export class SessionBusyError extends BatonError {
  readonly sessionId: string;
  constructor(sessionId: string, message = `session "${sessionId}" is busy`) {
    super('SESSION_BUSY', message);
    this.sessionId = sessionId;
  }
}

export class SessionNotFoundError extends BatonError {
  readonly sessionId: string;
  constructor(sessionId: string) {
    super('SESSION_NOT_FOUND', `no session "${sessionId}"`);
    this.sessionId = sessionId;
  }
}

export class SessionTerminatedError extends BatonError {
  readonly sessionId: string;
  constructor(sessionId: string) {
    super('SESSION_TERMINATED', `session "${sessionId}" is terminated`);
    this.sessionId = sessionId;
  }
}

/** The runtime is shutting down (C14) and takes no new input; retry after the next start. */
export class RuntimeShuttingDownError extends BatonError {
  constructor() {
    super('GATEWAY_OVERLOAD', 'the runtime is shutting down and accepts no new input');
  }
}

/**
 * The store failed (an I/O error, a full disk, a write fenced by a newer owner): nothing of
 * the step was published (C16), the session is out of service and is re-activated from what
 * was committed once the store works again. Retry later.
 */
export class StoreUnavailableError extends BatonError {
  readonly sessionId: string | undefined;
  constructor(sessionId: string | undefined, cause: unknown) {
    const why = cause instanceof Error ? cause.message : String(cause);
    super('INTERNAL_ERROR', `${sessionId === undefined ? 'the store' : `session "${sessionId}"`} is unavailable: the store failed (${why}); retry later`, { cause });
    this.sessionId = sessionId;
  }
}

/** The agent threw or rejected (C7). Appears as an `error` event inside the turn. */
export class WorkerCrashError extends BatonError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('WORKER_CRASH', message, options);
  }
}

/**
 * The model's API refused for rate limits. An agent throws it to end its turn with
 * `error{RATE_LIMITED}` instead of `WORKER_CRASH`.
 */
export class RateLimitedError extends BatonError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('RATE_LIMITED', message, options);
  }
}

/** The turn ran past `turnTimeoutMs` and was aborted (C7). */
export class TurnTimeoutError extends BatonError {
  constructor(message: string) {
    super('TURN_TIMEOUT', message);
  }
}

/** C13: an onboarding answer before the conversation started. */
export class ConversationNotStartedError extends BatonError {
  readonly sessionId: string;
  constructor(sessionId: string, message = 'the onboarding has not started yet') {
    super('CONVERSATION_NOT_STARTED', message);
    this.sessionId = sessionId;
  }
}

/** C13: an onboarding answer after the third question was answered. */
export class ConversationAlreadyCompleteError extends BatonError {
  readonly sessionId: string;
  constructor(sessionId: string, message = 'the onboarding is already complete') {
    super('CONVERSATION_ALREADY_COMPLETE', message);
    this.sessionId = sessionId;
  }
}

/** C18: a credential is required (the gateway has authentication on) and none was given. */
export class AuthRequiredError extends BatonError {
  constructor(message = 'a credential is required: send it as init.auth.token') {
    super('AUTH_REQUIRED', message);
  }
}

/**
 * C18: the credential is wrong, expired or badly signed, or the principal may not do this
 * to this session. The message never quotes the credential.
 */
export class UnauthorizedError extends BatonError {
  /** The session key the refused action was for, when there was one. */
  readonly sessionId: string | undefined;
  constructor(message: string, sessionId?: string, options?: { cause?: unknown }) {
    super('UNAUTHORIZED', message, options);
    this.sessionId = sessionId;
  }
}

/** Builds the typed error for a code the session machine decided. */
export function errorFor(code: ErrorCode, sessionId: string, message?: string): BatonError {
  switch (code) {
    case 'SESSION_BUSY':
      return new SessionBusyError(sessionId, message);
    case 'SESSION_TERMINATED':
      return new SessionTerminatedError(sessionId);
    case 'SESSION_NOT_FOUND':
      return new SessionNotFoundError(sessionId);
    case 'CONVERSATION_NOT_STARTED':
      return new ConversationNotStartedError(sessionId, message);
    case 'CONVERSATION_ALREADY_COMPLETE':
      return new ConversationAlreadyCompleteError(sessionId, message);
    case 'INVALID_MESSAGE':
      return new InvalidMessageError(message ?? 'invalid message');
    default:
      return new BatonError(code, message ?? code);
  }
}

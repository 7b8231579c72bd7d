/**
 * C18 principals: who a connection or an HTTP request acts for, which session key a
 * client's `session_id` names for it, and whether it may do an action to that session.
 */

/** Who a credential speaks for: a user id and what it may do beyond its own sessions. */
export interface Principal {
  /** The user id: a JWT's `sub`, `'admin'` for the static token. Never empty. */
  readonly id: string;
  /** What the principal may do beyond its own sessions: {@link ADMIN_SCOPE}, {@link METRICS_SCOPE}, or yours for an `authorize` hook. */
  readonly scopes: readonly string[];
  /** When the credential stops being valid (ms since the epoch): an open connection is closed then. */
  readonly expiresAt?: number;
}

/** Every session by its full key, the inspector, the admin API and `/metrics`. */
export const ADMIN_SCOPE = 'admin';
/** `GET /metrics` only. */
export const METRICS_SCOPE = 'metrics';

/** What a principal asks to do to a session; each client frame maps to one. */
export type SessionAction = 'attach' | 'replay' | 'input' | 'answer' | 'approve' | 'schedule' | 'stop' | 'terminate' | 'delete';

/** One authorization question, asked for every attach, replay, input, answer, approval decision (`approve`), schedule change (`schedule`) and control. */
export interface AuthorizeRequest {
  readonly principal: Principal;
  /** The session key: `<owner>/<id>` for a principal's session, the bare id for an admin's. */
  readonly sessionId: string;
  /** Whose session it is (the principal that created it), `undefined` for a key outside every namespace. */
  readonly owner: string | undefined;
  readonly action: SessionAction;
}

/**
 * Synchronous, so that authorizing a frame never lets the frame after it overtake it (C2).
 * @example
 * // Support staff may read anyone's session, but not write to it.
 * const authorize: Authorize = (r) => ownerOrAdmin(r) || (r.principal.scopes.includes('support') && (r.action === 'attach' || r.action === 'replay'));
 */
export type Authorize = (request: AuthorizeRequest) => boolean;

export const isAdmin = (principal: Principal): boolean => principal.scopes.includes(ADMIN_SCOPE);

/**
 * The default rule: a principal reaches the sessions it owns; an admin reaches every session.
 *
 * @example
 * createGateway({ runtime, jwt: { secret }, authorize: (r) => ownerOrAdmin(r) || r.principal.scopes.includes('support') });
 */
export const ownerOrAdmin: Authorize = ({ principal, owner }) => isAdmin(principal) || owner === principal.id;

/**
 * The session key a client's `session_id` names for `principal`. Non-admin principals live in
 * their own namespace: `alice` asking for `chat` gets the key `alice/chat`, and Bob's `chat` is
 * `bob/chat` — another session, so nobody can take (squat) an id another principal will use.
 * An id that already contains `/` is a full key (`bob/chat`): it reaches Bob's session only if
 * `authorize` allows. Admins, and a gateway without authentication (`principal` undefined),
 * address every session by its full key, as sent.
 *
 * @example
 * sessionKey({ id: 'alice', scopes: [] }, 'chat'); // 'alice/chat'
 * sessionKey({ id: 'a/b', scopes: [] }, 'chat'); // 'a%2Fb/chat'
 */
export function sessionKey(principal: Principal | undefined, clientId: string): string {
  if (principal === undefined || isAdmin(principal) || clientId.includes('/')) return clientId;
  return `${encodeOwner(principal.id)}/${clientId}`;
}

/** The principal a key belongs to (the part before its first `/`), `undefined` for a key outside every namespace. */
export function ownerOf(key: string): string | undefined {
  const slash = key.indexOf('/');
  return slash <= 0 ? undefined : decodeOwner(key.slice(0, slash));
}

/**
 * A principal id as the first segment of a key: every character but letters, digits and
 * `_ . : @ -` becomes `%XX` (UTF-8), so the segment never holds a `/` and two ids never
 * give one segment.
 */
export function encodeOwner(id: string): string {
  return Array.from(new TextEncoder().encode(id), (byte) => {
    const c = String.fromCharCode(byte);
    return byte < 0x80 && /[\w.:@-]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }).join('');
}

function decodeOwner(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

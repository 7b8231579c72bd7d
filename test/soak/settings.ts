import { createHmac } from 'node:crypto';

/** The soak gateway's session settings: short enough that hangs, batches, passivation and unanswered approvals all happen within a run. */
export const SOAK_SETTINGS = { debounceMs: 50, maxWaitMs: 200, turnTimeoutMs: 1000, idleTimeoutMs: 2000, approvalTimeoutMs: 500 } as const;

/** C18: the soak runs with authentication on; its gateways check HS256 tokens signed with this. */
export const SOAK_JWT_SECRET = 'baton-soak-secret-of-at-least-32-characters';

/**
 * The principal that owns a soak session: sessions are spread over 16 principals, and each
 * names its own full key (`u3/soak-7-19`), so store keys and history ids are the same string.
 */
export const soakSessionId = (seed: number, i: number): string => `u${i % 16}/soak-${seed}-${i}`;

/** An HS256 JWT for `sub`, signed synchronously (a connection's init is sent from an event handler). */
export function soakToken(sub: string): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const body = `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ sub, iat: Math.floor(Date.now() / 1000) })}`;
  return `${body}.${createHmac('sha256', SOAK_JWT_SECRET).update(body).digest('base64url')}`;
}

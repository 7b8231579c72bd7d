import { createPublicKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { createLocalJWKSet, createRemoteJWKSet, errors, jwtVerify, type JSONWebKeySet, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { AuthRequiredError, UnauthorizedError } from '../errors.ts';
import { ADMIN_SCOPE, type Principal } from './principal.ts';

/** How signed tokens (JWT) are checked. Exactly one of `secret`, `publicKey`, `jwks`, `jwksUrl`. */
export interface JwtOptions {
  /** HS256 shared secret, at least 32 characters. */
  secret?: string;
  /** RS256/ES256 (or PS256, ES384, EdDSA…) public key: PEM text (SPKI or X.509) or a `KeyObject`. */
  publicKey?: string | KeyObject;
  /** A JSON Web Key Set, as an object. */
  jwks?: JSONWebKeySet;
  /** Where to fetch the JSON Web Key Set (cached, refreshed on an unknown `kid`). */
  jwksUrl?: string;
  /** When set, the token's `iss` must equal it. @default not checked */
  issuer?: string;
  /** When set, the token's `aud` must contain it. @default not checked */
  audience?: string;
}

/**
 * Checks a credential the client presents as `init.auth.token` (or `Authorization: Bearer`).
 * Resolves with the principal; `undefined` means "not mine" (the next check is tried), a
 * rejection ({@link UnauthorizedError}) refuses it.
 */
export type Authenticate = (token: string) => Principal | undefined | Promise<Principal | undefined>;

/** The id the static token's principal has. */
export const STATIC_ADMIN_ID = 'admin';

const ASYMMETRIC = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];

/**
 * The gateway's authentication: the static token (an admin principal, for development), then
 * signed tokens, then the embedder's hook; the first that accepts the credential names the
 * principal. `undefined` when none is configured: authentication is off.
 *
 * @example
 * const authenticate = createAuthenticator({ jwt: { secret: process.env.BATON_JWT_SECRET } });
 * const principal = await authenticate?.(token); // throws UnauthorizedError if nobody accepts it
 */
export function createAuthenticator(options: {
  token?: string | undefined;
  jwt?: JwtOptions | undefined;
  authenticate?: Authenticate | undefined;
}): ((token: string | undefined) => Promise<Principal>) | undefined {
  const checks: Authenticate[] = [];
  if (options.token !== undefined) checks.push(staticToken(options.token));
  if (options.jwt !== undefined) checks.push(jwtAuthenticator(options.jwt));
  if (options.authenticate !== undefined) checks.push(options.authenticate);
  if (checks.length === 0) return undefined;
  return async (token) => {
    if (token === undefined || token === '') throw new AuthRequiredError();
    let refusal: unknown;
    for (const check of checks) {
      try {
        const principal = await check(token);
        if (principal !== undefined) return validPrincipal(principal);
      } catch (error) {
        refusal ??= error;
      }
    }
    if (refusal instanceof UnauthorizedError) throw refusal;
    throw new UnauthorizedError('the credential is not valid', undefined, { cause: refusal });
  };
}

function staticToken(expected: string): Authenticate {
  const want = Buffer.from(expected);
  return (token) => {
    const given = Buffer.from(token);
    return given.length === want.length && timingSafeEqual(given, want) ? { id: STATIC_ADMIN_ID, scopes: [ADMIN_SCOPE] } : undefined;
  };
}

/**
 * Signed tokens: `sub` is the principal, `scope` (space-separated) or `scopes` (an array) its
 * scopes, `exp` honoured. A token that is not a JWT is "not mine"; a JWT that is badly signed,
 * expired or without `sub` is refused.
 *
 * @example
 * createGateway({ runtime, authenticate: jwtAuthenticator({ jwksUrl: 'https://id.example.com/.well-known/jwks.json' }) });
 */
export function jwtAuthenticator(options: JwtOptions): Authenticate {
  const verify = verifier(options);
  return async (token) => {
    if (token.split('.').length !== 3) return undefined;
    let payload: JWTPayload;
    try {
      payload = await verify(token);
    } catch (error) {
      if (error instanceof errors.JWTExpired) throw new UnauthorizedError('the token has expired', undefined, { cause: error });
      throw new UnauthorizedError('the token is not valid (signature, algorithm or claims)', undefined, { cause: error });
    }
    if (typeof payload.sub !== 'string' || payload.sub === '') throw new UnauthorizedError('the token names no principal (sub)');
    return {
      id: payload.sub,
      scopes: scopesOf(payload),
      ...(typeof payload.exp === 'number' && { expiresAt: payload.exp * 1000 }),
    };
  };
}

function verifier(options: JwtOptions): (token: string) => Promise<JWTPayload> {
  const claims = { ...(options.issuer && { issuer: options.issuer }), ...(options.audience && { audience: options.audience }) };
  if (options.secret !== undefined) {
    // An HMAC key is only ever used for HS256: a token signed with a public key as its
    // secret (the algorithm-confusion attack) cannot pass.
    const key = new TextEncoder().encode(options.secret);
    return async (token) => (await jwtVerify(token, key, { ...claims, algorithms: ['HS256'] })).payload;
  }
  let keys: JWTVerifyGetKey;
  if (options.jwks !== undefined) keys = createLocalJWKSet(options.jwks);
  else if (options.jwksUrl !== undefined) keys = createRemoteJWKSet(new URL(options.jwksUrl));
  else if (options.publicKey !== undefined) {
    // Parsed once, here: a bad key file fails at start, not at the first client.
    const key = typeof options.publicKey === 'string' ? createPublicKey(options.publicKey) : options.publicKey;
    return async (token) => (await jwtVerify(token, key, { ...claims, algorithms: ASYMMETRIC })).payload;
  } else throw new TypeError('jwt: one of secret, publicKey, jwks or jwksUrl is required');
  return async (token) => (await jwtVerify(token, keys, { ...claims, algorithms: ASYMMETRIC })).payload;
}

function scopesOf(payload: JWTPayload): string[] {
  if (typeof payload.scope === 'string') return payload.scope.split(' ').filter(Boolean);
  if (Array.isArray(payload.scopes)) return payload.scopes.filter((s): s is string => typeof s === 'string');
  return [];
}

function validPrincipal(principal: Principal): Principal {
  if (typeof principal.id !== 'string' || principal.id === '' || principal.id.length > 256) {
    throw new UnauthorizedError('the credential names no principal');
  }
  // A lone surrogate has no UTF-8 form: its namespace would be U+FFFD's, another principal's.
  if (/\p{Cs}/u.test(principal.id)) throw new UnauthorizedError('the principal id is not well-formed Unicode (a lone surrogate)');
  if (!Array.isArray(principal.scopes)) return { ...principal, scopes: [] };
  return principal;
}

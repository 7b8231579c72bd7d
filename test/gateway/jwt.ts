import { SignJWT } from 'jose';

/** The HS256 secret the gateway tests sign their principals' tokens with. */
export const SECRET = 'a-test-secret-of-at-least-32-characters';
const key = new TextEncoder().encode(SECRET);

/** An HS256 token for `sub`, valid for `ttl` seconds (negative: already expired). */
export function tokenFor(sub: string, { ttl = 3600, scope }: { ttl?: number; scope?: string } = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT(scope ? { scope } : {})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setIssuedAt(now - 10)
    .setExpirationTime(now + ttl)
    .sign(key);
}

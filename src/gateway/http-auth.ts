import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Principal } from './principal.ts';

/** The inspector's login cookie: an opaque id, never the credential itself. */
export const LOGIN_COOKIE = 'baton_login';
/** A login lasts at most this long (or until its token expires, if sooner). */
const LOGIN_TTL_MS = 8 * 60 * 60 * 1000;
/** Logins held at once; past it the oldest is forgotten (its browser logs in again). */
const MAX_LOGINS = 1000;
/** A login form larger than this is refused: it holds one token. */
const MAX_FORM_BYTES = 16 * 1024;

/**
 * C18 over HTTP: the principal of a request, from `Authorization: Bearer <token>` or (for the
 * inspector's pages, which a browser opens) the cookie its login form set. Credentials never
 * travel in URLs, which proxies and access logs record.
 *
 * @example
 * const auth = createHttpAuth(authenticate);
 * const principal = await auth.principalOf(req, { cookie: true }); // undefined: no or a bad credential
 */
export function createHttpAuth(authenticate: (token: string | undefined) => Promise<Principal>) {
  const logins = new Map<string, { principal: Principal; until: number }>();

  const bearer = (req: IncomingMessage) => /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1];

  return {
    /** The request's principal, `undefined` if it has no valid credential. A cookie counts only where `cookie` says (the inspector's GETs). */
    async principalOf(req: IncomingMessage, { cookie = false } = {}): Promise<Principal | undefined> {
      const token = bearer(req);
      if (token !== undefined) return authenticate(token).catch(() => undefined);
      if (!cookie) return undefined;
      const id = cookieOf(req, LOGIN_COOKIE);
      const login = id === undefined ? undefined : logins.get(id);
      if (!login) return undefined;
      if (Date.now() >= login.until) {
        logins.delete(id!);
        return undefined;
      }
      return login.principal;
    },
    /**
     * `POST` of the login form (`token=…`, url-encoded): a principal that `allowed` accepts
     * gets the cookie and is sent on to `next`; any other gets the form again, 401.
     */
    async login(req: IncomingMessage, res: ServerResponse, allowed: (principal: Principal) => boolean, next: string, form: (failed: boolean) => string): Promise<Principal | undefined> {
      const body = await readBody(req, MAX_FORM_BYTES);
      const token = body === undefined ? undefined : (new URLSearchParams(body).get('token') ?? undefined);
      const principal = token ? await authenticate(token).catch(() => undefined) : undefined;
      if (!principal || !allowed(principal)) {
        res.writeHead(401, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(form(true));
        return undefined;
      }
      const id = randomBytes(24).toString('base64url');
      const until = Math.min(Date.now() + LOGIN_TTL_MS, principal.expiresAt ?? Infinity);
      logins.set(id, { principal, until });
      if (logins.size > MAX_LOGINS) logins.delete(logins.keys().next().value!);
      const maxAge = Math.max(0, Math.floor((until - Date.now()) / 1000));
      res
        .writeHead(303, {
          location: next,
          'set-cookie': `${LOGIN_COOKIE}=${id}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${maxAge}`,
          'cache-control': 'no-store',
        })
        .end();
      return principal;
    },
  };
}

function cookieOf(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** The request body as text; `undefined` if it is larger than `limit` bytes. */
async function readBody(req: IncomingMessage, limit: number): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

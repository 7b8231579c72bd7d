import type { IncomingMessage } from 'node:http';

/**
 * Browser defences for a gateway without authentication. Without a credential, the only
 * thing between a web page in the local user's browser and every session is where the
 * request comes from: any site may open a WebSocket to 127.0.0.1 (cross-site WebSocket
 * hijacking), send a simple cross-site POST (CSRF), or re-point its own domain to 127.0.0.1
 * and read the answers as its own origin (DNS rebinding). So, without authentication:
 *
 * - a request must be addressed (`Host`) to a loopback name when the gateway listens on
 *   loopback, or to one of `allowedHosts`;
 * - a browser's WebSocket upgrade, and any request that is not a GET or HEAD, must come from
 *   the gateway's own origin or one of `allowedOrigins` (`Origin`, which browsers always send
 *   on those; other clients send none).
 *
 * With authentication on, the credential is never ambient (a token in `init` or a Bearer
 * header; the inspector's cookie is SameSite=Strict), so these checks stay out of the way of
 * browser apps on other origins and of reverse proxies that forward a public `Host`, unless
 * `allowedOrigins` or `allowedHosts` are set.
 */
export interface WebOriginPolicy {
  /** Whether authentication is on. */
  readonly authenticated: boolean;
  /** The address the gateway listens on. */
  readonly listenHost: string;
  readonly allowedOrigins: readonly string[] | undefined;
  readonly allowedHosts: readonly string[] | undefined;
}

export type CrossSite = 'host' | 'origin';

/** Why the request is refused as cross-site, or `undefined` if it may go on. */
export function crossSite(req: IncomingMessage, policy: WebOriginPolicy, upgrade: boolean): CrossSite | undefined {
  const host = req.headers.host ?? '';
  if (!hostAllowed(host, policy)) return 'host';
  const origin = req.headers.origin;
  const unsafe = upgrade || (req.method !== 'GET' && req.method !== 'HEAD');
  if (origin === undefined || !unsafe) return undefined;
  if (policy.allowedOrigins?.includes(origin)) return undefined;
  if (policy.authenticated && policy.allowedOrigins === undefined) return undefined;
  return sameOrigin(origin, host) ? undefined : 'origin';
}

function hostAllowed(host: string, policy: WebOriginPolicy): boolean {
  const name = hostname(host);
  if (policy.allowedHosts) return policy.allowedHosts.some((allowed) => hostname(allowed) === name || allowed === host);
  if (policy.authenticated || !isLoopback(policy.listenHost)) return true;
  return isLoopback(name);
}

/** `Origin: http://127.0.0.1:8080` against `Host: 127.0.0.1:8080`: the page came from this gateway. */
function sameOrigin(origin: string, host: string): boolean {
  try {
    return new URL(origin).host === host.toLowerCase();
  } catch {
    return false;
  }
}

/** `[::1]:8080` → `::1`, `LocalHost:80` → `localhost`. */
function hostname(host: string): string {
  const h = host.toLowerCase();
  const bracketed = /^\[([^\]]*)\](?::\d+)?$/.exec(h);
  if (bracketed) return bracketed[1]!;
  return h.split(':').length === 2 ? h.slice(0, h.lastIndexOf(':')) : h;
}

/** `localhost`, `127.0.0.0/8` and `::1` (bare, or IPv4-mapped). */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  return h === 'localhost' || h === '::1' || /^(::ffff:)?127(\.\d{1,3}){3}$/.test(h);
}

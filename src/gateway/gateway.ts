import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer } from 'ws';
import { pino } from 'pino';
import { Connection, type ConnectionContext } from './connection.ts';
import { GatewayMetrics } from './metrics.ts';
import { createInspector } from './inspector/inspector.ts';
import { gatewayDefaults, parseGatewayOptions, type GatewayOptions } from './options.ts';
import { createAuthenticator } from './authenticate.ts';
import { createHttpAuth } from './http-auth.ts';
import { createAdminApi } from './admin.ts';
import { loginPage } from './inspector/page.ts';
import { ADMIN_SCOPE, METRICS_SCOPE, encodeOwner, isAdmin, ownerOrAdmin, type Principal } from './principal.ts';
import { Admission } from './admission.ts';
import { crossSite, type WebOriginPolicy } from './web-origin.ts';
import { KeyedRateLimiter } from './rate-limit.ts';
import { securityHeaders } from './inspector/headers.ts';

export interface Gateway {
  /** Starts listening; resolves with the bound address (port 0 picks a free port). */
  listen(): Promise<{ host: string; port: number; url: string }>;
  /**
   * Graceful shutdown (C14): refuses new handshakes, sends `control{action:'reconnect'}` to
   * every client, drains the runtime for `drainMs`, closes every socket (1001) and the server.
   */
  close(): Promise<void>;
  /** Open connections, for tests and dashboards. */
  connections(): number;
}

/** Who acts over HTTP when authentication is off: the network is trusted. */
const TRUSTED: Principal = { id: 'trusted', scopes: [ADMIN_SCOPE] };

/**
 * The AEP v1 gateway: a WebSocket server at `/ws` on Node's `http` server, with
 * `GET /healthz` and `GET /metrics` on the same port.
 *
 * @example
 * const gateway = createGateway({ runtime, port: 8080 });
 * const { url } = await gateway.listen(); // ws://127.0.0.1:8080/ws
 * process.on('SIGTERM', () => gateway.close().then(() => process.exit(0)));
 */
export function createGateway(options: GatewayOptions): Gateway {
  const opts = { ...gatewayDefaults, ...parseGatewayOptions(options) };
  const logger = opts.logger ?? pino({ level: 'silent' });
  const metrics = new GatewayMetrics(opts.runtime);
  const connections = new Set<Connection>();
  /** Clients attached per session, for the inspector. */
  const clients = new Map<string, number>();
  const inspector = createInspector(opts.runtime, { clientsOf: (sessionId) => clients.get(sessionId) ?? 0, dropped: () => metrics.inspectorReaderDropped() });
  let closing: Promise<void> | undefined;
  // C18: with a static token, signed tokens or a hook, every connection and every HTTP
  // endpoint but /healthz needs a credential; without, the gateway trusts its network.
  const authenticate = createAuthenticator(opts);
  const webOrigin: WebOriginPolicy = { authenticated: authenticate !== undefined, listenHost: opts.host, allowedOrigins: opts.allowedOrigins, allowedHosts: opts.allowedHosts };
  const httpAuth = authenticate && createHttpAuth(authenticate);
  const admin = createAdminApi(opts.runtime, { logger, clientsOf: (key) => clients.get(key) ?? 0, connections: () => connections.size });
  const admission = new Admission({
    maxConnections: opts.maxConnections,
    maxConnectionsPerAddress: opts.maxConnectionsPerAddress,
    maxHandshakesPerAddress: opts.maxHandshakesPerAddress,
    handshakeTimeoutMs: opts.handshakeTimeoutMs,
    refused: (reason) => metrics.handshakeRefused(reason),
  });
  /** Session creations by quota key: the principal, or without authentication the remote address. */
  const creations = new KeyedRateLimiter(opts.sessionRate.perSecond, opts.sessionRate.burst);

  const ctx: ConnectionContext = {
    runtime: opts.runtime,
    authenticate,
    authorize: opts.authorize ?? ownerOrAdmin,
    maxFrameBytes: opts.maxFrameBytes,
    initTimeoutMs: opts.initTimeoutMs,
    maxBufferedBytes: opts.maxBufferedBytes,
    rateLimit: opts.rateLimit,
    frameBudget: opts.frameBudget,
    async mayCreateSession(principal, address) {
      if (!creations.take(principal ? `principal:${principal.id}` : `address:${address}`)) {
        return 'too many new sessions from this client; attach to an existing one or retry later';
      }
      // A principal's stored sessions, its namespace (admins have none: their keys are global).
      if (!principal || isAdmin(principal)) return undefined;
      const held = await opts.runtime.countSessions(`${encodeOwner(principal.id)}/`);
      return held >= opts.maxSessionsPerPrincipal
        ? `principal "${principal.id}" has ${held} sessions, the most maxSessionsPerPrincipal (${opts.maxSessionsPerPrincipal}) allows; delete one first`
        : undefined;
    },
    metrics,
    logger,
    closing: () => closing !== undefined,
    overloaded: () =>
      connections.size > opts.maxConnections ? `the gateway serves its maximum of ${opts.maxConnections} connections; reconnect later` : undefined,
    attached: (sessionId) => {
      clients.set(sessionId, (clients.get(sessionId) ?? 0) + 1);
      opts.runtime.directory.trigger.clientAttached();
      inspector.touch(sessionId);
    },
    detached: (sessionId) => {
      const left = (clients.get(sessionId) ?? 1) - 1;
      if (left > 0) clients.set(sessionId, left);
      else clients.delete(sessionId);
      opts.runtime.directory.trigger.clientDetached();
      inspector.touch(sessionId);
    },
    closed: (connection) => {
      connections.delete(connection);
      metrics.connections.set(connections.size);
    },
  };

  const server = createServer((req, res) => {
    if (admission.refused(req.socket)) {
      req.socket.destroy();
      return;
    }
    admission.request(req.socket);
    securityHeaders(res);
    const refusal = crossSite(req, webOrigin, false);
    if (refusal) {
      logger.warn({ host: req.headers.host, origin: req.headers.origin, path: req.url, why: refusal }, 'cross-site request refused');
      res.writeHead(403, { 'content-type': 'application/json' }).end(JSON.stringify({ error: refusal === 'host' ? 'unknown Host' : 'cross-site request' }));
      return;
    }
    serveHttp(req, res).catch((error: unknown) => {
      logger.error({ err: error }, 'http handler failed');
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  // ws closes a socket whose frame exceeds maxPayload with 1009, as the protocol asks.
  const wss = new WebSocketServer({ noServer: true, maxPayload: opts.maxFrameBytes });

  // Admission counts every socket from its accept, before any handshake (see Admission).
  server.on('connection', (socket: Socket) => admission.accept(socket));
  server.on('upgrade', (req, socket: Socket, head) => {
    if (admission.refused(socket)) {
      socket.destroy();
      return;
    }
    if (new URL(req.url ?? '/', 'http://x').pathname !== '/ws') {
      admission.request(socket);
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
      return;
    }
    const refusal = crossSite(req, webOrigin, true);
    if (refusal) {
      // A page on another site (or a rebound domain) cannot open a session without a credential.
      admission.request(socket);
      metrics.handshakeRefused(refusal === 'host' ? 'cross_site_host' : 'cross_site_origin');
      logger.warn({ host: req.headers.host, origin: req.headers.origin, why: refusal }, 'cross-site WebSocket refused');
      socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const deadlineMs = admission.upgrade(socket);
    if (deadlineMs === undefined) return;
    wss.handleUpgrade(req, socket, head, (ws) => {
      const admitted = { deadlineMs, key: socket.remoteAddress ?? '', started: () => admission.started(socket) };
      connections.add(new Connection(ws, ctx, socket, admitted));
      metrics.connections.set(connections.size);
    });
  });
  server.on('clientError', (_error, socket) => socket.destroy());

  async function serveHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (req.method === 'GET' && path === '/healthz') {
      // 503 while shutting down, while commits fail (C16) or once fenced by a newer owner (C17).
      const health = opts.runtime.health();
      const status = closing ? 'shutting_down' : health.fenced ? 'fenced' : health.ok ? 'ok' : 'store_failing';
      res.writeHead(status === 'ok' ? 200 : 503, { 'content-type': 'application/json' });
      const node = health.node && {
        id: health.node.id,
        incarnation: health.node.incarnation,
        lease_valid: health.node.leaseValid,
        owned_sessions: health.node.ownedSessions,
      };
      res.end(
        JSON.stringify({
          status,
          failed_sessions: health.failedSessions,
          fenced_commits: health.fencedCommits,
          ...(health.storeError && { store_error: health.storeError }),
          ...(node && { node }),
        }),
      );
    } else if (req.method === 'POST' && path === '/inspect/login' && httpAuth) {
      const principal = await httpAuth.login(req, res, isAdmin, '/inspect', loginPage);
      logger.info({ principal: principal?.id, ok: principal !== undefined }, 'inspector login');
    } else if (req.method === 'GET' && path.startsWith('/inspect')) {
      // The inspector shows every session: an admin's only (Bearer, or the login form's cookie).
      const principal = await principalOf(req, true);
      if (principal === null) {
        if (path === '/inspect') res.writeHead(401, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(loginPage(false));
        else refuse(res, 401);
      } else if (principal && !isAdmin(principal)) {
        refuse(res, 403);
      } else {
        if (principal) endAtExpiry(res, principal);
        if (!(await inspector.handle(req, res, path))) res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'not found' }));
      }
    } else if (path.startsWith('/admin/')) {
      // Bearer only: a cookie would let another site's form act as the admin (CSRF).
      const principal = await principalOf(req, false);
      if (principal === null) refuse(res, 401);
      else if (principal && !isAdmin(principal)) refuse(res, 403);
      else if (!(await admin.handle(req, res, principal ?? TRUSTED))) res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'not found' }));
    } else if (req.method === 'GET' && path === '/metrics') {
      const principal = await principalOf(req, true);
      if (principal === null) refuse(res, 401);
      else if (principal && !principal.scopes.some((s) => s === ADMIN_SCOPE || s === METRICS_SCOPE)) refuse(res, 403);
      else {
        const body = await metrics.registry.metrics();
        res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body);
      }
    } else {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'not found' }));
    }
  }

  /** A response (an event stream) ends when its principal's credential expires, as a WebSocket does. */
  function endAtExpiry(res: ServerResponse, principal: Principal): void {
    if (principal.expiresAt === undefined) return;
    const timer = setTimeout(() => res.destroy(), Math.max(0, Math.min(principal.expiresAt - Date.now(), 2 ** 31 - 1)));
    timer.unref();
    res.once('close', () => clearTimeout(timer));
  }

  /**
   * The request's principal: `undefined` when authentication is off (trusted), `null` when it
   * is on and the request has no valid credential. A `?token=` in the URL is not one: URLs
   * end up in logs.
   */
  async function principalOf(req: IncomingMessage, cookie: boolean): Promise<Principal | null | undefined> {
    if (!httpAuth) return undefined;
    return (await httpAuth.principalOf(req, { cookie })) ?? null;
  }

  function refuse(res: ServerResponse, status: 401 | 403): void {
    const body = status === 401 ? { error: 'UNAUTHORIZED', message: 'a credential is required: Authorization: Bearer <token>' } : { error: 'UNAUTHORIZED', message: 'this needs the admin scope' };
    res.writeHead(status, { 'content-type': 'application/json', ...(status === 401 && { 'www-authenticate': 'Bearer' }) }).end(JSON.stringify(body));
  }

  async function shutdown(): Promise<void> {
    logger.info({ connections: connections.size }, 'shutting down');
    for (const connection of connections) {
      connection.send({ type: 'control', seq: 0, data: { action: 'reconnect', reason: 'shutdown' } });
    }
    await opts.runtime.shutdown({ drainMs: opts.drainMs });
    inspector.close();
    const gone = [...wss.clients].map((ws) => new Promise<void>((resolve) => ws.once('close', () => resolve())));
    for (const ws of wss.clients) ws.close(1001, 'shutdown');
    // A client that never answers the close handshake is cut off.
    const cutoff = setTimeout(() => wss.clients.forEach((ws) => ws.terminate()), 1000);
    await Promise.all(gone);
    clearTimeout(cutoff);
    await new Promise<void>((resolve) => wss.close(() => resolve()));
    await new Promise<void>((resolve) => server.close(() => resolve()));
    logger.info('stopped');
  }

  return {
    listen: () =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        // A deep accept queue: after a restart every client reconnects at once, and Node's
        // default (511) overflows into resets while the event loop is busy.
        server.listen({ port: opts.port, host: opts.host, backlog: 4096 }, () => {
          server.off('error', reject);
          const { port } = server.address() as AddressInfo;
          logger.info({ host: opts.host, port }, 'listening');
          resolve({ host: opts.host, port, url: `ws://${opts.host}:${port}/ws` });
        });
      }),
    close() {
      closing ??= shutdown();
      return closing;
    },
    connections: () => connections.size,
  };
}

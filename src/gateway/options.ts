import { z } from 'zod';
import { validateOptions } from '../validate.ts';
import type { Logger } from 'pino';
import type { Runtime } from '../runtime/runtime.ts';
import type { Authenticate, JwtOptions } from './authenticate.ts';
import type { Authorize } from './principal.ts';

export interface GatewayOptions {
  /** The runtime whose sessions the gateway serves. Required. */
  runtime: Runtime;
  /** @default 8080 */
  port?: number;
  /** @default '127.0.0.1' */
  host?: string;
  /**
   * A static token for development: a client presenting it (`init.auth.token`, or
   * `Authorization: Bearer` over HTTP) is the admin principal `admin` (C18). @default none
   */
  token?: string;
  /** Signed tokens (JWT): `sub` is the principal, `exp` honoured (C18). @default none */
  jwt?: JwtOptions;
  /**
   * Your own check of `init.auth.token`: resolve with a principal, `undefined` if it is not
   * yours, or throw `UnauthorizedError`. Tried after `token` and `jwt`. With any of the
   * three set, every connection and every HTTP endpoint but `/healthz` needs a credential.
   * @default none
   */
  authenticate?: Authenticate;
  /**
   * Whether a principal may do an action to a session, asked for every attach, replay,
   * input, answer and control. @default ownerOrAdmin (its own sessions; an admin every one)
   */
  authorize?: Authorize;
  /** Larger frames close the socket with 1009. @default 32768 */
  maxFrameBytes?: number;
  /**
   * The first frame must be `init` within this time; also how long the attach after `init` may
   * take (past it `GATEWAY_OVERLOAD`, close 1013). The deadline for `init` is the shorter of
   * this and `handshakeTimeoutMs`. At most 30000 (AEP's limit).
   * @default 30000
   */
  initTimeoutMs?: number;
  /**
   * From the moment a socket is accepted, how long it may take to upgrade to a WebSocket and
   * send its first frame (`init`). A socket that has not upgraded by then is closed; one that
   * upgraded gets `init_ack{code:"PROTOCOL_VIOLATION"}` and close 1008. Sockets in their
   * handshake count against every connection cap, so a short deadline frees them fast.
   * At most 30000 (AEP's limit).
   * @default 5000
   */
  handshakeTimeoutMs?: number;
  /**
   * Stored sessions one principal (not an admin) may hold; creating one more is refused
   * (`init_ack{code:"RATE_LIMITED"}`, close 1008) until it deletes one (or retention does).
   * @default 1000
   */
  maxSessionsPerPrincipal?: number;
  /**
   * Browser origins (`https://app.example`) whose pages may open WebSockets and send
   * non-GET requests. Without authentication, only the gateway's own origin may (a page on any
   * other site could otherwise reach every session through the local user's browser); with
   * authentication on, any origin may, unless this list is set.
   * @default undefined
   */
  allowedOrigins?: readonly string[];
  /**
   * `Host` names requests may be addressed to (`chat.example`, or with a port). Without
   * authentication on a loopback address, only loopback names are served (a DNS-rebound
   * domain is refused); otherwise any, unless this list is set.
   * @default undefined
   */
  allowedHosts?: readonly string[];
  /**
   * Sockets (WebSockets, sockets still in their handshake, and plain HTTP requests) from one
   * remote address at once; past it a socket gets HTTP 503 and is closed.
   * @default 256
   */
  maxConnectionsPerAddress?: number;
  /**
   * Sockets from one remote address still in their handshake (accepted, but no WebSocket
   * frame yet) at once; past it a socket gets HTTP 503 and is closed.
   * @default 32
   */
  maxHandshakesPerAddress?: number;
  /**
   * Every client frame — `init`, `ping`, malformed, anything — costs one token of this
   * per-connection bucket before it is parsed. Over it a frame is not handled: the first of an
   * episode is answered `error{RATE_LIMITED}`, the rest not at all; a client that sends `burst`
   * frames over budget before its bucket has filled up again is closed with 1008.
   * @default { perSecond: 100, burst: 200 }
   */
  frameBudget?: { perSecond: number; burst: number };
  /**
   * Sessions created (an `init` whose session does not exist yet) per second per remote
   * address, with bursts; past it the handshake is refused with `RATE_LIMITED` (close 1008).
   * @default { perSecond: 10, burst: 20 }
   */
  sessionRate?: { perSecond: number; burst: number };
  /**
   * Outbound bytes a slow client may leave unread. Past a quarter of it `message.delta`
   * frames are dropped (and the turn's `done` says `dropped: true`); past half, the client
   * gets `control{action:'throttle'}`; past all of it, the socket is closed (1013).
   * @default 1048576
   */
  maxBufferedBytes?: number;
  /** Inputs per second per connection, with bursts; past it `RATE_LIMITED`. @default { perSecond: 20, burst: 40 } */
  rateLimit?: { perSecond: number; burst: number };
  /**
   * Connections the gateway serves at once, counted from the moment a socket is accepted
   * (sockets still in their HTTP or WebSocket handshake included; plain HTTP requests are not);
   * past it a socket gets HTTP 503 before any WebSocket handshake, so a flood of clients cannot
   * exhaust memory. @default 10000
   */
  maxConnections?: number;
  /** How long running turns may finish at shutdown (C14). @default 5000 */
  drainMs?: number;
  /** Structured logger (pino). @default silent */
  logger?: Logger;
}

export const gatewayDefaults = {
  port: 8080,
  host: '127.0.0.1',
  maxFrameBytes: 32_768,
  initTimeoutMs: 30_000,
  handshakeTimeoutMs: 5000,
  maxConnectionsPerAddress: 256,
  maxHandshakesPerAddress: 32,
  frameBudget: { perSecond: 100, burst: 200 },
  sessionRate: { perSecond: 10, burst: 20 },
  maxSessionsPerPrincipal: 1000,
  maxBufferedBytes: 1_048_576,
  rateLimit: { perSecond: 20, burst: 40 },
  maxConnections: 10_000,
  drainMs: 5000,
} as const;

const rate = z.strictObject({ perSecond: z.number().positive(), burst: z.number().int().min(1) });

const schema = z.strictObject({
  runtime: z.looseObject({ send: z.function() }),
  port: z.number().int().min(0).max(65535).optional(),
  host: z.string().min(1).optional(),
  token: z.string().min(1, 'must not be empty (leave it out to turn authentication off)').optional(),
  jwt: z
    .strictObject({
      secret: z.string().min(32, 'must be at least 32 characters (256 bits) for HS256').optional(),
      publicKey: z.union([z.string().min(1), z.looseObject({ type: z.literal('public') })]).optional(),
      jwks: z.looseObject({ keys: z.array(z.looseObject({})) }).optional(),
      jwksUrl: z.url().optional(),
      issuer: z.string().min(1).optional(),
      audience: z.string().min(1).optional(),
    })
    .refine((jwt) => [jwt.secret, jwt.publicKey, jwt.jwks, jwt.jwksUrl].filter((k) => k !== undefined).length === 1, {
      message: 'needs exactly one of secret, publicKey, jwks, jwksUrl',
    })
    .optional(),
  authenticate: z.function().optional(),
  authorize: z.function().optional(),
  maxFrameBytes: z.number().int().min(256).optional(),
  initTimeoutMs: z.number().int().min(1).max(30_000).optional(),
  handshakeTimeoutMs: z.number().int().min(1).max(30_000).optional(),
  maxSessionsPerPrincipal: z.number().int().min(1).optional(),
  allowedOrigins: z.array(z.url()).optional(),
  allowedHosts: z.array(z.string().min(1)).optional(),
  maxConnectionsPerAddress: z.number().int().min(1).optional(),
  maxHandshakesPerAddress: z.number().int().min(1).optional(),
  frameBudget: rate.optional(),
  sessionRate: rate.optional(),
  maxBufferedBytes: z.number().int().min(1024).optional(),
  rateLimit: rate.optional(),
  maxConnections: z.number().int().min(1).optional(),
  drainMs: z.number().int().min(0).optional(),
  logger: z.looseObject({}).optional(),
});

export function parseGatewayOptions(options: GatewayOptions): GatewayOptions {
  return validateOptions('createGateway', schema, options);
}

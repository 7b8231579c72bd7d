import type { Socket } from 'node:net';

/** Why a socket was refused or cut off before its handshake completed (`baton_handshakes_refused_total{reason}`). */
export type AdmissionRefusal = 'capacity' | 'address_connections' | 'address_handshakes' | 'timeout';

export interface AdmissionOptions {
  readonly maxConnections: number;
  readonly maxConnectionsPerAddress: number;
  readonly maxHandshakesPerAddress: number;
  readonly handshakeTimeoutMs: number;
  /** Told of every refused or timed-out socket. */
  readonly refused: (reason: AdmissionRefusal) => void;
}

/**
 * - `handshake`: accepted, and not yet known to be plain HTTP; or upgraded to a WebSocket that
 *   has not sent its first frame. Counts as a connection and as a handshake in flight.
 * - `open`: a WebSocket that sent its first frame. Counts as a connection.
 * - `http`: a plain HTTP request (health, metrics, inspector). Counts only against its
 *   address's `maxConnectionsPerAddress` (as every socket does, until it closes).
 */
type Stage = 'handshake' | 'open' | 'http';

interface Tracked {
  readonly address: string;
  readonly acceptedAt: number;
  stage: Stage;
  upgraded: boolean;
  timer: ReturnType<typeof setTimeout> | undefined;
}

interface PerAddress {
  /** Every socket of the address, plain HTTP ones included: a request that never ends holds one too. */
  sockets: number;
  handshakes: number;
}

const REFUSAL = 'HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: application/json\r\nContent-Length: 30\r\nConnection: close\r\n\r\n{"error":"GATEWAY_OVERLOAD"}\r\n';

/**
 * Sockets beyond `maxConnections` that may still be accepted: until its first request a
 * socket may be a health check or a metrics scrape, which must get through to a full gateway.
 * Whether a socket may become a WebSocket is decided at its upgrade request.
 */
export const HTTP_HEADROOM = 64;

/** A refused socket is given this long to read its 503 and close before it is cut off. */
const REFUSED_LINGER_MS = 1000;

/**
 * Admission: every socket counts from the moment it is accepted, before any HTTP or
 * WebSocket handshake, so sockets that never send `init` — or never finish their upgrade
 * request — cannot hold the gateway's capacity: past `maxConnections` (all of them),
 * `maxConnectionsPerAddress` or `maxHandshakesPerAddress` (handshakes in flight from one
 * address) a socket gets `503` and is closed — at its accept, or, for the overall cap, at its
 * upgrade request (a few sockets beyond the cap are accepted so that health checks and
 * metrics scrapes reach a full gateway); one that has not sent its first WebSocket
 * frame `handshakeTimeoutMs` after it was accepted is cut off. A socket that turns out to be
 * a plain HTTP request stops counting.
 *
 * @example
 * const admission = new Admission({ maxConnections: 10_000, ..., refused: (why) => metrics.refused(why) });
 * server.on('connection', (socket) => admission.accept(socket));
 * server.on('upgrade', (req, socket) => { if (admission.upgrade(socket)) wss.handleUpgrade(...); });
 */
export class Admission {
  readonly #opts: AdmissionOptions;
  readonly #sockets = new Map<Socket, Tracked>();
  readonly #refused = new WeakSet<object>();
  readonly #addresses = new Map<string, PerAddress>();
  /** Sockets counted as connections (stage `handshake` or `open`). */
  #connections = 0;

  constructor(options: AdmissionOptions) {
    this.#opts = options;
  }

  /** A new TCP socket: admitted (and its handshake deadline armed), or answered 503 and closed. */
  accept(socket: Socket): void {
    const tracked: Tracked = { address: socket.remoteAddress ?? '', acceptedAt: Date.now(), stage: 'http', upgraded: false, timer: undefined };
    const refusal = this.#admit(tracked.address, HTTP_HEADROOM);
    if (refusal) return this.#refuse(socket, refusal);
    this.#sockets.set(socket, tracked);
    this.#counts(tracked.address).sockets++;
    this.#enter(tracked, 'handshake');
    tracked.timer = setTimeout(() => this.#expired(socket), this.#opts.handshakeTimeoutMs);
    tracked.timer.unref();
    socket.once('close', () => {
      clearTimeout(tracked.timer);
      this.#enter(tracked, 'http');
      this.#sockets.delete(socket);
      const counts = this.#counts(tracked.address);
      counts.sockets--;
      this.#tidy(tracked.address, counts);
    });
  }

  /** Whether this socket was refused at accept (its requests are not served). */
  refused(socket: object): boolean {
    return this.#refused.has(socket);
  }

  /** A plain HTTP request arrived on the socket: it is no WebSocket (yet) and stops counting. */
  request(socket: Socket): void {
    const tracked = this.#sockets.get(socket);
    if (!tracked || tracked.upgraded || tracked.stage === 'http') return;
    clearTimeout(tracked.timer);
    this.#enter(tracked, 'http');
  }

  /**
   * An upgrade request on the socket: the milliseconds left for its handshake (its first
   * WebSocket frame must come within them), or `undefined` when it was answered 503 and closed.
   */
  upgrade(socket: Socket): number | undefined {
    const tracked = this.#sockets.get(socket);
    if (!tracked) {
      this.#refuse(socket, 'capacity');
      return undefined;
    }
    clearTimeout(tracked.timer);
    if (tracked.stage === 'http') {
      // A keep-alive socket that served plain requests and now upgrades: admitted anew.
      const refusal = this.#admit(tracked.address, 0, 1);
      if (refusal) {
        this.#refuse(socket, refusal);
        return undefined;
      }
      this.#enter(tracked, 'handshake');
      tracked.upgraded = true;
      return this.#opts.handshakeTimeoutMs;
    }
    // Counted since its accept: the cap holds if the others leave room for it.
    if (this.#connections - 1 >= this.#opts.maxConnections) {
      this.#enter(tracked, 'http');
      this.#refuse(socket, 'capacity');
      return undefined;
    }
    tracked.upgraded = true;
    return Math.max(1, tracked.acceptedAt + this.#opts.handshakeTimeoutMs - Date.now());
  }

  /** The WebSocket sent its first frame: its handshake is no longer in flight. */
  started(socket: Socket): void {
    const tracked = this.#sockets.get(socket);
    if (tracked?.stage === 'handshake') this.#enter(tracked, 'open');
  }

  /** Sockets counted as connections now (handshakes in flight included). */
  get connections(): number {
    return this.#connections;
  }

  /**
   * Whether one more socket from `address` may be counted, `headroom` beyond `maxConnections`
   * (`counted`: the socket is one of its address's already).
   */
  #admit(address: string, headroom: number, counted = 0): AdmissionRefusal | undefined {
    const { maxConnections, maxConnectionsPerAddress, maxHandshakesPerAddress } = this.#opts;
    if (this.#connections >= maxConnections + headroom) return 'capacity';
    const counts = this.#addresses.get(address);
    if (counts && counts.sockets - counted >= maxConnectionsPerAddress) return 'address_connections';
    if (counts && counts.handshakes >= maxHandshakesPerAddress) return 'address_handshakes';
    return undefined;
  }

  /** Moves a socket to `stage`, keeping the counts. */
  #enter(tracked: Tracked, stage: Stage): void {
    const from = tracked.stage;
    if (from === stage) return;
    tracked.stage = stage;
    const counts = this.#counts(tracked.address);
    const connection = (s: Stage) => (s === 'http' ? 0 : 1);
    const handshake = (s: Stage) => (s === 'handshake' ? 1 : 0);
    this.#connections += connection(stage) - connection(from);
    counts.handshakes += handshake(stage) - handshake(from);
    this.#tidy(tracked.address, counts);
  }

  #counts(address: string): PerAddress {
    let counts = this.#addresses.get(address);
    if (!counts) this.#addresses.set(address, (counts = { sockets: 0, handshakes: 0 }));
    return counts;
  }

  #tidy(address: string, counts: PerAddress): void {
    if (counts.sockets === 0 && counts.handshakes === 0) this.#addresses.delete(address);
  }

  /** No upgrade request in time (a plain request stops the timer; an upgrade hands it to the connection). */
  #expired(socket: Socket): void {
    const tracked = this.#sockets.get(socket);
    if (!tracked || tracked.stage !== 'handshake' || tracked.upgraded) return;
    this.#opts.refused('timeout');
    socket.destroy();
  }

  /**
   * 503, then close. The socket is still read (and its requests ignored), so the client gets
   * to read the answer instead of a reset; one that does not close is cut off.
   */
  #refuse(socket: Socket, reason: AdmissionRefusal): void {
    this.#refused.add(socket);
    this.#opts.refused(reason);
    if (socket.writable) socket.end(REFUSAL);
    setTimeout(() => socket.destroy(), REFUSED_LINGER_MS).unref();
  }
}

import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';
import { afterEach } from 'vitest';
import { createRuntime, demoAgent, type Runtime, type RuntimeOptions } from '../../src/index.ts';
import { createGateway, type GatewayOptions } from '../../src/gateway/index.ts';

export interface Frame {
  version: string;
  id: string;
  seq: number;
  priority: 'control' | 'data';
  session_id: string;
  timestamp: number;
  event: { type: string; data: Record<string, any> };
}

/** A real gateway on an ephemeral port of 127.0.0.1, with the demo agent unless told otherwise. */
export async function startGateway(
  options: {
    runtime?: Partial<RuntimeOptions>;
    gateway?: Partial<Omit<GatewayOptions, 'runtime'>>;
    /** What the gateway is given instead of the runtime itself (e.g. `asyncRuntime`'s wrapper). */
    serve?: (runtime: Runtime) => Runtime;
  } = {},
) {
  const runtime = createRuntime({ agent: demoAgent({ delayMs: 1 }), debounceMs: 0, ...options.runtime });
  const gateway = createGateway({ runtime: options.serve?.(runtime) ?? runtime, port: 0, ...options.gateway });
  const { url, port } = await gateway.listen();
  return { runtime, gateway, url, port, http: `http://127.0.0.1:${port}` };
}

/** `gateway()` starts a gateway for the current test; it is closed after the test. */
export function gatewayPerTest() {
  let stop: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await stop?.();
    stop = undefined;
  });
  return async (options: Parameters<typeof startGateway>[0] = {}) => {
    const g = await startGateway(options);
    stop = () => g.gateway.close();
    return g;
  };
}

/**
 * A test client over a real socket. Frames are recorded as they arrive; `until` waits for
 * the next frame matching a predicate (no sleeps: it resolves on the frame itself).
 */
export class Client {
  readonly frames: Frame[] = [];
  readonly ws: WebSocket;
  readonly closed: Promise<{ code: number; reason: string }>;
  #cursor = 0;
  #waiters: (() => void)[] = [];

  private constructor(ws: WebSocket) {
    this.ws = ws;
    this.closed = new Promise((resolve) =>
      ws.on('close', (code, reason) => {
        resolve({ code, reason: reason.toString() });
        this.#wake();
      }),
    );
    ws.on('message', (raw) => {
      this.frames.push(JSON.parse(raw.toString()) as Frame);
      this.#wake();
    });
  }

  static connect(url: string): Promise<Client> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      const client = new Client(ws);
      ws.once('open', () => resolve(client));
      ws.once('error', reject);
    });
  }

  /** Connects and completes the handshake; returns the client and its init_ack. */
  static async attach(url: string, init: Record<string, unknown> = {}): Promise<{ client: Client; ack: Frame }> {
    const client = await Client.connect(url);
    client.send('init', { version: 'aep/v1', ...init });
    const ack = await client.until((f) => f.event.type === 'init_ack');
    return { client, ack };
  }

  send(type: string, data: Record<string, unknown> = {}, id: string = randomUUID()): string {
    this.ws.send(JSON.stringify({ version: 'aep/v1', id, event: { type, data } }));
    return id;
  }

  raw(text: string | Buffer): void {
    this.ws.send(text);
  }

  /** Resolves with the next frame (after the previous `until`) that matches; rejects if the socket closes first. */
  async until(match: (frame: Frame) => boolean, label = 'frame'): Promise<Frame> {
    for (;;) {
      while (this.#cursor < this.frames.length) {
        const frame = this.frames[this.#cursor++]!;
        if (match(frame)) return frame;
      }
      if (this.ws.readyState === WebSocket.CLOSED) throw new Error(`socket closed while waiting for ${label}`);
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  /** Resolves with the first frame received so far, in any position, that matches; or waits for one. */
  async seen(match: (frame: Frame) => boolean, label = 'frame'): Promise<Frame> {
    for (;;) {
      const frame = this.frames.find(match);
      if (frame) return frame;
      if (this.ws.readyState === WebSocket.CLOSED) throw new Error(`socket closed while waiting for ${label}`);
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  type(type: string): Promise<Frame> {
    return this.until((f) => f.event.type === type, type);
  }

  /** A ping/pong round trip: everything the server sent before it has arrived. */
  async sync(): Promise<void> {
    const id = this.send('ping');
    await this.until((f) => f.event.type === 'pong', `pong for ${id}`);
  }

  close(): Promise<{ code: number; reason: string }> {
    this.ws.close(1000);
    return this.closed;
  }

  #wake(): void {
    for (const wake of this.#waiters.splice(0)) wake();
  }
}

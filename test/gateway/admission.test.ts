/**
 * C15 under attack: admission before the WebSocket handshake, per-address caps, the
 * handshake deadline, the per-connection frame budget, session-creation quotas, and what a
 * refused handshake leaves in /metrics. Real sockets on 127.0.0.1 (a second client address,
 * 127.0.0.2, is loopback too). Bounds on time are generous: CI is a loaded 2-core machine.
 */
import { connect, type Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';
import { describe, expect, it } from 'vitest';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client, gatewayPerTest, type Frame } from './client.ts';
import { createRuntime, demoAgent, type Runtime } from '../../src/index.ts';
import { createInspector } from '../../src/gateway/inspector/inspector.ts';

const gateway = gatewayPerTest();

/** A TCP socket that connects and sends nothing (a half-open upgrade, as an attacker holds them). */
function silentSocket(port: number, localAddress = '127.0.0.1'): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', localAddress }, () => resolve(socket));
    socket.on('error', reject);
  });
}

/** A WebSocket that completes its upgrade and never sends `init`; `undefined` if it was refused. */
function neverInit(url: string, localAddress = '127.0.0.1'): Promise<WebSocket | undefined> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { localAddress });
    ws.once('open', () => resolve(ws));
    ws.once('error', () => resolve(undefined));
  });
}

/** Attaches from `localAddress`, or says how the gateway refused. */
function attachFrom(url: string, localAddress: string): Promise<{ ack: Frame; ws: WebSocket } | { refused: string }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { localAddress });
    ws.once('unexpected-response', (_req, res) => {
      resolve({ refused: String(res.statusCode) });
      ws.terminate();
    });
    ws.once('error', (error) => resolve({ refused: error.message }));
    ws.once('open', () => ws.send(JSON.stringify({ version: 'aep/v1', id: randomUUID(), event: { type: 'init', data: { version: 'aep/v1' } } })));
    ws.once('message', (raw) => resolve({ ack: JSON.parse(raw.toString()) as Frame, ws }));
  });
}

const closed = (socket: Socket) => new Promise<void>((resolve) => (socket.destroyed ? resolve() : socket.once('close', () => resolve())));

/** A counter from /metrics (with authentication on, C18, it needs a credential: `token`). */
async function metric(http: string, name: string, label: string, token?: string): Promise<number> {
  const response = await fetch(`${http}/metrics`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  if (!response.ok) throw new Error(`/metrics answered ${response.status}`);
  const text = await response.text();
  const line = text.split('\n').find((l) => l.startsWith(label === '' ? `${name} ` : `${name}{${label}}`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

describe('admission (C15)', () => {
  it('more never-initialised sockets than the cap: the extra get 503 before any WebSocket handshake, and a legitimate client still connects within the handshake deadline', async () => {
    const handshakeTimeoutMs = 1000;
    // The attacker comes from 127.0.0.2 and fills the whole gateway; its per-address caps are the gateway's cap.
    const { url, http } = await gateway({ gateway: { maxConnections: 20, maxHandshakesPerAddress: 100, handshakeTimeoutMs } });
    const attempts = await Promise.all(Array.from({ length: 40 }, () => neverInit(url, '127.0.0.2')));
    const held = attempts.filter((ws) => ws !== undefined);
    expect(held.length).toBeLessThanOrEqual(20);
    expect(await metric(http, 'baton_handshakes_refused_total', 'reason="capacity"')).toBeGreaterThanOrEqual(20);
    // The legitimate client is refused while the attacker holds every place, and retries.
    const started = Date.now();
    let attached: { ack: Frame; ws: WebSocket } | undefined;
    while (!attached) {
      const attempt = await attachFrom(url, '127.0.0.1');
      if ('ack' in attempt) attached = attempt;
      else {
        expect(attempt.refused).toBe('503');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    // Bound: the deadline plus 2 s of slack for a loaded machine (it was ~31 s before admission).
    expect(Date.now() - started).toBeLessThan(handshakeTimeoutMs + 2000);
    expect(attached.ack.event.data.code).toBeUndefined();
    attached.ws.close();
    held.forEach((ws) => ws.terminate());
    expect(await metric(http, 'baton_handshakes_refused_total', 'reason="timeout"')).toBeGreaterThan(0);
    expect(await metric(http, 'baton_errors_total', 'code="PROTOCOL_VIOLATION"')).toBeGreaterThan(0);
  });

  it('caps handshakes in flight per address: half-open sockets from one address cannot keep another address out', async () => {
    const { url, port, http } = await gateway({ gateway: { maxHandshakesPerAddress: 5, handshakeTimeoutMs: 10_000 } });
    const sockets = await Promise.all(Array.from({ length: 5 }, () => silentSocket(port, '127.0.0.2')));
    expect(await attachFrom(url, '127.0.0.2')).toEqual({ refused: '503' });
    const other = await attachFrom(url, '127.0.0.1');
    expect('ack' in other && other.ack.event.data.code).toBeUndefined();
    if ('ws' in other) other.ws.close();
    expect(await metric(http, 'baton_handshakes_refused_total', 'reason="address_handshakes"')).toBe(1);
    sockets.forEach((socket) => socket.destroy());
  });

  it('caps connections per address, and admits again once one leaves', async () => {
    const { url } = await gateway({ gateway: { maxConnectionsPerAddress: 3 } });
    const clients = await Promise.all([1, 2, 3].map(() => attachFrom(url, '127.0.0.2')));
    expect(clients.every((c) => 'ack' in c)).toBe(true);
    expect(await attachFrom(url, '127.0.0.2')).toEqual({ refused: '503' });
    const elsewhere = await attachFrom(url, '127.0.0.1');
    expect('ack' in elsewhere).toBe(true);
    const first = clients[0] as { ws: WebSocket };
    await new Promise((resolve) => {
      first.ws.once('close', resolve);
      first.ws.close();
    });
    let again = await attachFrom(url, '127.0.0.2');
    // The server may see the close a moment after the client does.
    for (let i = 0; i < 50 && !('ack' in again); i++) again = await attachFrom(url, '127.0.0.2');
    expect('ack' in again).toBe(true);
    for (const c of [...clients, elsewhere, again]) if ('ws' in c) c.ws.terminate();
  });

  it('cuts off a socket that does not upgrade within handshakeTimeoutMs, and counts it', async () => {
    const { port, http } = await gateway({ gateway: { handshakeTimeoutMs: 200 } });
    const socket = await silentSocket(port);
    const started = Date.now();
    await closed(socket);
    expect(Date.now() - started).toBeLessThan(200 + 2000);
    expect(await metric(http, 'baton_handshakes_refused_total', 'reason="timeout"')).toBe(1);
  });

  it('a plain HTTP request does not count against the caps', async () => {
    const { url, http } = await gateway({ gateway: { maxConnections: 1 } });
    for (let i = 0; i < 5; i++) expect((await fetch(`${http}/healthz`)).status).toBe(200);
    const { client } = await Client.attach(url);
    await client.close();
  });

  it('counts every refused handshake in /metrics, by reason', async () => {
    const { url, http } = await gateway({ gateway: { token: 'secret' } });
    const client = await Client.connect(url);
    client.send('init', { version: 'aep/v1' });
    await client.type('init_ack');
    await client.closed;
    expect(await metric(http, 'baton_handshakes_refused_total', 'reason="AUTH_REQUIRED"', 'secret')).toBe(1);
    expect(await metric(http, 'baton_errors_total', 'code="AUTH_REQUIRED"', 'secret')).toBe(1);
  });
});

describe('session quotas (C15)', () => {
  it('refuses new sessions past sessionRate per address with RATE_LIMITED, and still attaches existing ones', async () => {
    const { url } = await gateway({ gateway: { sessionRate: { perSecond: 0.001, burst: 2 } } });
    const a = await Client.attach(url, { session_id: 'quota-a' });
    const b = await Client.attach(url);
    expect(a.ack.event.data.code).toBeUndefined();
    expect(b.ack.event.data.code).toBeUndefined();
    const third = await Client.attach(url);
    expect(third.ack.event.data).toMatchObject({ state: 'deleted', code: 'RATE_LIMITED' });
    expect((await third.client.closed).code).toBe(1008);
    const again = await Client.attach(url, { session_id: 'quota-a' });
    expect(again.ack.event.data.code).toBeUndefined();
    for (const c of [a, b, again]) await c.client.close();
  });
});

describe('the runtime limits on the wire (C15)', () => {
  it('answers an input over a runtime limit with INVALID_MESSAGE naming it (event_id), and the connection stays open', async () => {
    const { url } = await gateway({ runtime: { maxContentBytes: 100, maxMetadataBytes: 200 } });
    const { client } = await Client.attach(url);
    const big = client.send('input', { content: 'x'.repeat(101) });
    expect((await client.type('error')).event.data).toMatchObject({ code: 'INVALID_MESSAGE', event_id: big, message: expect.stringContaining('maxContentBytes') });
    const meta = client.send('input', { content: 'x', metadata: { text: 'y'.repeat(200) } });
    expect((await client.type('error')).event.data).toMatchObject({ code: 'INVALID_MESSAGE', event_id: meta, message: expect.stringContaining('maxMetadataBytes') });
    // Deeper than any limit, within the frame size.
    const depth = 5000;
    const deep = `{"version":"aep/v1","id":"deep","event":{"type":"input","data":{"content":"x","metadata":{"a":${'['.repeat(depth)}${']'.repeat(depth)}}}}}`;
    client.raw(deep);
    expect((await client.type('error')).event.data).toMatchObject({ code: 'INVALID_MESSAGE', event_id: 'deep', message: expect.stringContaining('maxMetadataDepth') });
    await client.sync();
    await client.close();
  });
});

/** A frame of each kind a flooder may send, as raw WebSocket data. */
const FLOODS: Record<string, (i: number) => string | Buffer> = {
  ping: (i) => JSON.stringify({ version: 'aep/v1', id: `p${i}`, event: { type: 'ping', data: {} } }),
  garbage: (i) => `not json ${i}`,
  binary: () => Buffer.from([1, 2, 3]),
  'unknown type': (i) => JSON.stringify({ version: 'aep/v1', id: `u${i}`, event: { type: 'teleport', data: {} } }),
  input: (i) => JSON.stringify({ version: 'aep/v1', id: `i${i}`, event: { type: 'input', data: { content: `m${i}` } } }),
  'second init': (i) => JSON.stringify({ version: 'aep/v1', id: `n${i}`, event: { type: 'init', data: { version: 'aep/v1' } } }),
  control: (i) => JSON.stringify({ version: 'aep/v1', id: `c${i}`, event: { type: 'control', data: { action: 'stop' } } }),
};

describe('every frame costs (C15)', () => {
  it.each(Object.keys(FLOODS))('a %s flood closes the flooding socket with 1008, answers less than it sends, and leaves another client’s ping round trip within 1 s', async (kind) => {
    const { url, http } = await gateway();
    const bystander = await Client.attach(url);
    const flooder = await Client.attach(url);
    const make = FLOODS[kind]!;
    const sent = 20_000;
    const rtts: number[] = [];
    let flooding = true;
    const probe = (async () => {
      while (flooding) {
        const at = performance.now();
        await bystander.client.sync();
        rtts.push(performance.now() - at);
        // 50 probes a second at most: the bystander stays well within its own budget.
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    for (let i = 0; i < sent && flooder.client.ws.readyState === WebSocket.OPEN; i++) flooder.client.raw(make(i));
    const close = await flooder.client.closed;
    flooding = false;
    await probe;
    expect(close).toMatchObject({ code: 1008, reason: 'RATE_LIMITED' });
    // Answered: at most the budget's burst (200) and a little it refilled, plus one RATE_LIMITED; the rest of the flood unanswered.
    const answered = flooder.client.frames.length;
    expect(answered).toBeLessThan(1000);
    expect(flooder.client.frames.filter((f) => f.event.type === 'error' && f.event.data.code === 'RATE_LIMITED').length).toBeGreaterThanOrEqual(1);
    // The bystander was answered throughout; bound: 1 s per round trip (4 ms idle, 4.8 s before the budget).
    expect(rtts.length).toBeGreaterThan(0);
    expect(Math.max(...rtts)).toBeLessThan(1000);
    expect(bystander.client.ws.readyState).toBe(WebSocket.OPEN);
    expect(await metric(http, 'baton_frames_dropped_total', '')).toBeGreaterThan(0);
    await bystander.client.close();
  });

  it('a client within its budget is never refused, even in bursts', async () => {
    const { url } = await gateway({ gateway: { frameBudget: { perSecond: 50, burst: 100 } } });
    const { client } = await Client.attach(url);
    for (let i = 0; i < 99; i++) client.send('ping');
    for (let i = 0; i < 99; i++) await client.type('pong');
    expect(client.frames.some((f) => f.event.type === 'error')).toBe(false);
    await client.close();
  });
});

describe('security headers', () => {
  it('serves /inspect with a CSP (frame-ancestors none), nosniff and no framing; every other answer with nosniff', async () => {
    const { http } = await gateway();
    const page = await fetch(`${http}/inspect`);
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toMatch(/script-src 'sha256-[A-Za-z0-9+/=]+'/);
    expect(csp).not.toContain("'unsafe-eval'");
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    for (const path of ['/healthz', '/metrics', '/nope']) {
      const res = await fetch(`${http}${path}`);
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(res.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    }
  });
});

describe('slow inspector readers (C15)', () => {
  /** An inspector on its own HTTP server, `readers` of `/inspect/events` that never read, and sessions kept busy. */
  async function slowReaders(
    options: Parameters<typeof createInspector>[1],
    readers: number,
    run: (inspector: ReturnType<typeof createInspector>, runtime: Runtime) => Promise<void>,
  ) {
    const runtime = createRuntime({ agent: demoAgent({ delayMs: 0 }), debounceMs: 0, commitDelayMs: 0 });
    const inspector = createInspector(runtime, options);
    const server = createServer((req, res) => void inspector.handle(req, res, new URL(req.url ?? '/', 'http://x').pathname));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const sockets = await Promise.all(
      Array.from({ length: readers }, () =>
        silentSocket(port).then((socket) => {
          socket.write('GET /inspect/events HTTP/1.1\r\nHost: x\r\n\r\n');
          socket.pause(); // never reads a byte
          return socket;
        }),
      ),
    );
    try {
      await run(inspector, runtime);
    } finally {
      sockets.forEach((socket) => socket.destroy());
      inspector.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await runtime.shutdown({ drainMs: 0 });
    }
  }

  /** Keeps 200 sessions changing (every row and event goes to every reader) until `stop()`. */
  async function churn(runtime: { send: Runtime['send'] }, stop: () => boolean) {
    const ids = Array.from({ length: 200 }, (_, i) => `churn-${i}`);
    while (!stop()) await Promise.all(ids.map((id) => runtime.send(id, { id: randomUUID(), content: `some words for ${id}` })));
  }

  it('ten readers that never read: what is buffered for them stays bounded while sessions churn', async () => {
    const readerBufferBytes = 16_384;
    await slowReaders({ flushMs: 10, readerBufferBytes, stallMs: 60_000 }, 10, async (inspector, runtime) => {
      let maxBuffered = 0;
      let sawBehind = false;
      // Churn until the readers are behind (what the kernel's socket buffers take first
      // depends on the machine's load), then 2 s more; at most 15 s.
      let until = Date.now() + 15_000;
      const watch = setInterval(() => {
        const stats = inspector.stats();
        maxBuffered = Math.max(maxBuffered, stats.buffered);
        if (!sawBehind && stats.behind > 0) until = Math.min(until, Date.now() + 2000);
        sawBehind ||= stats.behind > 0;
      }, 5);
      await churn(runtime, () => Date.now() > until);
      clearInterval(watch);
      // Bound: 16 × readerBufferBytes per reader (then it is dropped), i.e. 2.5 MB for ten; unbounded it grew 8.5 MB/s.
      expect(sawBehind).toBe(true);
      expect(maxBuffered).toBeLessThan(10 * 16 * readerBufferBytes);
      expect(inspector.stats().readers).toBe(10);
    });
  }, 30_000);
});

describe('slow inspector readers are dropped (C15)', () => {
  it('drops a reader that stays behind longer than stallMs, and counts it', async () => {
    const runtime = createRuntime({ agent: demoAgent({ delayMs: 0 }), debounceMs: 0, commitDelayMs: 0 });
    let dropped = 0;
    const inspector = createInspector(runtime, { flushMs: 10, readerBufferBytes: 1024, stallMs: 200, dropped: () => dropped++ });
    const server = createServer((req, res) => void inspector.handle(req, res, new URL(req.url ?? '/', 'http://x').pathname));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const socket = await silentSocket((server.address() as AddressInfo).port);
    socket.write('GET /inspect/events HTTP/1.1\r\nHost: x\r\n\r\n');
    socket.pause();
    const ids = Array.from({ length: 200 }, (_, i) => `drop-${i}`);
    const until = Date.now() + 10_000;
    while (dropped === 0 && Date.now() < until) await Promise.all(ids.map((id) => runtime.send(id, { id: randomUUID(), content: `words for ${id}` })));
    expect(dropped).toBe(1);
    expect(inspector.stats().readers).toBe(0);
    await closed(socket.resume()); // the server ended it
    inspector.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await runtime.shutdown({ drainMs: 0 });
  }, 20_000);
});

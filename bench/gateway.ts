/**
 * The gateway against the physical limit of its traffic: the same client (N connections,
 * each sending an input and waiting for its `done`) against Baton's gateway with a no-delay
 * agent, and against a bare `ws` server that answers each input with exactly the frames
 * Baton sends for such a turn, captured once and replayed without any logic.
 */
import type { AddressInfo } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import { createRuntime, demoAgent } from '../src/index.ts';
import { createGateway } from '../src/gateway/index.ts';
import { UNLIMITED } from './unlimited.ts';

export interface Server {
  url: string;
  close(): Promise<void>;
}

export async function batonServer(): Promise<Server> {
  const runtime = createRuntime({ agent: demoAgent({ delayMs: 0 }), debounceMs: 0 });
  const gateway = createGateway({ runtime, port: 0, ...UNLIMITED });
  const { url } = await gateway.listen();
  return { url, close: () => gateway.close() };
}

/** Records the frames Baton sends for one handshake and one turn. */
function captureFrames(): Promise<{ ack: string; turn: string[] }> {
  return captureFrom(batonServer());
}

/** Records the frames a Baton server sends for one handshake and one turn, then closes it. */
export async function captureFrom(starting: Promise<Server>): Promise<{ ack: string; turn: string[] }> {
  const server = await starting;
  const ws = new WebSocket(server.url);
  const frames: string[] = [];
  await new Promise<void>((resolve) => ws.on('open', () => resolve()));
  ws.on('message', (raw) => frames.push(raw.toString()));
  ws.send(envelope('init', { version: 'aep/v1', session_id: 'capture' }));
  await until(() => frames.some((f) => f.includes('"state":"idle"')));
  const ack = frames[0]!;
  frames.length = 0;
  ws.send(envelope('input', { content: 'x' }));
  await until(() => frames.some((f) => f.includes('"type":"state"') && f.includes('"idle"')));
  ws.close();
  await server.close();
  return { ack, turn: [...frames] };
}

export async function bareServer(): Promise<Server> {
  const { ack, turn } = await captureFrames();
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', path: '/ws' });
  await new Promise<void>((resolve) => wss.on('listening', () => resolve()));
  wss.on('connection', (ws) => {
    ws.on('message', (raw) => {
      if (raw.toString().includes('"type":"init"')) ws.send(ack);
      else for (const frame of turn) ws.send(frame);
    });
  });
  const { port } = wss.address() as AddressInfo;
  return { url: `ws://127.0.0.1:${port}/ws`, close: () => new Promise((resolve) => wss.close(() => resolve())) };
}

let ids = 0;
export function envelope(type: string, data: object): string {
  return JSON.stringify({ version: 'aep/v1', id: `b${ids++}`, event: { type, data } });
}

export async function until(done: () => boolean): Promise<void> {
  while (!done()) await new Promise((resolve) => setTimeout(resolve, 1));
}

/**
 * `connections` clients for `seconds`; each sends its next input as soon as the previous one
 * ended (`thinkMs` 0), or after a think time drawn from an exponential distribution with
 * mean `thinkMs` — so paced clients arrive at random, as users do, instead of in lockstep
 * (lockstep clients would measure the queue of one synchronized burst, not the latency).
 * Returns round trips per second and latencies (ms).
 */
export async function drive(url: string, connections: number, seconds: number, thinkMs = 0) {
  const latencies: number[] = [];
  const random = mulberry32(7);
  const think = () => new Promise((resolve) => setTimeout(resolve, -Math.log(1 - random()) * thinkMs));
  const deadline = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: connections }, async (_, c) => {
      const ws = new WebSocket(url);
      await new Promise<void>((resolve) => ws.on('open', () => resolve()));
      let finish: (() => void) | undefined;
      ws.on('message', (raw) => {
        const text = raw.toString();
        if (text.includes('"type":"init_ack"') || text.includes('"type":"done"')) finish?.();
      });
      const roundTrip = (frame: string) =>
        new Promise<void>((resolve) => {
          finish = resolve;
          ws.send(frame);
        });
      await roundTrip(envelope('init', { version: 'aep/v1', session_id: `bench-${c}-${ids++}` }));
      if (thinkMs > 0) await think();
      while (performance.now() < deadline) {
        const sent = performance.now();
        await roundTrip(envelope('input', { content: 'x' }));
        latencies.push(performance.now() - sent);
        if (thinkMs > 0) await think();
      }
      ws.close();
    }),
  );
  latencies.sort((a, b) => a - b);
  const at = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? 0;
  return { perSecond: latencies.length / seconds, p50: at(0.5), p99: at(0.99) };
}

/** A small seeded PRNG, so every run paces its clients the same way. */
function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export async function gatewayBench(connections: number, seconds: number) {
  const servers = { baton: await batonServer(), bare: await bareServer() };
  // Warm up both (JIT, buffers): each section runs in a fresh process.
  await drive(servers.baton.url, connections, 1);
  await drive(servers.bare.url, connections, 1);
  const baton = await drive(servers.baton.url, connections, seconds);
  const bare = await drive(servers.bare.url, connections, seconds);
  // Half of Baton's maximum rate: each client thinks, on average, as long as it takes for
  // all of them together to send at half that rate (the round trips themselves then make
  // it a little less than half).
  const thinkMs = (connections / (baton.perSecond / 2)) * 1000;
  const batonHalf = await drive(servers.baton.url, connections, seconds, thinkMs);
  const bareHalf = await drive(servers.bare.url, connections, seconds, thinkMs);
  await servers.baton.close();
  await servers.bare.close();
  return {
    gateway_round_trips_per_s: Math.round(baton.perSecond),
    bare_ws_round_trips_per_s: Math.round(bare.perSecond),
    gateway_vs_ws: baton.perSecond / bare.perSecond,
    half_load_round_trips_per_s: Math.round(batonHalf.perSecond),
    added_p50_ms: batonHalf.p50 - bareHalf.p50,
    added_p99_ms: batonHalf.p99 - bareHalf.p99,
  };
}

/**
 * Durable streaming: N clients, each sending an input and reading a long streamed reply
 * (an agent emitting `deltas` deltas as fast as it can, `perTick` per event-loop tick)
 * through Baton's gateway on the SQLite store (a temp file, WAL) and on the memory store,
 * against a bare `ws` server that replays the frames Baton sends for such a turn with the
 * same pacing and no logic. Measures deltas per second received by the clients.
 *
 * Also: sequential turns/s on the SQLite store against the memory store, and the store
 * transactions one turn costs (every top-level write of the store counted) for a short and
 * a long reply.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { setImmediate as nextTick } from 'node:timers/promises';
import WebSocket, { WebSocketServer } from 'ws';
import { createRuntime, MemoryStore, type Agent, type Store } from '../src/index.ts';
import { SqliteStore } from '../src/sqlite.ts';
import { createGateway } from '../src/gateway/index.ts';
import { UNLIMITED } from './unlimited.ts';
import { sequential, type Contender } from './turns.ts';
import { captureFrom, envelope, until, type Server } from './gateway.ts';

export interface StreamShape {
  /** Deltas of one reply. */
  readonly deltas: number;
  /** Deltas the agent emits per event-loop tick (1: each in its own tick). */
  readonly perTick: number;
}

/** Emits `deltas` deltas, `perTick` of them per tick, as fast as the event loop allows. */
export function streamingAgent({ deltas, perTick }: StreamShape): Agent {
  return async (turn) => {
    for (let i = 0; i < deltas; i++) {
      turn.emit('token ');
      if ((i + 1) % perTick === 0 && i + 1 < deltas) await nextTick();
    }
  };
}

interface NamedServer extends Server {
  readonly name: string;
}

const tempDirs: string[] = [];
function tempDb(): string {
  const dir = mkdtempSync(join(tmpdir(), 'baton-bench-stream-'));
  tempDirs.push(dir);
  return join(dir, 'bench.db');
}
export function removeTempDbs(): void {
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

export async function batonStreamServer(name: string, store: Store, shape: StreamShape, commitDelayMs = 4): Promise<NamedServer> {
  const runtime = createRuntime({ agent: streamingAgent(shape), debounceMs: 0, store, commitDelayMs });
  const gateway = createGateway({ runtime, port: 0, ...UNLIMITED });
  const { url } = await gateway.listen();
  return {
    name,
    url,
    close: async () => {
      await gateway.close();
      store.close();
    },
  };
}

/** The frames Baton sends for one handshake and one streamed turn (memory store). */
async function captureFrames(shape: StreamShape): Promise<{ ack: string; turn: string[] }> {
  const captured = await captureFrom(batonStreamServer('capture', new MemoryStore(), shape));
  const deltas = captured.turn.filter(isDelta).length;
  if (deltas !== shape.deltas) throw new Error(`captured ${deltas} deltas, expected ${shape.deltas}`);
  return captured;
}

/** Replays the captured frames for every input, deltas paced `perTick` per tick like the agent. */
async function bareStreamServer(shape: StreamShape): Promise<NamedServer> {
  const { ack, turn } = await captureFrames(shape);
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', path: '/ws' });
  await new Promise<void>((resolve) => wss.on('listening', () => resolve()));
  wss.on('connection', (ws) => {
    ws.on('message', async (raw) => {
      if (raw.toString().includes('"type":"init"')) return ws.send(ack);
      let sent = 0;
      for (const frame of turn) {
        if (isDelta(frame) && sent > 0 && sent % shape.perTick === 0) await nextTick();
        if (isDelta(frame)) sent++;
        ws.send(frame);
      }
    });
  });
  const { port } = wss.address() as AddressInfo;
  return { name: 'bare ws', url: `ws://127.0.0.1:${port}/ws`, close: () => new Promise((resolve) => wss.close(() => resolve())) };
}

const isDelta = (frame: string) => frame.includes('"type":"message.delta"');

/** Fresh session ids across runs of the same process. */
let sessions = 0;


/**
 * `connections` clients; each runs turns back to back (next input after the last `done`)
 * until `seconds` have passed. Returns deltas received per second (over the time until the
 * last client finished its last turn) and the turns whose `done` said deltas were dropped.
 */
export async function driveStreams(url: string, connections: number, seconds: number) {
  let deltas = 0;
  let turns = 0;
  let dropped = 0;
  const start = performance.now();
  const deadline = start + seconds * 1000;
  await Promise.all(
    Array.from({ length: connections }, async (_, c) => {
      const ws = new WebSocket(url);
      await new Promise<void>((resolve) => ws.on('open', () => resolve()));
      let finish: (() => void) | undefined;
      ws.on('message', (raw) => {
        const text = raw.toString();
        if (isDelta(text)) deltas++;
        else if (text.includes('"type":"init_ack"')) finish?.();
        else if (text.includes('"type":"done"')) {
          turns++;
          if (text.includes('"dropped":true')) dropped++;
          finish?.();
        }
      });
      const roundTrip = (frame: string) =>
        new Promise<void>((resolve) => {
          finish = resolve;
          ws.send(frame);
        });
      await roundTrip(envelope('init', { version: 'aep/v1', session_id: `stream-${c}-${sessions++}` }));
      while (performance.now() < deadline) await roundTrip(envelope('input', { content: 'x' }));
      ws.close();
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  return { perSecond: deltas / elapsed, turns, dropped };
}

export async function streamBench(
  { connections, seconds, rounds, shape }: { connections: number; seconds: number; rounds: number; shape: StreamShape },
  progress: (text: string) => void,
) {
  const servers = [
    await bareStreamServer(shape),
    await batonStreamServer('gateway, SQLite store', new SqliteStore(tempDb()), shape),
    await batonStreamServer('gateway, SQLite store, commitDelayMs 0', new SqliteStore(tempDb()), shape, 0),
    await batonStreamServer('gateway, memory store', new MemoryStore(), shape),
  ];
  const samples = new Map<string, number[]>(servers.map((s) => [s.name, []]));
  let dropped = 0;
  // Warm up every server (JIT, buffers, the SQLite file): each section runs in a fresh process.
  for (const server of servers) await driveStreams(server.url, connections, 1);
  for (let round = 0; round < rounds; round++) {
    for (const server of servers) {
      progress(`${server.name}: ${connections} streams × ${shape.deltas} deltas, round ${round + 1}/${rounds}`);
      const run = await driveStreams(server.url, connections, seconds);
      samples.get(server.name)!.push(run.perSecond);
      dropped += run.dropped;
    }
  }
  for (const server of servers) await server.close();
  removeTempDbs();
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const [bare, sqlite, undelayed, memory] = servers.map((s) => median(samples.get(s.name)!)) as [number, number, number, number];
  return {
    stream_connections: connections,
    stream_deltas_per_turn: shape.deltas,
    stream_deltas_per_tick: shape.perTick,
    stream_bare_ws_deltas_per_s: Math.round(bare),
    stream_sqlite_deltas_per_s: Math.round(sqlite),
    stream_memory_deltas_per_s: Math.round(memory),
    stream_vs_ws: sqlite / bare,
    stream_memory_vs_ws: memory / bare,
    stream_sqlite_no_delay_deltas_per_s: Math.round(undelayed),
    stream_no_delay_vs_ws: undelayed / bare,
    stream_turns_with_dropped_deltas: dropped,
  };
}

/** Baton with a no-op agent on a given store (a fresh one per run). */
function batonOn(name: string, makeStore: () => Store): Contender {
  return {
    name,
    setup(sessions) {
      const store = makeStore();
      const runtime = createRuntime({ agent: async () => {}, debounceMs: 0, store });
      const waiting = new Map<string, () => void>();
      runtime.events$.subscribe((e) => {
        if (e.type !== 'done') return;
        for (const id of e.data.input_ids) {
          const key = `${e.sessionId}/${id}`;
          waiting.get(key)?.();
          waiting.delete(key);
        }
      });
      return {
        submit: (s, i) =>
          new Promise<void>((resolve, reject) => {
            const sessionId = `s${s}`;
            const id = `m${i}`;
            waiting.set(`${sessionId}/${id}`, resolve);
            // Not awaited here: the session is claimed at the call, and the input is done when its `done` comes.
            runtime.send(sessionId, { id, content: 'x' }).then((receipt) => {
              if (receipt.status !== 'accepted') reject(new Error(`bench input rejected: ${receipt.code}`));
            }, reject);
          }),
        close: async () => {
          await runtime.shutdown({ drainMs: 0 });
          store.close();
        },
      };
    },
  };
}

export const batonMemoryStore = batonOn('Baton, memory store', () => new MemoryStore());
export const batonSqliteStore = batonOn('Baton, SQLite store', () => new SqliteStore(tempDb()));

const WRITES = ['commit', 'prune'] as const;

/**
 * Store transactions of one turn: one session on the SQLite store, a warm-up turn, then one
 * turn of each reply length. Every top-level write call of the store is one transaction
 * (`commit` nests its writes into its own); `commit` calls are counted apart.
 */
export async function transactionsPerTurn(lengths: readonly number[], perTick: number, commitDelayMs = 4) {
  const store = new SqliteStore(tempDb());
  const counts = { commit: 0, other: 0 };
  let depth = 0;
  for (const name of WRITES) {
    const original = store[name].bind(store) as (...args: unknown[]) => unknown;
    (store as unknown as Record<string, unknown>)[name] = (...args: unknown[]) => {
      if (depth === 0) counts[name === 'commit' ? 'commit' : 'other']++;
      depth++;
      try {
        return original(...args);
      } finally {
        depth--;
      }
    };
  }
  let deltas = 0;
  const agent: Agent = (turn) => streamingAgent({ deltas, perTick })(turn);
  const runtime = createRuntime({ agent, debounceMs: 0, store, commitDelayMs });
  let done: (() => void) | undefined;
  runtime.events$.subscribe((e) => {
    if (e.type === 'done') done?.();
  });
  const turn = async (id: string) => {
    await new Promise<void>((resolve, reject) => {
      done = resolve;
      runtime.send('tx', { id, content: 'x' }).then((receipt) => {
        if (receipt.status !== 'accepted') reject(new Error(`bench input rejected: ${receipt.code}`));
      }, reject);
    });
    // Let the step after `done` (the machine going idle) commit too.
    await nextTick();
  };
  deltas = 3;
  await turn('warm-up');
  const result: Record<string, { commit: number; total: number }> = {};
  for (const length of lengths) {
    deltas = length;
    counts.commit = counts.other = 0;
    await turn(`m${length}`);
    result[length] = { commit: counts.commit, total: counts.commit + counts.other };
  }
  await runtime.shutdown({ drainMs: 0 });
  store.close();
  removeTempDbs();
  return result;
}

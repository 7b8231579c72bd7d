/**
 * The cluster against one node (issue 16): real gateway node processes (bench/cluster-node.ts,
 * what `baton serve` starts, rate limit off) on 127.0.0.1, driven over real WebSockets from
 * this process. Not part of `npm run bench`, which needs no database:
 *
 *   npm run bench:cluster [-- --quick] [-- --rounds N]     (BATON_BENCH_PG_URL, default postgres://postgres@127.0.0.1:5432/test)
 *
 * A round (every configuration once) takes about 80 s; a full run has 3 rounds (`--quick`:
 * one round of shorter measures, about 40 s, and RESULTS.md is left alone).
 *
 * Configurations: one node on SQLite, then one, two and three nodes on one PostgreSQL schema
 * (a fresh one per configuration, dropped afterwards). Clients are spread evenly over the
 * nodes, round robin; each session is claimed by the node its client attached to. Measures
 * 1. turns/s: every client sends an input and waits for its `done` (demo echo agent, no delay);
 * 2. durable streaming: every client's turn streams `deltas` deltas, one per tick; deltas/s;
 * 3. (two and three nodes) the latency of an input sent through a node that does not own
 *    the session against one sent to its owner: two clients per session, one on each, taking
 *    turns at light load; input → input.ack, → first session event (its turn's `state:
 *    running`), → done, p50 / p99.
 *
 * On a machine with fewer cores than nodes + PostgreSQL + this client, more nodes cannot be
 * faster: the figures then measure the cluster's overhead, not a speed-up. Progress goes to
 * stderr, a table to stdout, the figures into the "Cluster" section of bench/RESULTS.md (full
 * runs), and a last line of JSON holds every figure.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import WebSocket from 'ws';

const { values } = parseArgs({ options: { quick: { type: 'boolean' }, rounds: { type: 'string' } } });
const quick = values.quick ?? false;
const rounds = Number(values.rounds ?? (quick ? 1 : 3));
if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds must be a positive integer, got ${values.rounds}`);
const pgUrl = process.env.BATON_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const size = quick
  ? { warmSeconds: 1, seconds: 2, connections: 20, streams: 20, deltas: 100, latencySessions: 4, latencySeconds: 3, thinkMs: 30 }
  : { warmSeconds: 1, seconds: 5, connections: 50, streams: 50, deltas: 200, latencySessions: 4, latencySeconds: 6, thinkMs: 30 };
/** A round trip that takes longer than this is counted as a timeout and its client gives up. */
const TIMEOUT_MS = 15_000;
const progress = (text: string) => process.stderr.write(`[bench cluster] ${text}\n`);
const load = () => loadavg().map((x) => x.toFixed(1)).join(' / ');

// ---------------------------------------------------------------------------------------
// Node processes

const nodeScript = fileURLToPath(new URL('./cluster-node.ts', import.meta.url));

interface NodeProc {
  readonly id: string;
  readonly child: ChildProcess;
  readonly url: string;
  /** Exit code or signal name, once gone. */
  readonly exited: Promise<number | string>;
  stderr(): string;
  /** Set when the bench asked it to stop: an exit before that is a crash. */
  stopping: boolean;
}

async function startNode(id: string, store: string, nodeId?: string): Promise<NodeProc> {
  const args = ['--import', 'tsx', nodeScript, '--store', store, ...(nodeId ? ['--node-id', nodeId] : [])];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
  let stdout = '';
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node ${id} did not listen within 30 s: ${stderr}`)), 30_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const match = /listening (ws:\/\/\S+)/.exec(stdout);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`node ${id} exited (${code}) before listening: ${stderr}`));
    });
  });
  const node: NodeProc = { id, child, url, exited, stderr: () => stderr, stopping: false };
  void exited.then((code) => {
    if (!node.stopping) problems.push(`node ${id} exited (${code}) during the run; its stderr: ${stderr.trim().slice(-2000) || '(empty)'}`);
  });
  return node;
}

/** SIGTERM (a graceful close: drain, release the sessions), SIGKILL after 10 s. */
async function stopNodes(nodes: readonly NodeProc[]): Promise<void> {
  await Promise.all(
    nodes.map(async (node) => {
      node.stopping = true;
      if (node.child.exitCode !== null || node.child.signalCode !== null) return;
      node.child.kill('SIGTERM');
      const timer = setTimeout(() => {
        problems.push(`node ${node.id} did not exit within 10 s of SIGTERM: killed`);
        node.child.kill('SIGKILL');
      }, 10_000);
      const code = await node.exited;
      clearTimeout(timer);
      if (code !== 0 && code !== 'SIGKILL') problems.push(`node ${node.id} exited ${code} after SIGTERM; its stderr: ${node.stderr().trim().slice(-2000)}`);
    }),
  );
  for (const node of nodes) {
    const lines = node.stderr().trim();
    if (lines) problems.push(`node ${node.id} logged: ${lines.slice(-2000)}`);
  }
}

/** Whatever looked wrong: crashes, error frames, timeouts, unexpected closes, node log lines. */
const problems: string[] = [];

// ---------------------------------------------------------------------------------------
// Clients

let ids = 0;
const envelope = (type: string, data: object, id = `c${ids++}`) => JSON.stringify({ version: 'aep/v1', id, event: { type, data } });

interface Frame {
  seq: number;
  event: { type: string; data: Record<string, any> };
}

/** Counts of what went wrong on the client side of one run. */
interface Trouble {
  errors: number;
  timeouts: number;
  closes: number;
  dropped: number;
  firstError?: string;
}
const noTrouble = (): Trouble => ({ errors: 0, timeouts: 0, closes: 0, dropped: 0 });
function note(trouble: Trouble, what: string): void {
  trouble.firstError ??= what;
}

/** A client of one session: frames are handed to `onFrame`; it notes errors and unexpected closes. */
class Client {
  readonly ws: WebSocket;
  onFrame: (frame: Frame) => void = () => {};
  lastSeq = 0;
  #closing = false;

  private constructor(url: string, readonly trouble: Trouble) {
    this.ws = new WebSocket(url);
    this.ws.on('message', (raw) => {
      const frame = JSON.parse(raw.toString()) as Frame;
      if (frame.seq > this.lastSeq) this.lastSeq = frame.seq;
      if (frame.event.type === 'error') {
        trouble.errors++;
        note(trouble, `error frame: ${JSON.stringify(frame.event.data)}`);
      }
      if (frame.event.type === 'done' && frame.event.data.dropped) trouble.dropped++;
      this.onFrame(frame);
    });
    this.ws.on('close', (code, reason) => {
      if (this.#closing) return;
      trouble.closes++;
      note(trouble, `connection closed by the server: ${code} ${reason.toString()}`);
    });
    this.ws.on('error', (error) => note(trouble, `socket error: ${error.message}`));
  }

  /** Connects and attaches to `session`; resolves with the init_ack's data. */
  static async attach(url: string, session: string, trouble: Trouble): Promise<Client> {
    const client = new Client(url, trouble);
    await new Promise<void>((resolve, reject) => {
      client.ws.once('open', () => resolve());
      client.ws.once('error', reject);
    });
    const ack = await client.until((f) => f.event.type === 'init_ack', () => client.ws.send(envelope('init', { version: 'aep/v1', session_id: session })));
    if (!ack || ack.event.data.state === 'deleted') throw new Error(`attach to ${session} refused: ${JSON.stringify(ack?.event.data)}`);
    return client;
  }

  /** Calls `send`, then resolves with the first frame that `match`es (undefined on a timeout). */
  until(match: (frame: Frame) => boolean, send: () => void = () => {}): Promise<Frame | undefined> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.trouble.timeouts++;
        note(this.trouble, `no answer within ${TIMEOUT_MS} ms`);
        this.onFrame = () => {};
        resolve(undefined);
      }, TIMEOUT_MS);
      this.onFrame = (frame) => {
        if (!match(frame)) return;
        clearTimeout(timer);
        this.onFrame = () => {};
        resolve(frame);
      };
      send();
    });
  }

  close(): void {
    this.#closing = true;
    this.ws.close();
  }
}

const isDone = (id: string) => (f: Frame) => f.event.type === 'done' && (f.event.data.input_ids as string[]).includes(id);
let sessions = 0;

/** `connections` clients, round robin over `urls`, each running turns back to back until `seconds` passed. */
async function driveTurns(urls: readonly string[], connections: number, seconds: number) {
  const trouble = noTrouble();
  const latencies: number[] = [];
  const clients = await Promise.all(Array.from({ length: connections }, (_, c) => Client.attach(urls[c % urls.length]!, `turns-${c}-${sessions++}`, trouble)));
  const start = performance.now();
  const deadline = start + seconds * 1000;
  await Promise.all(
    clients.map(async (client) => {
      while (performance.now() < deadline) {
        const id = `t${ids++}`;
        const sent = performance.now();
        if (!(await client.until(isDone(id), () => client.ws.send(envelope('input', { content: 'x' }, id))))) return;
        latencies.push(performance.now() - sent);
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  for (const client of clients) client.close();
  return { perSecond: latencies.length / elapsed, ...quantiles(latencies), trouble };
}

/** `connections` clients, round robin over `urls`, each streaming `deltas` deltas a turn, back to back. */
async function driveStreams(urls: readonly string[], connections: number, seconds: number, deltas: number) {
  const trouble = noTrouble();
  let received = 0;
  let turns = 0;
  const clients = await Promise.all(Array.from({ length: connections }, (_, c) => Client.attach(urls[c % urls.length]!, `stream-${c}-${sessions++}`, trouble)));
  const start = performance.now();
  const deadline = start + seconds * 1000;
  await Promise.all(
    clients.map(async (client) => {
      while (performance.now() < deadline) {
        const id = `s${ids++}`;
        const done = isDone(id);
        const frame = await client.until(
          (f) => {
            if (f.event.type === 'message.delta') received++;
            return done(f);
          },
          () => client.ws.send(envelope('input', { content: `stream:${deltas}` }, id)),
        );
        if (!frame) return;
        turns++;
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  for (const client of clients) client.close();
  // A turn whose done says `dropped` lost deltas on the way to a slow client: counted, not hidden.
  return { perSecond: received / elapsed, turns, expected: turns * deltas, received, trouble };
}

/**
 * Two clients per session, one on the node that owns it and one on another node; they take
 * turns sending one input at a time (each after the previous turn ended on both), with a
 * random think time. Latencies (ms) from the send to the sender's input.ack, first session
 * event (the turn's `state: running`) and done, for each side. The first second is a warm-up and not counted.
 */
async function driveLatency(nodes: readonly NodeProc[], schema: string, count: number, seconds: number, thinkMs: number) {
  const trouble = noTrouble();
  const samples = { owner: { ack: [] as number[], first: [] as number[], done: [] as number[] }, other: { ack: [] as number[], first: [] as number[], done: [] as number[] } };
  const admin = postgres(pgUrl, { max: 1, onnotice: () => {} });
  const random = mulberry32(16);
  const start = performance.now();
  const warmUntil = start + 1000;
  const deadline = start + (seconds + 1) * 1000;
  try {
    await Promise.all(
      Array.from({ length: count }, async (_, s) => {
        const session = `latency-${s}-${sessions++}`;
        const ownerNode = nodes[s % nodes.length]!;
        const otherNode = nodes[(s + 1) % nodes.length]!;
        const owner = await Client.attach(ownerNode.url, session, trouble);
        const other = await Client.attach(otherNode.url, session, trouble);
        const [row] = await admin<{ owner_node: string | null }[]>`SELECT owner_node FROM ${admin(schema)}.sessions WHERE id = ${session}`;
        if (row?.owner_node !== ownerNode.id) throw new Error(`${session}: owned by ${row?.owner_node}, expected ${ownerNode.id} (the node its first client attached to)`);
        for (let n = 0; performance.now() < deadline; n++) {
          const side = n % 2 === 0 ? 'owner' : 'other';
          const client = side === 'owner' ? owner : other;
          const base = client.lastSeq;
          const id = `l${ids++}`;
          const at: { ack?: number; first?: number; done?: number } = {};
          const isThis = isDone(id);
          const sent = performance.now();
          const done = await client.until(
            (f) => {
              if (f.event.type === 'input.ack' && f.event.data.client_message_id === id) at.ack ??= performance.now() - sent;
              if (f.seq > base) at.first ??= performance.now() - sent;
              if (isThis(f)) at.done ??= performance.now() - sent;
              // The turn ends with the state idle after its done.
              return at.done !== undefined && f.event.type === 'state' && f.event.data.state === 'idle';
            },
            () => client.ws.send(envelope('input', { content: 'x' }, id)),
          );
          if (!done) break;
          if (sent >= warmUntil && at.ack !== undefined && at.first !== undefined && at.done !== undefined) {
            samples[side].ack.push(at.ack);
            samples[side].first.push(at.first);
            samples[side].done.push(at.done);
          }
          // The other client has seen the end of this turn too before the next one starts.
          const peer = client === owner ? other : owner;
          const until = performance.now() + TIMEOUT_MS;
          while (peer.lastSeq < client.lastSeq && performance.now() < until) await new Promise((resolve) => setTimeout(resolve, 1));
          await new Promise((resolve) => setTimeout(resolve, -Math.log(1 - random()) * thinkMs));
        }
        owner.close();
        other.close();
      }),
    );
  } finally {
    await admin.end({ timeout: 1 });
  }
  return { samples, trouble };
}

type LatencySamples = Awaited<ReturnType<typeof driveLatency>>['samples'];

/** p50 / p99 of each side, over the samples of every round together. */
function summarize(all: readonly LatencySamples[]) {
  const side = (who: 'owner' | 'other') => {
    const pool = (what: 'ack' | 'first' | 'done') => all.flatMap((s) => s[who][what]);
    return { ack: quantiles(pool('ack')), first: quantiles(pool('first')), done: quantiles(pool('done')), n: pool('done').length };
  };
  return { owner: side('owner'), other: side('other') };
}

function quantiles(xs: number[]): { p50: number; p99: number } {
  const sorted = [...xs].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? Number.NaN;
  return { p50: at(0.5), p99: at(0.99) };
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

// ---------------------------------------------------------------------------------------
// Configurations

interface Config {
  readonly name: string;
  readonly store: 'sqlite' | 'postgres';
  readonly nodes: number;
}
const configs: Config[] = [
  { name: '1 node, SQLite', store: 'sqlite', nodes: 1 },
  { name: '1 node, PostgreSQL', store: 'postgres', nodes: 1 },
  { name: '2 nodes, PostgreSQL', store: 'postgres', nodes: 2 },
  { name: '3 nodes, PostgreSQL', store: 'postgres', nodes: 3 },
];

interface Figures {
  turns_per_s: number;
  turn_p50_ms: number;
  turn_p99_ms: number;
  deltas_per_s: number;
  stream_turns: number;
  stream_deltas_missing: number;
  load: string;
  trouble: Trouble;
  latency?: LatencySamples;
}

function addTrouble(into: Trouble, from: Trouble): void {
  into.errors += from.errors;
  into.timeouts += from.timeouts;
  into.closes += from.closes;
  into.dropped += from.dropped;
  if (from.firstError) into.firstError ??= from.firstError;
}

async function runConfig(config: Config, round: number): Promise<Figures> {
  const schema = `bench_${process.pid}_${round}_${config.store}${config.nodes}`;
  const dir = mkdtempSync(join(tmpdir(), 'baton-bench-cluster-'));
  const nodes: NodeProc[] = [];
  const admin = postgres(pgUrl, { max: 1, onnotice: () => {} });
  try {
    progress(`${config.name}: starting (load average ${load()})`);
    if (config.store === 'sqlite') nodes.push(await startNode('sqlite', `sqlite:${join(dir, 'bench.db')}`));
    else {
      const url = new URL(pgUrl);
      url.searchParams.set('schema', schema);
      // One first, so the schema's migration does not race; the others together.
      nodes.push(await startNode('n1', url.href, 'n1'));
      nodes.push(...(await Promise.all(Array.from({ length: config.nodes - 1 }, (_, i) => startNode(`n${i + 2}`, url.href, `n${i + 2}`)))));
    }
    const urls = nodes.map((n) => n.url);
    const trouble = noTrouble();
    // Latency first, on fresh nodes and a fresh schema: measured right after the throughput
    // runs (whose aftermath — PostgreSQL vacuuming what they wrote and trimmed, the nodes' heaps
    // — may still be at work) the same light load gave latencies up to 3 × those of fresh nodes.
    let latency: Awaited<ReturnType<typeof driveLatency>> | undefined;
    if (config.nodes > 1) {
      progress(`${config.name}: latency, owner against another node, ${size.latencySessions} sessions × 2 clients × ${size.latencySeconds} s`);
      latency = await driveLatency(nodes, schema, size.latencySessions, size.latencySeconds, size.thinkMs);
      addTrouble(trouble, latency.trouble);
    }
    progress(`${config.name}: turns, ${size.connections} clients × ${size.seconds} s (after ${size.warmSeconds} s of warm-up)`);
    addTrouble(trouble, (await driveTurns(urls, size.connections, size.warmSeconds)).trouble);
    const turns = await driveTurns(urls, size.connections, size.seconds);
    addTrouble(trouble, turns.trouble);
    progress(`${config.name}: durable streaming, ${size.streams} streams × ${size.deltas} deltas × ${size.seconds} s`);
    addTrouble(trouble, (await driveStreams(urls, size.streams, size.warmSeconds, size.deltas)).trouble);
    const stream = await driveStreams(urls, size.streams, size.seconds, size.deltas);
    addTrouble(trouble, stream.trouble);
    const figures: Figures = {
      turns_per_s: turns.perSecond,
      turn_p50_ms: turns.p50,
      turn_p99_ms: turns.p99,
      deltas_per_s: stream.perSecond,
      stream_turns: stream.turns,
      stream_deltas_missing: stream.expected - stream.received,
      load: load(),
      trouble,
      ...(latency && { latency: latency.samples }),
    };
    if (trouble.errors + trouble.timeouts + trouble.closes > 0) {
      problems.push(`${config.name}, round ${round + 1}: ${trouble.errors} error frames, ${trouble.timeouts} timeouts, ${trouble.closes} closes by the server; first: ${trouble.firstError}`);
    }
    return figures;
  } finally {
    await stopNodes(nodes);
    rmSync(dir, { recursive: true, force: true });
    if (config.store === 'postgres') await admin.unsafe(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await admin.end({ timeout: 1 });
  }
}

// ---------------------------------------------------------------------------------------
// The run

const loadAtStart = load();
const server = postgres(pgUrl, { max: 1, onnotice: () => {} });
const [{ server_version: pgVersion } = { server_version: '?' }] = await server<{ server_version: string }[]>`SHOW server_version`;
await server.end({ timeout: 1 });
progress(`${quick ? 'quick' : 'full'} run, ${rounds} round(s); ${cpus().length} cores, load average ${loadAtStart}`);
const results = new Map<string, Figures[]>(configs.map((c) => [c.name, []]));
for (let round = 0; round < rounds; round++) {
  for (const config of configs) results.get(config.name)!.push(await runConfig(config, round));
}
const loadAtEnd = load();

/** The round with the median turns/s of a configuration (all its figures from that round). */
const median = (name: string): Figures => {
  const rs = [...results.get(name)!].sort((a, b) => a.turns_per_s - b.turns_per_s);
  return rs[Math.floor(rs.length / 2)]!;
};
const fig = new Map(configs.map((c) => [c.name, median(c.name)]));
const sqlite = fig.get('1 node, SQLite')!;
const pg1 = fig.get('1 node, PostgreSQL')!;

const fmt = (x: number) => (Number.isNaN(x) ? '–' : Math.abs(x) >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(1));
/** A figure of the median round, with the range over all rounds when there were several. */
const ranged = (name: string, pick: (f: Figures) => number) => {
  const all = results.get(name)!.map(pick);
  const range = all.length > 1 ? ` (${fmt(Math.min(...all))}–${fmt(Math.max(...all))})` : '';
  return `${fmt(pick(fig.get(name)!))}${range}`;
};
const throughputRows = configs.map((c) => {
  const f = fig.get(c.name)!;
  const against = c.store === 'sqlite' ? '1.00 / –' : `${(f.turns_per_s / sqlite.turns_per_s).toFixed(2)} / ${(f.turns_per_s / pg1.turns_per_s).toFixed(2)}`;
  const streamAgainst = c.store === 'sqlite' ? '1.00 / –' : `${(f.deltas_per_s / sqlite.deltas_per_s).toFixed(2)} / ${(f.deltas_per_s / pg1.deltas_per_s).toFixed(2)}`;
  return `| ${c.name} | ${ranged(c.name, (r) => r.turns_per_s)} | ${against} | ${fmt(f.turn_p50_ms)} / ${fmt(f.turn_p99_ms)} | ${ranged(c.name, (r) => r.deltas_per_s)} | ${streamAgainst} | ${f.load} |`;
});
const throughput = [
  `| configuration | turns/s | × 1 node SQLite / × 1 node PG | turn p50 / p99 (ms) | durable streaming, deltas/s | × 1 node SQLite / × 1 node PG | load average after |`,
  '|---|---|---|---|---|---|---|',
  ...throughputRows,
].join('\n');
const latencies = new Map(configs.filter((c) => c.nodes > 1).map((c) => [c.name, summarize(results.get(c.name)!.map((r) => r.latency!))]));
const latencyRows = configs
  .filter((c) => c.nodes > 1)
  .flatMap((c) => {
    const l = latencies.get(c.name)!;
    const row = (who: string, s: typeof l.owner) => `| ${c.name} | ${who} | ${fmt(s.ack.p50)} / ${fmt(s.ack.p99)} | ${fmt(s.first.p50)} / ${fmt(s.first.p99)} | ${fmt(s.done.p50)} / ${fmt(s.done.p99)} | ${s.n} |`;
    const added = `| ${c.name} | **added by the other node** | ${fmt(l.other.ack.p50 - l.owner.ack.p50)} / ${fmt(l.other.ack.p99 - l.owner.ack.p99)} | ${fmt(l.other.first.p50 - l.owner.first.p50)} / ${fmt(l.other.first.p99 - l.owner.first.p99)} | ${fmt(l.other.done.p50 - l.owner.done.p50)} / ${fmt(l.other.done.p99 - l.owner.done.p99)} | |`;
    return [row('client on the owner', l.owner), row('client on another node', l.other), added];
  });
const latency = [
  '| configuration | input sent to | → input.ack p50 / p99 (ms) | → first session event p50 / p99 | → done p50 / p99 | turns |',
  '|---|---|---|---|---|---|',
  ...latencyRows,
].join('\n');
process.stdout.write(`\n${throughput}\n\n${latency}\n\n`);
if (problems.length > 0) process.stdout.write(`Problems seen:\n${problems.map((p) => `- ${p}`).join('\n')}\n\n`);
else process.stdout.write('No problems seen: no error frame, timeout, unexpected close, node crash or node log line.\n\n');

const START = '<!-- cluster: written by bench/cluster.ts -->';
const END = '<!-- /cluster -->';
if (!quick) {
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`;
  const missing = configs.map((c) => fig.get(c.name)!.stream_deltas_missing).reduce((a, b) => a + b, 0);
  const section = [
    START,
    '## Cluster (`npm run bench:cluster`)',
    '',
    `Run on ${machine}: load average ${loadAtStart} at the start, ${loadAtEnd} at the end (1 / 5 / 15 min; it counts this benchmark's own processes — up to three nodes, PostgreSQL and the client — and other jobs that share this machine). ` +
      `Real node processes (bench/cluster-node.ts: \`baton serve\`'s store and cluster settings, commit delay 4 ms, with the per-connection rate limit off) on 127.0.0.1 and one PostgreSQL ${pgVersion.split(' ')[0]} on the same machine; ` +
      `${size.connections} clients for turns (demo echo agent, no delay), ${size.streams} for streaming (${size.deltas} deltas a turn, one per tick), spread round robin over the nodes, each session owned by the node its client attached to; ` +
      `${size.seconds} s per measure after ${size.warmSeconds} s of warm-up${rounds > 1 ? `; ${rounds} rounds, the configurations interleaved and every node started afresh in each: the figures are those of the round with the median turns/s, the range over all rounds in parentheses` : ', one round'}.`,
    '',
    `**${cpus().length} cores measure overhead, not speed-up.** The nodes, PostgreSQL and the benchmark's clients share ${cpus().length} cores, so a second or third node adds processes that compete for the same CPU: ` +
      'these rows say what the cluster costs on one box, not how it scales on machines of its own.',
    '',
    throughput,
    '',
    `The latency of an input sent through a node that does not own its session: ${size.latencySessions} sessions, each with one client on its owner and one on another node, taking turns one input at a time (think time ${size.thinkMs} ms on average), on fresh nodes before the throughput runs, ${size.latencySeconds} s after 1 s of warm-up${rounds > 1 ? `; the samples of all ${rounds} rounds together` : ''}. ` +
      'Such an input is committed to the session\'s inbox before its `input.ack`, its owner is woken by NOTIFY, and its events come back to that node from the events table. ' +
      'The owner acknowledges an input when the step that accepted it is committed (group commit, 4 ms commit delay while the store is busy), which is why its `input.ack` can be the slower one. ' +
      'The echo agent with no delay replies within one step, so its deltas arrive with its `done`; the first session event is the turn\'s `state: running`.',
    '',
    latency,
    '',
    problems.length > 0 ? `Problems seen in this run:\n${problems.map((p) => `- ${p.replaceAll('\n', ' ')}`).join('\n')}` : 'No problems in this run: no error frame, timeout, unexpected close, node crash or node log line.',
    missing > 0 ? `\nDeltas missing on slow clients (the turn's \`done\` said \`dropped\`): ${missing}.` : '',
    END,
  ].join('\n');
  const resultsUrl = new URL('./RESULTS.md', import.meta.url);
  const previous = existsSync(resultsUrl) ? readFileSync(resultsUrl, 'utf8') : '# Benchmark results\n';
  // After bench/run.ts's notes marker, which it keeps across its own runs.
  const next = previous.includes(START)
    ? previous.slice(0, previous.indexOf(START)) + section + previous.slice(previous.indexOf(END) + END.length)
    : `${previous.trimEnd()}\n\n${section}\n`;
  writeFileSync(resultsUrl, next);
  progress('wrote the Cluster section of bench/RESULTS.md');
}
process.stdout.write(`${JSON.stringify({ quick, rounds, load_at_start: loadAtStart, load_at_end: loadAtEnd, configurations: Object.fromEntries(configs.map((c) => {
  const { latency: _samples, ...figures } = fig.get(c.name)!;
  return [c.name, { ...figures, turns_per_s_rounds: results.get(c.name)!.map((r) => r.turns_per_s), deltas_per_s_rounds: results.get(c.name)!.map((r) => r.deltas_per_s), ...(latencies.has(c.name) && { latency: latencies.get(c.name) }) }];
})), problems })}\n`);
process.exit(0);

/**
 * Real cluster nodes for the cluster tests: `baton serve --store postgres://…?schema=S
 * --node-id ID` processes on one PostgreSQL schema per test, their clients over real
 * sockets, and the checks every test shares (C8, C12, C16, C17).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { inject } from 'vitest';
import { Client, type Frame } from '../gateway/client.ts';

const bin = fileURLToPath(new URL('../../bin/baton.js', import.meta.url));

/** The server globalSetup found or started (test/setup/postgres-server.ts). */
export const pgUrl = (): string => inject('pgUrl');

let made = 0;

/** One started node process. */
export interface Node {
  readonly id: string;
  readonly child: ChildProcess;
  /** ws://…/ws */
  readonly url: string;
  /** http://host:port, for /healthz and /metrics */
  readonly http: string;
  /** Resolves with the exit code (or the signal's name) once the process is gone. */
  readonly exited: Promise<number | string>;
  stderr(): string;
}

export interface NodeOptions {
  /** Extra CLI flags. */
  readonly args?: readonly string[];
  /** Extra environment. */
  readonly env?: Readonly<Record<string, string>>;
}

/**
 * A cluster of node processes on a schema of its own. Every process it starts is killed by
 * {@link close} (SIGKILL, a stopped one included), and the schema is dropped.
 */
export class Cluster {
  readonly schema = `c_${process.pid}_${Date.now().toString(36)}_${made++}`;
  readonly admin = postgres(pgUrl(), { max: 3, onnotice: () => {} });
  readonly #children = new Set<ChildProcess>();
  readonly #clients = new Set<Client>();
  readonly #base: readonly string[];
  /** Set once {@link close} began: nothing reconnects any more. */
  closed = false;

  /** `base`: flags every node gets (lease, sweep, demo delay…). */
  constructor(base: readonly string[] = []) {
    this.#base = base;
  }

  /** The store URL of this cluster: the test server's URL with `schema=`. */
  get storeUrl(): string {
    const url = new URL(pgUrl());
    url.searchParams.set('schema', this.schema);
    return url.href;
  }

  /** Starts `baton serve` as node `id` on a free port; resolves once it listens. */
  async start(id: string, options: NodeOptions = {}): Promise<Node> {
    const args = [bin, 'serve', '--port', '0', '--store', this.storeUrl, '--node-id', id, '--debounce-ms', '0', ...this.#base, ...(options.args ?? [])];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
    this.#children.add(child);
    const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')));
    let stdout = '';
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`node ${id} did not listen within 15 s: ${stderr}`)), 15_000);
      child.stdout!.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
        const match = /(ws:\/\/\S+\/ws)/.exec(stdout);
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
    return { id, child, url, http: url.replace(/^ws/, 'http').replace(/\/ws$/, ''), exited, stderr: () => stderr };
  }

  /** A client attached to `session` through `node` (it is closed by {@link close}). */
  async attach(node: Node, session: string, init: Record<string, unknown> = {}): Promise<Conn> {
    if (this.closed) throw new Error('the cluster is closed');
    const { client, ack } = await Client.attach(node.url, { session_id: session, ...init });
    this.#clients.add(client);
    if (ack.event.data.state === 'deleted') throw new Error(`attach to ${session} on ${node.id} refused: ${JSON.stringify(ack.event.data)}`);
    return new Conn(node.id, session, client, ack);
  }

  /** Stops a node with a signal and waits for its exit (SIGSTOP returns at once). */
  async signal(node: Node, signal: NodeJS.Signals): Promise<number | string | undefined> {
    node.child.kill(signal);
    if (signal === 'SIGSTOP' || signal === 'SIGCONT') return undefined;
    return node.exited;
  }

  /** The node's /healthz body. */
  async health(node: Node): Promise<Health> {
    const res = await fetch(`${node.http}/healthz`);
    return (await res.json()) as Health;
  }

  /** Every event the store holds for `session`, by seq. */
  async stored(session: string): Promise<Map<number, StoredEvent>> {
    const rows = await this.admin<StoredEvent[]>`SELECT seq, type, data FROM ${this.admin(this.schema)}.events WHERE session_id = ${session} ORDER BY seq`;
    return new Map(rows.map((r) => [r.seq, { seq: r.seq, type: r.type, data: r.data }]));
  }

  /** The session's row: its epoch and owner (undefined before it is stored). */
  async owner(session: string): Promise<{ epoch: number; owner_node: string | null } | undefined> {
    const [row] = await this.admin<{ epoch: number; owner_node: string | null }[]>`
      SELECT epoch, owner_node FROM ${this.admin(this.schema)}.sessions WHERE id = ${session}`;
    return row;
  }

  /** Kills every process it started (even stopped ones), closes clients, drops the schema. */
  async close(): Promise<void> {
    this.closed = true;
    for (const client of this.#clients) client.ws.terminate();
    await Promise.all(
      [...this.#children].map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const gone = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGKILL');
        await gone;
      }),
    );
    try {
      await this.admin.unsafe(`DROP SCHEMA IF EXISTS ${this.schema} CASCADE`);
    } finally {
      await this.admin.end({ timeout: 1 });
    }
  }
}

export interface Health {
  status: string;
  fenced_commits: number;
  node?: { id: string; incarnation: number; lease_valid: boolean; owned_sessions: number };
}

export interface StoredEvent {
  seq: number;
  type: string;
  data: Record<string, any>;
}

/** A client of one session on one node, with what it saw. */
export class Conn {
  /** When (Date.now) each input's `done` reached this client. */
  readonly doneAt = new Map<string, number>();

  constructor(
    readonly node: string,
    readonly session: string,
    readonly client: Client,
    readonly ack: Frame,
  ) {
    const note = (frame: Frame) => {
      if (frame.event.type !== 'done') return;
      for (const id of frame.event.data.input_ids as string[]) if (!this.doneAt.has(id)) this.doneAt.set(id, Date.now());
    };
    client.frames.forEach(note);
    client.ws.on('message', (raw) => note(JSON.parse(raw.toString()) as Frame));
  }

  /** Whether a `done` listing `id` reached this client. */
  done(id: string): boolean {
    return this.doneAt.has(id);
  }

  get frames(): Frame[] {
    return this.client.frames;
  }

  /** Session events this connection received (seq > 0), in order. */
  events(): Frame[] {
    return this.client.frames.filter((f) => f.seq > 0);
  }

  /** The highest seq it saw (its init_ack's seq before any event). */
  lastSeq(): number {
    return Math.max(this.ack.event.data.seq as number, ...this.events().map((f) => f.seq));
  }

  /** Sends an input; its id is the client message id. */
  input(id: string, content: string): void {
    this.client.send('input', { content }, id);
  }

  /** The input.ack of `id`, once it came (or undefined). */
  acked(id: string): Frame | undefined {
    return this.client.frames.find((f) => f.event.type === 'input.ack' && f.event.data.client_message_id === id);
  }

  /** An error frame naming `id`, if one came. */
  refused(id: string): Frame | undefined {
    return this.client.frames.find((f) => f.event.type === 'error' && f.event.data.event_id === id);
  }

  get open(): boolean {
    return this.client.ws.readyState === this.client.ws.OPEN;
  }
}

/** Polls `check` until it is truthy (bounded), instead of sleeping a fixed time. */
export async function waitFor<T>(check: () => T | Promise<T>, what: string | (() => string), timeoutMs = 20_000, everyMs = 20): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** `n` words tagged with `tag`: with `--demo-delay-ms d` the demo agent takes about n × d ms. */
export const words = (tag: string, n: number): string => Array.from({ length: n }, (_, k) => `${tag}.${k}`).join(' ');

/**
 * C8 per connection: the session events a connection received are numbered without a gap
 * and never go back (a resume starts right after the client's last_seq). Returns problems.
 */
export function gaps(conn: Conn, from?: number): string[] {
  const seqs = conn.events().map((f) => f.seq);
  const problems: string[] = [];
  let prev = from ?? (seqs[0] === undefined ? 0 : seqs[0] - 1);
  for (const seq of seqs) {
    if (seq !== prev + 1) problems.push(`${conn.session}@${conn.node}: seq ${seq} after ${prev}`);
    prev = seq;
  }
  return problems;
}

/**
 * C16, C17: every event a client saw is the event the store holds at that seq (no seq was
 * reused, no stale owner's event was shown), and all clients agree. Returns problems.
 */
export function disagreements(conns: readonly Conn[], stored: ReadonlyMap<string, ReadonlyMap<number, StoredEvent>>): string[] {
  const problems: string[] = [];
  const seen = new Map<string, string>();
  for (const conn of conns) {
    for (const frame of conn.events()) {
      const content = JSON.stringify({ type: frame.event.type, data: withoutDropped(frame.event.data) });
      const key = `${conn.session}#${frame.seq}`;
      const before = seen.get(key);
      if (before !== undefined && before !== content) problems.push(`${key}: ${before} vs ${content} (on ${conn.node})`);
      seen.set(key, content);
      const held = stored.get(conn.session)?.get(frame.seq);
      if (!held) continue; // trimmed, or a session the test did not read back
      const want = JSON.stringify({ type: held.type, data: withoutDropped(held.data) });
      if (want !== content) problems.push(`${key} on ${conn.node}: saw ${content}, stored ${want}`);
    }
  }
  return problems;
}

/** `done.dropped` is per connection (deltas dropped for a slow client), not part of the event. */
function withoutDropped(data: Record<string, any>): Record<string, any> {
  if (!('dropped' in data)) return data;
  const { dropped: _dropped, ...rest } = data;
  return rest;
}

/** C12: how many stored `done`s list each input, and which of those succeeded. */
export function doneCounts(stored: ReadonlyMap<number, StoredEvent>): Map<string, { done: number; success: number }> {
  const counts = new Map<string, { done: number; success: number }>();
  for (const event of stored.values()) {
    if (event.type !== 'done') continue;
    for (const id of event.data.input_ids as string[]) {
      const c = counts.get(id) ?? { done: 0, success: 0 };
      c.done++;
      if (event.data.success) c.success++;
      counts.set(id, c);
    }
  }
  return counts;
}

/**
 * A client that keeps talking to one session through whichever node is up: it sends an
 * input every `everyMs`, and when its connection closes (its node stops) it comes back on
 * another node with its last_seq and sends again every input not yet acknowledged (same id:
 * C10 makes a resend of a stored input a duplicate, never a second turn).
 */
export class Driver {
  /** Every connection it used, in order. */
  readonly conns: { conn: Conn; from: number | undefined }[] = [];
  /** Every input id it sent, in order. */
  readonly sent: string[] = [];
  readonly #content = new Map<string, string>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #n = 0;
  #stopped = false;
  #reconnecting: Promise<void> | undefined;

  constructor(
    readonly cluster: Cluster,
    readonly session: string,
    /** The nodes up now (the driver picks one to come back on). */
    readonly up: () => Node[],
  ) {}

  get conn(): Conn | undefined {
    return this.conns.at(-1)?.conn;
  }

  async start(node: Node, everyMs: number): Promise<void> {
    await this.#connect(node, undefined);
    this.#timer = setInterval(() => this.#tick(), everyMs);
  }

  /** Stops sending new inputs; keeps reconnecting and resending until every input is acked. */
  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
  }

  /** The inputs no connection has acknowledged yet. */
  unacked(): string[] {
    return this.sent.filter((id) => !this.conns.some(({ conn }) => conn.acked(id)));
  }

  /** Sends the unacknowledged inputs again on the current connection. */
  resend(): void {
    const conn = this.conn;
    if (!conn?.open) return;
    for (const id of this.unacked()) conn.input(id, this.#content.get(id)!);
  }

  #tick(): void {
    const conn = this.conn;
    if (this.#stopped || !conn?.open) return;
    const id = `${this.session}.${this.#n++}`;
    this.sent.push(id);
    this.#content.set(id, words(id, 3));
    conn.input(id, this.#content.get(id)!);
  }

  async #connect(node: Node, from: number | undefined): Promise<void> {
    const conn = await this.cluster.attach(node, this.session, from === undefined ? {} : { last_seq: from });
    this.conns.push({ conn, from });
    // Refused while its node shuts down: sent again once it is back elsewhere.
    conn.client.ws.on('close', () => void this.#reconnect());
    this.resend();
  }

  /** Back on another node that is up, resuming after the last seq it saw. */
  #reconnect(): Promise<void> {
    this.#reconnecting ??= (async () => {
      const from = Math.max(...this.conns.map(({ conn }) => conn.lastSeq()));
      for (let attempt = 0; !this.cluster.closed; attempt++) {
        const nodes = this.up().filter((n) => n.child.exitCode === null && n.child.signalCode === null);
        const node = nodes[(attempt + this.#n) % Math.max(1, nodes.length)];
        try {
          if (!node) throw new Error('no node up');
          await this.#connect(node, from);
          return;
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
    })().finally(() => (this.#reconnecting = undefined));
    return this.#reconnecting;
  }
}

/**
 * The events a set of connections of one session saw together, by seq (a client that moved
 * between nodes: its connections resumed one after the other). Throws on a hole.
 */
export function seenTogether(conns: readonly Conn[]): Map<number, StoredEvent> {
  const events = new Map<number, StoredEvent>();
  for (const conn of conns) for (const f of conn.events()) events.set(f.seq, { seq: f.seq, type: f.event.type, data: f.event.data });
  const seqs = [...events.keys()].sort((x, y) => x - y);
  const hole = seqs.find((seq, i) => i > 0 && seq !== seqs[i - 1]! + 1);
  if (hole !== undefined) throw new Error(`${conns[0]?.session}: the client's connections together miss the events before seq ${hole}`);
  return events;
}

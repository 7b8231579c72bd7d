import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import type { Runtime } from '../../runtime/runtime.ts';
import type { SessionEvent } from '../../runtime/types.ts';
import { activeStateIds } from '../../visualize/active.ts';
import { lastErrorOf } from '../../runtime/directory.ts';
import { PACKAGE_ROOT } from '../../package-root.ts';
import { toDot } from '../../visualize/dot.ts';
import { INSPECTOR_PAGE } from './page.ts';
import { pendingApprovals, type PendingApproval } from './approvals.ts';
import { PAGE_CSP } from './headers.ts';

/** One row of the inspector's session list. */
export interface SessionEntry {
  readonly id: string;
  readonly kind: string;
  readonly state: string;
  readonly backlog: number;
  readonly turns: number;
  readonly seq: number;
  /** The node that runs it, when another node of a cluster does; `null` for this one. */
  readonly node: string | null;
  readonly clients: number;
  readonly lastError: { code: string; message: string; at: number } | null;
  /** Tool calls waiting for the user's decision (C19), oldest first. */
  readonly approvals: readonly PendingApproval[];
  /** When its earliest schedule is due (C20, runtime clock ms); `null` without schedules. */
  readonly nextDue: number | null;
  /** Ids of the active state nodes: the `<title>`s of the SVG nodes to highlight. */
  readonly active: readonly string[];
}

const VISUALIZATIONS = join(PACKAGE_ROOT, 'visualizations');
const FILES: Record<string, string> = { agent: 'session.svg', onboarding: 'onboarding.svg' };

export interface InspectorOptions {
  /** How often updates go out, coalesced. @default 100 */
  flushMs?: number;
  /** Clients attached to a session. */
  clientsOf?: (sessionId: string) => number;
  /** Streams open at once; past it `503`. @default 32 */
  maxReaders?: number;
  /**
   * Unread bytes past which a reader is behind: it gets nothing more (what changed meanwhile
   * is remembered, coalesced, and sent once it has read); past 16 times as much it is dropped.
   * @default 65536
   */
  readerBufferBytes?: number;
  /** A reader behind this long, or behind by more than 10,000 sessions, is dropped. @default 30000 */
  stallMs?: number;
  /** Told of every reader dropped for being too slow. */
  dropped?: () => void;
}

/** One `/inspect/events` stream. */
interface Reader {
  readonly res: ServerResponse;
  /** While behind: the sessions that changed since it last got an update, when it fell behind, and the events it missed. */
  behind: { ids: Set<string>; since: number; events: number } | undefined;
}

/** One flush: what every reader that keeps up gets (`shared`), and what a reader that was behind needs for its own. */
interface Tick {
  readonly shared: string;
  /** The `events` and `counters` part of `shared`. */
  readonly tail: string;
  readonly changed: readonly string[];
  readonly rows: ReadonlyMap<string, unknown>;
  readonly events: number;
  readonly now: number;
}

/** A reader behind by more sessions than this is dropped (it would need everything again anyway). */
const MAX_BEHIND_SESSIONS = 10_000;

/**
 * The live inspector: `GET /inspect` (the page), `GET /inspect/events` (server-sent events:
 * sessions, their recent events, counters) and `GET /inspect/machine/<kind>.svg`. Updates
 * are coalesced and sent every 100 ms, so a busy gateway cannot flood an inspector; a reader
 * that does not keep up gets nothing more until it has read (what changed meanwhile is sent
 * then, coalesced), and one that stays behind is dropped, so unread streams cost bounded
 * memory. Session data goes only to these endpoints, never to WebSocket clients.
 */
export function createInspector(runtime: Runtime, options: InspectorOptions = {}) {
  const { flushMs = 100, clientsOf = () => 0, maxReaders = 32, readerBufferBytes = 65_536, stallMs = 30_000, dropped = () => {} } = options;
  const streams = new Map<ServerResponse, Reader>();
  const dirty = new Set<string>();
  let recent: { sessionId: string; type: string; seq: number; at: number }[] = [];

  const subscription = runtime.events$.subscribe((event: SessionEvent) => {
    dirty.add(event.sessionId);
    if (streams.size > 0 && recent.length < 500) recent.push({ sessionId: event.sessionId, type: event.type, seq: event.seq, at: Date.now() });
  });

  /** A session's row; `removed` once it is gone. `undefined` if its status cannot be had now (asked again next tick). */
  const entry = async (id: string): Promise<SessionEntry | { id: string; removed: true } | undefined> => {
    let status;
    let approvals: PendingApproval[] = [];
    try {
      status = await runtime.status(id);
      // Only agent sessions call tools; only a waiting one can have approvals to read.
      if (status?.waitingForUser && status.kind === 'agent') approvals = await pendingApprovals(runtime, id);
    } catch {
      dirty.add(id);
      return undefined;
    }
    if (!status) return { id, removed: true };
    const snapshot = runtime.snapshot(id) as { value?: unknown } | undefined;
    const machine = runtime.machineOf(status.kind);
    return {
      id,
      kind: status.kind,
      state: status.state,
      backlog: status.backlog,
      turns: status.turns,
      seq: status.seq,
      node: status.node ?? null,
      clients: clientsOf(id),
      lastError: lastErrorOf(runtime.directory, id) ?? null,
      approvals,
      nextDue: status.schedules?.[0]?.dueAt ?? null,
      active: machine && snapshot ? activeStateIds(machine.root, snapshot.value) : [],
    };
  };
  const entries = async (ids: readonly string[]) => (await Promise.all(ids.map(entry))).filter((e) => e !== undefined);
  const counters = () => {
    const { turns, inputs, errors } = runtime.directory.get().context;
    return { at: Date.now(), turns, inputs, errors };
  };
  const sse = (event: string, data: unknown) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
  const send = (res: ServerResponse, event: string, data: unknown) => res.write(sse(event, data));

  /** Ends a reader that fell too far behind: it may reconnect and start afresh. */
  function drop(reader: Reader): void {
    streams.delete(reader.res);
    dropped();
    reader.res.destroy();
  }

  /** This tick's update for one reader: the shared one, or — for one that was behind — its own, coalesced. */
  function deliver(reader: Reader, tick: Tick): void {
    const { shared, tail, changed, rows, events, now } = tick;
    const { res } = reader;
    const unread = res.writableLength;
    if (unread > 16 * readerBufferBytes) return drop(reader);
    if (unread > readerBufferBytes) {
      reader.behind ??= { ids: new Set(), since: now, events: 0 };
      for (const id of changed) reader.behind.ids.add(id);
      reader.behind.events += events;
      if (reader.behind.ids.size > MAX_BEHIND_SESSIONS || now - reader.behind.since > stallMs) drop(reader);
      return;
    }
    const behind = reader.behind;
    if (!behind) {
      res.write(shared);
      return;
    }
    reader.behind = undefined;
    for (const id of changed) behind.ids.add(id);
    const own = [...behind.ids].map((id) => rows.get(id)).filter((row) => row !== undefined);
    res.write((own.length > 0 ? sse('sessions', own) : '') + sse('dropped', { events: behind.events }) + tail);
  }

  /** Buffered bytes and readers, for tests and dashboards. */
  function stats() {
    let buffered = 0;
    let behind = 0;
    for (const reader of streams.values()) {
      buffered += reader.res.writableLength;
      if (reader.behind) behind++;
    }
    return { readers: streams.size, buffered, behind };
  }

  /** Streams still being opened: what changes meanwhile must wait for them, not be cleared. */
  let opening = 0;
  /** The previous tick still reads statuses: this one is skipped, and its changes stay dirty for the next. */
  let flushing = false;
  async function flush(): Promise<void> {
    if (streams.size === 0) {
      if (opening === 0) dirty.clear();
      return;
    }
    const changed = [...dirty];
    dirty.clear();
    const events = recent;
    recent = [];
    // The rows of what changed now, and of what changed while a reader was behind.
    const ids = new Set(changed);
    for (const reader of streams.values()) for (const id of reader.behind?.ids ?? []) ids.add(id);
    const rows = new Map((await entries([...ids])).map((row) => [row.id, row] as const));
    const sessions = changed.map((id) => rows.get(id)).filter((row) => row !== undefined);
    // Serialized once for every reader that keeps up.
    const tail = (events.length > 0 ? sse('events', events) : '') + sse('counters', counters());
    const shared = (sessions.length > 0 ? sse('sessions', sessions) : '') + tail;
    const tick: Tick = { shared, tail, changed, rows, events: events.length, now: Date.now() };
    for (const reader of [...streams.values()]) deliver(reader, tick);
  }
  const timer = setInterval(() => {
    if (flushing) return;
    flushing = true;
    flush()
      .catch(() => {}) // a bug building one row costs this tick's rows, never the process (C15)
      .finally(() => (flushing = false));
  }, flushMs);
  timer.unref();

  async function machineSvg(kind: string): Promise<string | undefined> {
    // Own keys only: "constructor.svg" must not find Object.prototype's.
    const file = Object.hasOwn(FILES, kind) ? FILES[kind] : undefined;
    if (file) return readFile(join(VISUALIZATIONS, file), 'utf8');
    const machine = runtime.machineOf(kind);
    if (!machine) return undefined;
    // Graphviz (WebAssembly) only for custom kinds, and only when one is drawn.
    const { renderSvg } = await import('../../visualize/render.ts');
    return renderSvg(toDot(machine));
  }

  return {
    /** Something about a session changed that is not one of its events (a client attached). */
    touch(sessionId: string): void {
      dirty.add(sessionId);
    },
    /** Answers an inspector request; `false` if the path is not the inspector's. */
    async handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean> {
      if (path === '/inspect') {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'content-security-policy': PAGE_CSP }).end(INSPECTOR_PAGE);
        return true;
      }
      if (path === '/inspect/events') {
        if (streams.size + opening >= maxReaders) {
          res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '5' }).end(JSON.stringify({ error: 'too many inspector streams' }));
          return true;
        }
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
        let gone = false;
        req.on('close', () => {
          gone = true;
          streams.delete(res);
        });
        opening++;
        try {
          // On a cluster: every node's sessions, each with the node that runs it.
          const sessions = await entries(await runtime.listSessions(500));
          if (gone) return true;
          send(res, 'sessions', sessions);
          send(res, 'counters', counters());
          streams.set(res, { res, behind: undefined });
        } finally {
          opening--;
        }
        return true;
      }
      const svg = /^\/inspect\/machine\/([\w-]+)\.svg$/.exec(path);
      if (svg) {
        const body = await machineSvg(svg[1]!);
        if (body === undefined) res.writeHead(404).end();
        else res.writeHead(200, { 'content-type': 'image/svg+xml', 'cache-control': 'no-store' }).end(body);
        return true;
      }
      return false;
    },
    close(): void {
      clearInterval(timer);
      subscription.unsubscribe();
      for (const res of streams.keys()) res.end();
      streams.clear();
    },
    stats,
  };
}

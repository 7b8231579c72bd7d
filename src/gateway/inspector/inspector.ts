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
  /** Ids of the active state nodes: the `<title>`s of the SVG nodes to highlight. */
  readonly active: readonly string[];
}

const VISUALIZATIONS = join(PACKAGE_ROOT, 'visualizations');
const FILES: Record<string, string> = { agent: 'session.svg', onboarding: 'onboarding.svg' };

/**
 * The live inspector: `GET /inspect` (the page), `GET /inspect/events` (server-sent events:
 * sessions, their recent events, counters) and `GET /inspect/machine/<kind>.svg`. Updates
 * are coalesced and sent every 100 ms, so a busy gateway cannot flood an inspector.
 * Session data goes only to these endpoints, never to WebSocket clients.
 */
export function createInspector(
  runtime: Runtime,
  { flushMs = 100, clientsOf = () => 0 }: { flushMs?: number; clientsOf?: (sessionId: string) => number } = {},
) {
  const streams = new Set<ServerResponse>();
  const dirty = new Set<string>();
  let recent: { sessionId: string; type: string; seq: number; at: number }[] = [];

  const subscription = runtime.events$.subscribe((event: SessionEvent) => {
    dirty.add(event.sessionId);
    if (streams.size > 0 && recent.length < 500) recent.push({ sessionId: event.sessionId, type: event.type, seq: event.seq, at: Date.now() });
  });

  /** A session's row; `removed` once it is gone. `undefined` if its status cannot be had now (asked again next tick). */
  const entry = async (id: string): Promise<SessionEntry | { id: string; removed: true } | undefined> => {
    let status;
    try {
      status = await runtime.status(id);
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
      active: machine && snapshot ? activeStateIds(machine.root, snapshot.value) : [],
    };
  };
  const entries = async (ids: readonly string[]) => (await Promise.all(ids.map(entry))).filter((e) => e !== undefined);
  const counters = () => {
    const { turns, inputs, errors } = runtime.directory.get().context;
    return { at: Date.now(), turns, inputs, errors };
  };
  const send = (res: ServerResponse, event: string, data: unknown) => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);

  /** Streams still being opened: what changes meanwhile must wait for them, not be cleared. */
  let opening = 0;
  /** The previous tick still reads statuses: this one is skipped, and its changes stay dirty for the next. */
  let flushing = false;
  async function flush(): Promise<void> {
    if (streams.size === 0) {
      if (opening === 0) dirty.clear();
      return;
    }
    const ids = [...dirty];
    dirty.clear();
    const events = recent;
    recent = [];
    const sessions = await entries(ids);
    for (const res of streams) {
      if (sessions.length > 0) send(res, 'sessions', sessions);
      if (events.length > 0) send(res, 'events', events);
      send(res, 'counters', counters());
    }
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
          streams.add(res);
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
      for (const res of streams) res.end();
      streams.clear();
    },
  };
}

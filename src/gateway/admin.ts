import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { SessionNotFoundError } from '../errors.ts';
import type { Runtime } from '../runtime/runtime.ts';
import { ownerOf, type Principal } from './principal.ts';

/** Sessions one list answers at most. */
const MAX_LIST = 1000;

/**
 * The admin API (C18), JSON over HTTP for a principal with the `admin` scope:
 * - `GET /admin/sessions?limit=N` → `{ sessions: [{ id, owner, kind, state, backlog, turns, seq, node, clients }] }`
 * - `GET /admin/stats` → `{ connections, live_sessions, turns, inputs, errors, health }`
 * - `POST /admin/sessions/<key>/stop` or `/terminate`, `DELETE /admin/sessions/<key>` → `{ id, action }`
 *   (404 `SESSION_NOT_FOUND` for an unknown key). `<key>` is the full session key, URL-encoded
 *   (`alice%2Fchat`).
 * Every action is logged with the admin's principal id.
 *
 * @example
 * curl -H "Authorization: Bearer $TOKEN" -X POST http://127.0.0.1:8080/admin/sessions/alice%2Fchat/terminate
 */
export function createAdminApi(runtime: Runtime, { logger, clientsOf, connections }: { logger: Logger; clientsOf: (key: string) => number; connections: () => number }) {
  const json = (res: ServerResponse, status: number, body: unknown) =>
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body));

  async function list(url: URL, res: ServerResponse): Promise<void> {
    const limit = Math.min(Math.max(Number.parseInt(url.searchParams.get('limit') ?? '', 10) || 500, 1), MAX_LIST);
    const ids = await runtime.listSessions(limit);
    const rows = await Promise.all(
      ids.map(async (id) => {
        const status = await runtime.status(id).catch(() => undefined);
        if (!status) return undefined;
        const { kind, state, backlog, turns, seq } = status;
        return { id, owner: ownerOf(id) ?? null, kind, state, backlog, turns, seq, node: status.node ?? null, clients: clientsOf(id) };
      }),
    );
    json(res, 200, { sessions: rows.filter((row) => row !== undefined) });
  }

  function stats(res: ServerResponse): void {
    const { turns, inputs, errors } = runtime.directory.get().context;
    const health = runtime.health();
    json(res, 200, { connections: connections(), live_sessions: runtime.sessionIds().length, turns, inputs, errors, health: { ok: health.ok, fenced: health.fenced } });
  }

  async function control(key: string, action: 'stop' | 'terminate' | 'delete', principal: Principal, res: ServerResponse): Promise<void> {
    logger.info({ principal: principal.id, sessionId: key, action }, 'admin action');
    try {
      await runtime.control(key, action);
    } catch (error) {
      if (!(error instanceof SessionNotFoundError)) throw error;
      json(res, 404, { error: 'SESSION_NOT_FOUND', message: `no session "${key}"` });
      return;
    }
    json(res, 200, { id: key, action });
  }

  return {
    /** Answers an admin request of an admin principal; `false` if the path is not the admin API's. */
    async handle(req: IncomingMessage, res: ServerResponse, principal: Principal): Promise<boolean> {
      const url = new URL(req.url ?? '/', 'http://x');
      if (req.method === 'GET' && url.pathname === '/admin/sessions') return list(url, res).then(() => true);
      if (req.method === 'GET' && url.pathname === '/admin/stats') return (stats(res), true);
      const match = /^\/admin\/sessions\/([^/]+)(?:\/(stop|terminate))?$/.exec(url.pathname);
      if (!match) return false;
      let key: string;
      try {
        key = decodeURIComponent(match[1]!);
      } catch {
        json(res, 400, { error: 'INVALID_MESSAGE', message: 'the session key is not URL-encoded' });
        return true;
      }
      const action = match[2] as 'stop' | 'terminate' | undefined;
      if (action && req.method === 'POST') await control(key, action, principal, res);
      else if (!action && req.method === 'DELETE') await control(key, 'delete', principal, res);
      else if (!action && req.method === 'GET') {
        const status = await runtime.status(key);
        if (!status) json(res, 404, { error: 'SESSION_NOT_FOUND', message: `no session "${key}"` });
        else json(res, 200, { id: key, owner: ownerOf(key) ?? null, kind: status.kind, state: status.state, backlog: status.backlog, turns: status.turns, seq: status.seq, clients: clientsOf(key) });
      } else json(res, 405, { error: 'method not allowed' });
      return true;
    },
  };
}

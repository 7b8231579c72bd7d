import type { ClusterHints } from './cluster-store.ts';

/**
 * Wake-up hints between nodes: NOTIFY payloads on one channel per schema. They carry ids,
 * never data (the reader reads the store), and may be lost — a dropped LISTEN connection
 * misses what was sent meanwhile — so a node also polls.
 *
 * - `inbox:<sessionId>`: mail was written to a session's inbox.
 * - `events:<sessionId>:<seq>`: events up to `seq` were committed (session ids may hold
 *   `:`, so the seq is what follows the last one).
 */
export const hint = {
  inbox: (sessionId: string) => `inbox:${sessionId}`,
  events: (sessionId: string, seq: number) => `events:${sessionId}:${seq}`,
};

/** NOTIFY refuses payloads of 8000 bytes or more: such a hint is left to the poll fallback. */
export function fits(payload: string): boolean {
  return Buffer.byteLength(payload) < 8000;
}

/** Hands one payload to the hints it names; an unknown payload is ignored. */
export function dispatchHint(payload: string, hints: Pick<ClusterHints, 'inbox' | 'events'>): void {
  if (payload.startsWith('inbox:')) return hints.inbox(payload.slice('inbox:'.length));
  if (!payload.startsWith('events:')) return;
  const rest = payload.slice('events:'.length);
  const colon = rest.lastIndexOf(':');
  const seq = Number(rest.slice(colon + 1));
  if (colon > 0 && Number.isInteger(seq)) hints.events(rest.slice(0, colon), seq);
}

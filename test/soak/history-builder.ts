/** A tiny history builder for the checker's tests: one session, connections by name, time advancing by one per record. */
import type { HistoryRecord } from './history.ts';

export function history() {
  const records: HistoryRecord[] = [];
  let t = 0;
  const api = {
    records,
    open: (conn: string, lastSeq?: number) => (records.push({ k: 'open', t: t++, conn, session: 's', ...(lastSeq !== undefined && { lastSeq }) }), api),
    frame: (conn: string, seq: number, type: string, data: Record<string, unknown> = {}) => (records.push({ k: 'frame', t: t++, conn, session: 's', seq, type, data }), api),
    sent: (conn: string, id: string, bad?: 'malformed' | 'oversized', expect?: { code: string; byId: boolean }) =>
      (records.push({ k: 'sent', t: t++, conn, session: 's', id, type: bad ? 'raw' : 'input', ...(bad && { bad }), ...(expect && { expect }) }), api),
    close: (conn: string, code: number, byClient = false) => (records.push({ k: 'close', t: t++, conn, session: 's', code, byClient }), api),
    kill: (proc?: string) => (records.push({ k: 'server', t: t++, event: 'kill', planned: true, ...(proc && { proc }) }), api),
    exit: (planned: boolean) => (records.push({ k: 'server', t: t++, event: 'exit', planned, code: 1 }), api),
    /** A failed commit stopped the session; its store held up to `seq`. */
    storeFailed: (seq: number) => (records.push({ k: 'store', t: t++, event: 'failed', session: 's', seq }), api),
    input: (conn: string, id: string) => (records.push({ k: 'sent', t: t++, conn, session: 's', id, type: 'input' }), api),
    refuse: (conn: string, id: string) => api.frame(conn, 0, 'error', { code: 'INTERNAL_ERROR', message: 'the store failed', event_id: id }),
    ack: (conn: string, id: string) => api.frame(conn, 0, 'input.ack', { client_message_id: id, status: 'accepted', duplicate: false, durability: 'durable' }),
    turn: (conn: string, seq: number, n: number, ids: string[], extra: Record<string, unknown> = {}) =>
      api
        .frame(conn, seq, 'message.start', { id: `msg_${n}` })
        .frame(conn, seq + 1, 'message.end', { message_id: `msg_${n}` })
        .frame(conn, seq + 2, 'done', { success: true, dropped: false, input_ids: ids, ...extra }),
    /** C19: the client's `permission_response` for `call`. */
    decide: (conn: string, call: string, allowed: boolean) =>
      (records.push({ k: 'sent', t: t++, conn, session: 's', id: `perm-${call}`, type: 'permission_response', decision: { call, allowed } }), api),
    /** C19: gateway process `proc` began to run the tool of `call`. */
    ran: (proc: string, call: string, attempt = 1, needsApproval = true) =>
      (records.push({ k: 'tool', t: t++, proc, session: 's', call, attempt, name: needsApproval ? 'soak_guarded' : 'soak_echo', needsApproval }), api),
  };
  return api;
}


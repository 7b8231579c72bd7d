/**
 * A tiny history builder for the checker's tests: one session, connections by name, time
 * advancing by one per record (or by `wait`); a frame's gateway write time (`ts`) is its `t`.
 */
import type { HistoryRecord, ScheduleSent } from './history.ts';

export function history() {
  const records: HistoryRecord[] = [];
  let t = 0;
  const api = {
    records,
    open: (conn: string, lastSeq?: number) => (records.push({ k: 'open', t: t++, conn, session: 's', ...(lastSeq !== undefined && { lastSeq }) }), api),
    frame: (conn: string, seq: number, type: string, data: Record<string, unknown> = {}) => (records.push({ k: 'frame', t, conn, session: 's', seq, type, data, ts: t++ }), api),
    /** Time passes: the next record comes `ms` later. */
    wait: (ms: number) => ((t += ms), api),
    sent: (conn: string, id: string, bad?: 'malformed' | 'oversized', expect?: { code: string; byId: boolean }) =>
      (records.push({ k: 'sent', t: t++, conn, session: 's', id, type: bad ? 'raw' : 'input', ...(bad && { bad }), ...(expect && { expect }) }), api),
    close: (conn: string, code: number, byClient = false) => (records.push({ k: 'close', t: t++, conn, session: 's', code, byClient }), api),
    kill: (proc?: string) => (records.push({ k: 'server', t: t++, event: 'kill', planned: true, ...(proc && { proc }) }), api),
    /** The gateway process `proc` started (after a kill: the restart). */
    start: (proc: string) => (records.push({ k: 'server', t: t++, event: 'start', proc }), api),
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
    /** C20: the client sends `schedule` for `id` (the frame's id too), asking `spec`; its clock reads the record's time. */
    schedule: (conn: string, id: string, spec: Omit<ScheduleSent, 'id' | 'wall'>) =>
      (records.push({ k: 'sent', t, conn, session: 's', id, type: 'schedule', schedule: { id, ...spec, wall: t } }), t++, api),
    /** C20: the gateway's answer to `schedule` frame `frame`: stored, due at `dueAt`. */
    scheduled: (conn: string, frame: string, dueAt: number) => api.frame(conn, 0, 'schedule.ack', { client_message_id: frame, id: frame, due_at: dueAt }),
    /** C20: the client sends `schedule_cancel` (frame id `frame`) for schedule `id`. */
    cancel: (conn: string, frame: string, id: string) => (records.push({ k: 'sent', t: t++, conn, session: 's', id: frame, type: 'schedule_cancel', cancel: id }), api),
    /** C20: the gateway's answer to a cancel: whether it found the schedule. */
    cancelled: (conn: string, frame: string, id: string, found: boolean) => api.frame(conn, 0, 'schedule.ack', { client_message_id: frame, id, cancelled: found }),
    /** C20: the agent, in gateway process `proc`, set schedule `id` due at `dueAt`. */
    agentScheduled: (proc: string, id: string, dueAt: number) => (records.push({ k: 'schedule', t: t++, proc, session: 's', id, dueAt }), api),
    /** C20: a turn of the agent, in gateway process `proc`, was handed fire `input` at `at`. */
    handed: (proc: string, input: string, at: number) => (records.push({ k: 'fire', t: t++, proc, session: 's', input, at }), api),
    /** C19: gateway process `proc` began to run the tool of `call`. */
    ran: (proc: string, call: string, attempt = 1, needsApproval = true) =>
      (records.push({ k: 'tool', t: t++, proc, session: 's', call, attempt, name: needsApproval ? 'soak_guarded' : 'soak_echo', needsApproval }), api),
  };
  return api;
}


import { describe, expect, it } from 'vitest';
import { check } from './soak/checker.ts';
import { history } from './soak/history-builder.ts';

const contracts = (h: ReturnType<typeof history>, boundaries?: Map<string, number>) =>
  check({ history: h.records, ...(boundaries && { boundaries }) }).violations.map((v) => v.contract);

/** A turn whose session a failed commit stopped at `cut` (its store held up to it), then re-activated. */
const stoppedByTheStore = (cut: number) =>
  history()
    .open('a').frame('a', 0, 'init_ack', { seq: 0 }).ack('a', 'm1').frame('a', 1, 'message.start', { id: 'msg_1' }).frame('a', 2, 'message.delta', { content: 'x' })
    .frame('a', 0, 'error', { code: 'INTERNAL_ERROR', message: 'session "s" is unavailable: the store failed' }).close('a', 1013).storeFailed(cut)
    .open('b', 2).frame('b', 0, 'init_ack', { seq: 2, resume: { from: 2, replayed: 0, complete: true } }).turn('b', 3, 2, ['m1']);

describe('the soak checker', () => {
  it('passes a clean history: two turns in order, every acked input in one done', () => {
    const h = history().open('a').frame('a', 0, 'init_ack', { seq: 0, state: 'created' }).ack('a', 'm1').turn('a', 1, 1, ['m1']).ack('a', 'm2').turn('a', 4, 2, ['m2']);
    expect(contracts(h)).toEqual([]);
  });

  it('C2/C12: what a resume told incomplete skipped is missing, not dropped deltas: the session cannot be verified, and its dones are not counted', () => {
    // Seq 3 (a tool_call) seen; 4–9 (the turn's end, the done of m1, another turn) gone from the store; 10 a message.end.
    const h = history().open('a').frame('a', 0, 'init_ack', { seq: 0 }).ack('a', 'm1').frame('a', 1, 'message.start', { id: 'msg_1' })
      .frame('a', 2, 'tool_call', { id: 'call_1_1', name: 'soak_echo', input: { text: 'x' } }).close('a', 1006)
      .open('b', 2).frame('b', 0, 'init_ack', { seq: 11, resume: { from: 2, replayed: 2, complete: false } })
      .frame('b', 10, 'message.end', { message_id: 'msg_3' }).frame('b', 11, 'done', { success: true, dropped: false, input_ids: ['m3'] });
    expect(check({ history: h.records }).stats.unverified).toBe(1);
    expect(contracts(h)).toEqual([]);
    // Told complete, the same gap would pass for dropped deltas: m1 is then in no done.
    const told = h.records.map((r) => (r.k === 'frame' && r.type === 'init_ack' && r.conn === 'b' ? { ...r, data: { seq: 11, resume: { from: 2, replayed: 2, complete: true } } } : r));
    expect(check({ history: told }).violations.map((v) => v.contract)).toContain('C2/C12');
  });

  it('C1: catches a turn that starts before the previous one ended', () => {
    const h = history().open('a').frame('a', 0, 'init_ack', { seq: 0 }).frame('a', 1, 'message.start', { id: 'msg_1' }).turn('a', 2, 2, []);
    expect(contracts(h)).toEqual(['C1']);
  });

  it('C1: a done that only says an input was refused when offered again does not end the running turn', () => {
    const h = history().open('a').frame('a', 0, 'init_ack', { seq: 0 }).frame('a', 1, 'message.start', { id: 'msg_1' })
      .frame('a', 2, 'error', { code: 'SESSION_BUSY', event_id: 'm3' })
      .frame('a', 3, 'done', { success: false, dropped: false, reason: 'failed', input_ids: [], cancelled_input_ids: ['m3'] });
    expect(contracts(h.turn('a', 4, 2, []))).toEqual(['C1']);
  });

  it('C1: a turn cut short by the planned kill ends with its process', () => {
    const h = history().open('a').frame('a', 0, 'init_ack', { seq: 0 }).frame('a', 1, 'message.start', { id: 'msg_1' }).turn('a', 2, 2, []);
    expect(contracts(h, new Map([['s', 1]]))).toEqual([]);
  });

  it('C1: a turn whose session a failed commit stopped is run again after the re-activation; other overlaps are still caught', () => {
    expect(contracts(stoppedByTheStore(2))).toEqual([]);
    // The cut must lie between the two starts: a failure recorded past the second start excuses nothing.
    expect(contracts(stoppedByTheStore(3))).toEqual(['C1']);
    const stats = check({ history: stoppedByTheStore(2).records }).stats;
    expect(stats.rerun).toEqual({ kill: 0, store: 1, moved: 0 });
    // A failure of another session excuses nothing here.
    const other = stoppedByTheStore(2);
    other.records.splice(other.records.findIndex((r) => r.k === 'store'), 1, { k: 'store', t: 7.5, event: 'failed', session: 'other', seq: 2 });
    expect(contracts(other)).toEqual(['C1']);
  });

  it('C16: an input refused with INTERNAL_ERROR is not owed a done, may be resent and run once, and never runs on a refusal alone', () => {
    // Refused, never resent: not owed a done (it was never acknowledged).
    const refused = history().open('a').frame('a', 0, 'init_ack', { seq: 0 }).input('a', 'm1').refuse('a', 'm1').input('a', 'm2').ack('a', 'm2').turn('a', 1, 1, ['m2']);
    expect(contracts(refused)).toEqual([]);
    expect(check({ history: refused.records }).stats.refused).toBe(1);
    // Refused, then resent with the same id and acknowledged: in exactly one done, like any acked input.
    const resent = history().open('a').frame('a', 0, 'init_ack', { seq: 0 }).input('a', 'm1').refuse('a', 'm1').input('a', 'm1').ack('a', 'm1');
    expect(contracts(resent.turn('a', 1, 1, ['m1']))).toEqual([]);
    const resentLost = history().open('a').frame('a', 0, 'init_ack', { seq: 0 }).input('a', 'm1').refuse('a', 'm1').input('a', 'm1').ack('a', 'm1').turn('a', 1, 1, []);
    expect(contracts(resentLost)).toEqual(['C2/C12']);
    // Refused on its every send, yet it ran: the store's refusal did not hold.
    const ranAnyway = history().open('a').frame('a', 0, 'init_ack', { seq: 0 }).input('a', 'm1').refuse('a', 'm1').turn('a', 1, 1, ['m1']);
    expect(contracts(ranAnyway)).toEqual(['C16']);
    // One send whose answer never came (the connection went away) may have been taken: no claim.
    const unanswered = history().open('a').frame('a', 0, 'init_ack', { seq: 0 }).input('a', 'm1').refuse('a', 'm1').input('a', 'm1').turn('a', 1, 1, ['m1']);
    expect(contracts(unanswered)).toEqual([]);
  });

  it('C16: the gateway must be healthy at the end: every session a failed commit stopped is back', () => {
    expect(check({ history: [], health: { ok: true, failedSessions: 0 } }).violations).toEqual([]);
    expect(check({ history: [], health: { ok: false, failedSessions: 3 } }).violations.map((v) => v.contract)).toEqual(['C16']);
  });

  it('C2/C12: catches a durable-acked input in no done, and one in two dones', () => {
    const missing = history().open('a').frame('a', 0, 'init_ack', { seq: 0 }).ack('a', 'm1').turn('a', 1, 1, []);
    expect(contracts(missing)).toEqual(['C2/C12']);
    const twice = history().open('a').frame('a', 0, 'init_ack', { seq: 0 }).ack('a', 'm1').turn('a', 1, 1, ['m1']).turn('a', 4, 2, [], { success: false, reason: 'stopped_by_user', cancelled_input_ids: ['m1'] });
    expect(contracts(twice)).toEqual(['C2/C12']);
  });

  it('C2/C12: accepts an input in a done that says why it failed, catches a failed done that does not', () => {
    const said = history().open('a').frame('a', 0, 'init_ack', { seq: 0 }).ack('a', 'm1').turn('a', 1, 1, ['m1'], { success: false, reason: 'timeout' });
    expect(contracts(said)).toEqual([]);
    const unsaid = history().open('a').frame('a', 0, 'init_ack', { seq: 0 }).ack('a', 'm1').turn('a', 1, 1, ['m1'], { success: false });
    expect(contracts(unsaid)).toEqual(['C2/C12']);
    const cancelledBySuccess = history().open('a').frame('a', 0, 'init_ack', { seq: 0 }).ack('a', 'm1').ack('a', 'm2').turn('a', 1, 1, ['m1'], { cancelled_input_ids: ['m2'] });
    expect(contracts(cancelledBySuccess)).toEqual(['C2/C12']);
  });

  it('C8/C9: catches init_ack not first, a seq gap, a repeated seq and two events under one seq', () => {
    expect(contracts(history().open('a').frame('a', 1, 'state', { state: 'created' }).frame('a', 0, 'init_ack', { seq: 0 }))).toEqual(['C8/C9']);
    expect(contracts(history().open('a').frame('a', 0, 'init_ack', { seq: 0 }).frame('a', 1, 'state').frame('a', 3, 'state'))).toEqual(['C8/C9']);
    expect(contracts(history().open('a').frame('a', 0, 'init_ack', { seq: 0 }).frame('a', 1, 'state').frame('a', 1, 'state'))).toEqual(['C8/C9']);
    const split = history().open('a').frame('a', 0, 'init_ack', { seq: 0 }).frame('a', 1, 'state', { state: 'idle' }).open('b').frame('b', 0, 'init_ack', { seq: 0 }).frame('b', 1, 'state', { state: 'running' });
    expect(contracts(split)).toEqual(['C8/C9']);
  });

  it('C8/C9: allows the gap of dropped deltas, and a resume that starts after last_seq', () => {
    const streamed = (dropped: boolean) =>
      history().open('a').frame('a', 0, 'init_ack', { seq: 0 }).frame('a', 1, 'message.start', { id: 'msg_1' }).frame('a', 2, 'message.delta').frame('a', 5, 'message.delta').frame('a', 6, 'message.end').frame('a', 7, 'done', { success: true, input_ids: [], dropped });
    expect(contracts(streamed(true))).toEqual([]);
    // The gap is allowed only when the connection's done says deltas were dropped.
    expect(contracts(streamed(false))).toEqual(['C8/C9']);
    // A gap that is not inside a message is never a dropped delta.
    const notDeltas = history().open('a').frame('a', 0, 'init_ack', { seq: 0 }).frame('a', 1, 'state', { state: 'running' }).frame('a', 3, 'message.delta').frame('a', 4, 'message.end').frame('a', 5, 'done', { success: true, input_ids: [], dropped: true });
    expect(contracts(notDeltas)).toEqual(['C8/C9']);
    const resumed = history().open('a', 4).frame('a', 0, 'init_ack', { seq: 6 }).frame('a', 5, 'state').frame('a', 6, 'state');
    expect(contracts(resumed)).toEqual([]);
  });

  it('C13: catches a question asked out of order', () => {
    const h = history().open('a').frame('a', 0, 'init_ack', { seq: 0 }).frame('a', 1, 'question_request', { id: 'q1' }).frame('a', 2, 'question_request', { id: 'q3' });
    expect(contracts(h)).toEqual(['C13']);
  });

  it('C15: catches a bad frame with no typed error or close, and a gateway that exited on its own', () => {
    const unanswered = history().open('a').frame('a', 0, 'init_ack', { seq: 0 }).sent('a', 'bad1', 'malformed').sent('a', 'big1', 'oversized').close('a', 1000);
    expect(contracts(unanswered)).toEqual(['C15', 'C15']);
    const answered = history().open('a').frame('a', 0, 'init_ack', { seq: 0 }).sent('a', 'bad1', 'malformed').frame('a', 0, 'error', { code: 'INVALID_MESSAGE', event_id: 'bad1' }).sent('a', 'big1', 'oversized').close('a', 1009);
    expect(contracts(answered)).toEqual([]);
    const behindOversized = history().open('a').frame('a', 0, 'init_ack', { seq: 0 }).sent('a', 'big1', 'oversized').sent('a', 'bad1', 'malformed').close('a', 1009);
    expect(contracts(behindOversized)).toEqual([]);
    expect(contracts(history().exit(false))).toEqual(['C15']);
    // The error must be the one the frame calls for.
    const wrongCode = history().open('a').frame('a', 0, 'init_ack', { seq: 0 }).sent('a', 'bad1', 'malformed', { code: 'PROTOCOL_VIOLATION', byId: true }).frame('a', 0, 'error', { code: 'INVALID_MESSAGE', event_id: 'bad1' });
    expect(contracts(wrongCode)).toEqual(['C15']);
    // Errors that cannot name their frame (no readable id) answer one frame each.
    const unreadable = { code: 'INVALID_MESSAGE', byId: false };
    const twoForOne = history().open('a').frame('a', 0, 'init_ack', { seq: 0 }).sent('a', 'x1', 'malformed', unreadable).sent('a', 'x2', 'malformed', unreadable).frame('a', 0, 'error', { code: 'INVALID_MESSAGE' });
    expect(contracts(twoForOne)).toEqual(['C15']);
    // The client's own close is no excuse (the gateway answers a frame before it reads the next); a 1013 close for slowness is.
    expect(contracts(history().open('a').frame('a', 0, 'init_ack', { seq: 0 }).sent('a', 'bad1', 'malformed').close('a', 1000, true))).toEqual(['C15']);
    expect(contracts(history().open('a').frame('a', 0, 'init_ack', { seq: 0 }).sent('a', 'bad1', 'malformed').close('a', 1013))).toEqual([]);
    // Answers go in frame order: behind an input whose ack still waited for its commit when the client closed, the error could not be written.
    const owed = history().open('a').frame('a', 0, 'init_ack', { seq: 0 }).sent('a', 'm1').sent('a', 'bad1', 'malformed').close('a', 1000, true);
    expect(contracts(owed)).toEqual([]);
    // So is a later oversized frame's close (1009), which the WebSocket makes at once.
    const owedThenOversized = history().open('a').frame('a', 0, 'init_ack', { seq: 0 }).sent('a', 'm1').sent('a', 'bad1', 'malformed').sent('a', 'big2', 'oversized').close('a', 1009);
    expect(contracts(owedThenOversized)).toEqual([]);
    // A gateway's own close that the protocol does not name is no excuse.
    expect(contracts(history().open('a').frame('a', 0, 'init_ack', { seq: 0 }).sent('a', 'm1').sent('a', 'bad1', 'malformed').close('a', 1011))).toEqual(['C15']);
    // An input answered before the close is no excuse.
    const answeredFirst = history().open('a').frame('a', 0, 'init_ack', { seq: 0 }).sent('a', 'm1').refuse('a', 'm1').sent('a', 'bad1', 'malformed').close('a', 1000, true);
    expect(contracts(answeredFirst)).toEqual(['C15']);
    expect(contracts(history().kill().exit(true))).toEqual([]);
  });

  it('bounds the gateway heap and handles at the end by the start', () => {
    const over = check({ history: [], resources: { start: { heap: 10e6, handles: 3 }, end: { heap: 100e6, handles: 40 } } });
    expect(over.violations.map((v) => v.contract)).toEqual(['resources', 'resources']);
  });
});

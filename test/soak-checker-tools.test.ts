import { describe, expect, it } from 'vitest';
import { check } from './soak/checker.ts';
import { history } from './soak/history-builder.ts';

/** C19's violations only: some histories here leave their turn open (other contracts' business). */
const violations = (h: ReturnType<typeof history>) => check({ history: h.records }).violations.filter((v) => v.contract === 'C19').map((v) => `${v.contract}: ${v.message}`);

const started = () => history().open('a').frame('a', 0, 'init_ack', { seq: 0 }).ack('a', 'm1').frame('a', 1, 'message.start', { id: 'msg_1' });
const call = (h: ReturnType<typeof history>, seq: number, id: string) => h.frame('a', seq, 'tool_call', { id, name: 'soak_guarded', input: { text: 'x' } });
const ask = (h: ReturnType<typeof history>, seq: number, id: string) => h.frame('a', seq, 'permission_request', { id, tool_name: 'soak_guarded', input: { text: 'x' }, expires_at: 1 });
const ok = (h: ReturnType<typeof history>, seq: number, id: string) => h.frame('a', seq, 'tool_result', { id, status: 'ok', output: 'X' });
const denied = (h: ReturnType<typeof history>, seq: number, id: string, code = 'denied') => h.frame('a', seq, 'tool_result', { id, status: 'denied', error: { code, message: 'no' } });
const end = (h: ReturnType<typeof history>, seq: number, extra: Record<string, unknown> = {}) =>
  h.frame('a', seq, 'message.end', { message_id: 'msg_1' }).frame('a', seq + 1, 'done', { success: true, dropped: false, input_ids: ['m1'], ...extra });
/** The turn a crash cut off, closed when its session came back; then its re-run starts. */
const cutOff = (h: ReturnType<typeof history>, seq: number) =>
  h
    .frame('a', seq, 'message.end', { message_id: 'msg_1' })
    .frame('a', seq + 1, 'done', { success: false, dropped: false, reason: 'interrupted', input_ids: [] })
    .frame('a', seq + 2, 'message.start', { id: 'msg_2' });

describe('the soak checker: tools and approvals', () => {
  it('C19: passes a call asked, allowed, run once and answered inside its turn', () => {
    const h = ok(ask(call(started(), 2, 'call_1_1'), 3, 'call_1_1').decide('a', 'call_1_1', true).ran('p0', 'call_1_1'), 4, 'call_1_1');
    expect(violations(end(h, 5))).toEqual([]);
    expect(check({ history: end(h, 5).records }).stats.tools).toMatchObject({ calls: 1, requests: 1, results: { ok: 1 }, decisions: { allow: 1, deny: 0, refused: 0 }, executions: 1 });
  });

  it('C19: catches a call with no result before its turn\'s done, and one with two results', () => {
    expect(violations(end(call(started(), 2, 'call_1_1'), 3))).toEqual([expect.stringMatching(/^C19: tool_call call_1_1 \(seq 2\) has no tool_result before its turn's done at seq 4/)]);
    const twice = ok(ok(call(started(), 2, 'call_1_1').ran('p0', 'call_1_1', 1, false), 3, 'call_1_1'), 4, 'call_1_1');
    expect(violations(end(twice, 5))).toEqual([expect.stringMatching(/^C19: tool_result for call_1_1 at seq 4: the call already had one at seq 3/)]);
    const calledTwice = ok(call(call(started(), 2, 'call_1_1'), 3, 'call_1_1'), 4, 'call_1_1');
    expect(violations(end(calledTwice, 5))).toEqual([expect.stringMatching(/^C19: tool_call call_1_1 at seq 3 was already called at seq 2/)]);
  });

  it('C19: a permission_request only for a call already made and not settled, inside a turn', () => {
    expect(violations(end(ok(call(ask(started(), 2, 'call_1_1'), 3, 'call_1_1'), 4, 'call_1_1'), 5))).toEqual([expect.stringMatching(/permission_request for call_1_1 at seq 2 comes before any tool_call/)]);
    const late = ask(ok(call(started(), 2, 'call_1_1'), 3, 'call_1_1'), 4, 'call_1_1');
    expect(violations(end(late, 5))).toEqual([expect.stringMatching(/comes after its result/)]);
    const outside = ask(end(call(started(), 2, 'call_1_1').frame('a', 3, 'tool_result', { id: 'call_1_1', status: 'cancelled', error: { code: 'cancelled', message: '' } }), 4), 6, 'call_2_1');
    expect(violations(outside)).toEqual([expect.stringMatching(/permission_request for call_2_1 at seq 6 is outside any turn/), expect.stringMatching(/comes before any tool_call/)]);
  });

  it('C19: a call of a turn a crash cut off gets its result in the re-run; missing there too, it is caught', () => {
    const carried = ask(call(started(), 2, 'call_1_1'), 3, 'call_1_1');
    const rerun = ok(cutOff(carried, 4).decide('a', 'call_1_1', true).ran('p1', 'call_1_1'), 7, 'call_1_1');
    expect(violations(end(rerun, 8))).toEqual([]);
    expect(violations(end(cutOff(ask(call(started(), 2, 'call_1_1'), 3, 'call_1_1'), 4), 7))).toEqual([expect.stringMatching(/tool_call call_1_1 \(seq 2\) has no tool_result before its turn's done at seq 8/)]);
  });

  it('C19: a re-run replays the calls its cut-off turn left open; calling one anew (same tool, same input) is caught', () => {
    const anew = call(cutOff(ask(call(started(), 2, 'call_1_1'), 3, 'call_1_1'), 4), 7, 'call_3_1');
    expect(violations(anew)).toEqual([expect.stringMatching(/the re-run called soak_guarded anew as call_3_1 at seq 7 instead of replaying call_1_1 \(seq 2\), still open/)]);
    // Another call, or one the cut-off turn had settled, is the re-run's own.
    const settled = call(cutOff(ok(call(started(), 2, 'call_1_1').ran('p0', 'call_1_1', 1, false), 3, 'call_1_1'), 4), 7, 'call_3_1');
    expect(violations(settled)).toEqual([]);
  });

  it('C19: an input refused when offered again (error, then a done cancelling it) is said inside the running turn, which goes on: its calls are answered after it', () => {
    const refused = (h: ReturnType<typeof history>, seq: number) =>
      h.frame('a', seq, 'error', { code: 'SESSION_BUSY', message: 'input "m3" could not be taken after a restart', event_id: 'm3' })
        .frame('a', seq + 1, 'done', { success: false, dropped: false, reason: 'failed', input_ids: [], cancelled_input_ids: ['m3'] });
    expect(violations(end(ok(refused(call(started(), 2, 'call_1_1'), 3), 5, 'call_1_1'), 6))).toEqual([]);
  });

  it('C19: a tool that needs approval never runs without an allowing decision the gateway took', () => {
    const base = () => ask(call(started(), 2, 'call_1_1'), 3, 'call_1_1');
    expect(violations(end(ok(base().ran('p0', 'call_1_1'), 4, 'call_1_1'), 5))).toEqual([expect.stringMatching(/call_1_1 needs approval and ran \(p0, attempt 1\) without an allowing decision/)]);
    // Allowed, but the gateway refused the decision (the request had expired): it must not run.
    const refused = base().decide('a', 'call_1_1', true).frame('a', 0, 'error', { code: 'INVALID_MESSAGE', event_id: 'perm-call_1_1' }).ran('p0', 'call_1_1');
    expect(violations(end(denied(refused, 4, 'call_1_1', 'approval_timeout'), 5))).toEqual([expect.stringMatching(/ran \(p0, attempt 1\), yet its result is approval_timeout/)]);
    // Denied, yet it ran.
    expect(violations(end(denied(base().decide('a', 'call_1_1', false).ran('p0', 'call_1_1'), 4, 'call_1_1'), 5))).toEqual([expect.stringMatching(/yet its result is denied/)]);
    // A plain tool needs no decision.
    expect(violations(end(ok(call(started(), 2, 'call_1_1').ran('p0', 'call_1_1', 1, false), 3, 'call_1_1'), 4))).toEqual([]);
  });

  it('C19: one run per attempt; a second attempt only after the process that ran the first was killed, or a failed commit stopped the session', () => {
    const plain = () => call(started(), 2, 'call_1_1').ran('p0', 'call_1_1', 1, false);
    expect(violations(plain().ran('p0', 'call_1_1', 1, false))).toEqual([expect.stringMatching(/call_1_1 ran with attempt 1 \(p0\) after attempt 1 \(p0\)/)]);
    expect(violations(plain().ran('p0', 'call_1_1', 2, false))).toEqual([expect.stringMatching(/call_1_1 ran again with attempt 2 in p0, but nothing cut off attempt 1 in p0/)]);
    expect(violations(plain().kill('p0').ran('p1', 'call_1_1', 2, false))).toEqual([]);
    expect(violations(plain().kill('p7').ran('p1', 'call_1_1', 2, false))).toEqual([expect.stringMatching(/nothing cut off attempt 1 in p0/)]);
    expect(violations(plain().storeFailed(3).ran('p0', 'call_1_1', 2, false))).toEqual([]);
    // Attempt 2 with no run of attempt 1 logged (the process died between the commit and the run): only after a crash.
    expect(violations(call(started(), 2, 'call_1_1').ran('p1', 'call_1_1', 2, false))).toEqual([expect.stringMatching(/an earlier attempt/)]);
    expect(violations(call(started(), 2, 'call_1_1').kill('p0').ran('p1', 'call_1_1', 2, false))).toEqual([]);
  });
});

import { describe, expect, it } from 'vitest';
import { check } from './soak/checker.ts';
import { history } from './soak/history-builder.ts';

type Builder = ReturnType<typeof history>;

/** C20's violations only. */
const violations = (h: Builder) => check({ history: h.records }).violations.filter((v) => v.contract === 'C20').map((v) => `${v.contract}: ${v.message}`);
const stats = (h: Builder) => check({ history: h.records }).stats.schedules;

/** A client attached, that set one-shot `s1` due at 100 (acked). */
const setS1 = () => history().open('a').frame('a', 0, 'init_ack', { seq: 0 }).schedule('a', 's1', { afterMs: 98 }).scheduled('a', 's1', 100);
/** The client leaves long after: the checker may require what was due. */
const leave = (h: Builder, after = 5000) => h.wait(after).close('a', 1000, true);

describe('the soak checker: schedules', () => {
  it('C20: passes a one-shot acked, fired once after its due time, by a turn', () => {
    const h = leave(setS1().wait(100).turn('a', 1, 1, ['timer:s1:100']));
    expect(violations(h)).toEqual([]);
    expect(stats(h)).toMatchObject({ set: 1, fires: 1, consumed: 1, owed: 1 });
  });

  it('C20: catches a fire twice for one due time, across turns', () => {
    const h = setS1().wait(100).turn('a', 1, 1, ['timer:s1:100']).turn('a', 4, 2, ['timer:s1:100']);
    expect(violations(h)).toEqual([expect.stringMatching(/^C20: schedule s1 fired 2 times for due time 100 \(consumed at seq 3; consumed at seq 6\)/)]);
  });

  it('C20: catches a fire whose turn started before the due time', () => {
    const h = setS1().wait(50).turn('a', 1, 1, ['timer:s1:100']);
    expect(violations(h)).toEqual([expect.stringMatching(/^C20: timer:s1:100 shows at seq 1 written at 5\d, 4\d ms before its due time 100/)]);
  });

  it('C20: a turn\'s start shows its fire only if nothing of the stream between it and the done is missing (a gap may hide another turn)', () => {
    // Seen: a start at seq 1 (before the due time), then seqs 2–5 missed, then the done of a later turn that took the fire.
    const gap = setS1().wait(50).frame('a', 1, 'message.start', { id: 'msg_1' }).wait(100)
      .frame('a', 6, 'message.end', { message_id: 'msg_2' })
      .frame('a', 7, 'done', { success: true, dropped: false, input_ids: ['timer:s1:100'] });
    expect(violations(gap)).toEqual([]);
  });

  it('C20: catches a turn handed a fire before its due time, on the gateway\'s clock, whether or not a client watched', () => {
    expect(violations(setS1().handed('p0', 'timer:s1:100', 100).handed('p1', 'timer:s1:100', 4000))).toEqual([]);
    expect(violations(setS1().handed('p0', 'timer:s1:100', 97))).toEqual([expect.stringMatching(/^C20: a turn in p0 was handed timer:s1:100 at 97, 3 ms before its due time/)]);
    expect(stats(setS1().handed('p0', 'timer:s1:100', 100)).handed).toBe(1);
  });

  it('C20: catches a fire of a schedule nobody set, or at a due time it never had; a recurring one fires on its phase', () => {
    expect(violations(setS1().wait(100).turn('a', 1, 1, ['timer:nobody:100']))).toEqual([expect.stringMatching(/timer:nobody:100 fired for a schedule no client and no agent set/)]);
    expect(violations(setS1().wait(100).turn('a', 1, 1, ['timer:s1:101']))).toEqual([expect.stringMatching(/timer:s1:101 fired for a due time s1 never had \(acked due_at 100\)/)]);
    const every = () => history().open('a').frame('a', 0, 'init_ack', { seq: 0 }).schedule('a', 'r1', { everyMs: 1000 }).scheduled('a', 'r1', 1002).wait(3000);
    expect(violations(every().turn('a', 1, 1, ['timer:r1:1002']).turn('a', 4, 2, ['timer:r1:3002']))).toEqual([]);
    expect(violations(every().turn('a', 1, 1, ['timer:r1:2500']))).toEqual([expect.stringMatching(/timer:r1:2500 fired for a due time r1 never had \(acked due_at 1002 every 1000 ms\)/)]);
  });

  it('C20: a restart catches a recurring schedule up once, not once per interval it was down for', () => {
    const down = () => history().open('a').frame('a', 0, 'init_ack', { seq: 0 }).schedule('a', 'r1', { everyMs: 1000 }).scheduled('a', 'r1', 1002).wait(1500).kill('p0').wait(3000).start('p1');
    expect(violations(down().turn('a', 1, 1, ['timer:r1:2002']).wait(600).turn('a', 4, 2, ['timer:r1:5002']))).toEqual([]);
    expect(violations(down().turn('a', 1, 1, ['timer:r1:2002']).turn('a', 4, 2, ['timer:r1:3002']))).toEqual([
      expect.stringMatching(/^C20: recurring r1 fired 2 times for due times the gateway was down for \(2002, 3002\): a restart catches up once/),
    ]);
  });

  it('C20: a schedule whose frame was refused is not stored: it must never fire', () => {
    const refused = history().open('a').frame('a', 0, 'init_ack', { seq: 0 }).schedule('a', 's1', { afterMs: 98 }).frame('a', 0, 'error', { code: 'INTERNAL_ERROR', event_id: 's1' });
    expect(violations(refused.wait(100).turn('a', 1, 1, ['timer:s1:100']))).toEqual([expect.stringMatching(/timer:s1:100 fired, yet every frame that set s1 was refused \(INTERNAL_ERROR\)/)]);
    // Unanswered (the ack was lost with its connection): it may have been stored, due no earlier than it asked.
    const lost = () => history().open('a').frame('a', 0, 'init_ack', { seq: 0 }).schedule('a', 's1', { afterMs: 98 }).wait(200);
    expect(violations(lost().turn('a', 1, 1, ['timer:s1:150']))).toEqual([]);
    expect(violations(lost().turn('a', 1, 1, ['timer:s1:60']))).toEqual([expect.stringMatching(/fired for a due time s1 never had \(unanswered\)/)]);
  });

  it('C20: a one-shot whose cancel found it never fires; a recurring one fires nothing due after its cancel', () => {
    const cancelledEarly = setS1().cancel('a', 'x1', 's1').cancelled('a', 'x1', 's1', true).wait(100).turn('a', 1, 1, ['timer:s1:100']);
    expect(violations(cancelledEarly)).toEqual([expect.stringMatching(/timer:s1:100 fired for a due time after the cancel of s1 was acked \(cancelled: true, written at \d\)/)]);
    const cancelledLate = setS1().wait(100).cancel('a', 'x1', 's1').cancelled('a', 'x1', 's1', true).turn('a', 1, 1, ['timer:s1:100']);
    expect(violations(cancelledLate)).toEqual([expect.stringMatching(/one-shot s1 fired, yet its cancel found it/)]);
    // A cancel that found nothing (it had fired) is no contradiction.
    expect(violations(setS1().wait(100).turn('a', 1, 1, ['timer:s1:100']).cancel('a', 'x1', 's1').cancelled('a', 'x1', 's1', false))).toEqual([]);
    const every = () => history().open('a').frame('a', 0, 'init_ack', { seq: 0 }).schedule('a', 'r1', { everyMs: 1000 }).scheduled('a', 'r1', 1002).wait(1500).cancel('a', 'x1', 'r1').cancelled('a', 'x1', 'r1', true);
    expect(violations(every().turn('a', 1, 1, ['timer:r1:1002']))).toEqual([]);
    expect(violations(every().wait(1000).turn('a', 1, 1, ['timer:r1:2002']))).toEqual([expect.stringMatching(/timer:r1:2002 fired for a due time after the cancel of r1 was acked/)]);
  });

  it('C20: an acked one-shot not cancelled fires, if it was due long enough before its session\'s last client left', () => {
    expect(violations(leave(setS1()))).toEqual([expect.stringMatching(/^C20: one-shot s1 acked due at 100 never fired; its session was watched until \d+ ms after/)]);
    // Watched only a moment after its due time: not required.
    expect(violations(leave(setS1(), 1000))).toEqual([]);
    // Cancelled (or a cancel without an answer, which may have): not required.
    expect(violations(leave(setS1().cancel('a', 'x1', 's1').cancelled('a', 'x1', 's1', true)))).toEqual([]);
    expect(violations(leave(setS1().cancel('a', 'x1', 's1')))).toEqual([]);
    // A cancel that found nothing, or was refused, leaves it owed.
    expect(violations(leave(setS1().cancel('a', 'x1', 's1').frame('a', 0, 'error', { code: 'INTERNAL_ERROR', event_id: 'x1' })))).toEqual([expect.stringMatching(/one-shot s1 acked due at 100 never fired/)]);
    // Due while the gateway was down: it counts from the restart.
    expect(violations(leave(setS1().kill('p0').wait(4000).start('p1'), 2000))).toEqual([]);
    expect(violations(leave(setS1().kill('p0').wait(4000).start('p1'), 4000))).toEqual([expect.stringMatching(/never fired/)]);
  });

  it('C20: a fire the session refused (busy policy reject) is a fire, said by an error naming it; refused after a restart, error and done are one fire', () => {
    const rejected = leave(setS1().wait(100).frame('a', 1, 'error', { code: 'SESSION_BUSY', message: 'busy', event_id: 'timer:s1:100' }));
    expect(violations(rejected)).toEqual([]);
    expect(stats(rejected)).toMatchObject({ fires: 1, refusedFires: 1 });
    const atRestart = setS1().wait(100)
      .frame('a', 1, 'error', { code: 'SESSION_BUSY', event_id: 'timer:s1:100' })
      .frame('a', 2, 'done', { success: false, dropped: false, reason: 'failed', input_ids: [], cancelled_input_ids: ['timer:s1:100'] });
    expect(violations(atRestart)).toEqual([]);
    expect(violations(atRestart.frame('a', 3, 'done', { success: false, dropped: false, reason: 'stopped_by_user', input_ids: [], cancelled_input_ids: ['timer:s1:100'] }))).toEqual([
      expect.stringMatching(/schedule s1 fired 2 times for due time 100 \(refused at seq 2; cancelled at seq 3\)/),
    ]);
  });

  it('C20: a schedule the agent set fires at the due time it was given', () => {
    const agent = () => history().open('a').frame('a', 0, 'init_ack', { seq: 0 }).agentScheduled('p0', 'agent-m1', 100).wait(200);
    expect(violations(agent().turn('a', 1, 1, ['timer:agent-m1:100']))).toEqual([]);
    expect(violations(agent().turn('a', 1, 1, ['timer:agent-m1:150']))).toEqual([expect.stringMatching(/timer:agent-m1:150 fired, but the agent set agent-m1 due at 100/)]);
  });
});

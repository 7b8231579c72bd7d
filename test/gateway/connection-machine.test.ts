import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createActor, SimulatedClock } from 'xstate';
import { connectionMachine, type ConnectionEffect, type OutboundFrame } from '../../src/index.ts';

function connection(initTimeoutMs = 1000) {
  const clock = new SimulatedClock();
  const actor = createActor(connectionMachine, { input: { initTimeoutMs }, clock });
  const effects: ConnectionEffect[] = [];
  actor.on('*', (e) => effects.push(e));
  actor.start();
  return { actor, clock, effects, writes: () => effects.flatMap((e) => (e.type === 'write' ? [e.frame] : [])) };
}

const frame = (seq: number, type = 'message.delta'): OutboundFrame => ({ type, seq, data: { n: seq } });
const ack: OutboundFrame = { type: 'init_ack', seq: 0, data: { session_id: 's', seq: 3 } };

describe('C9 the connection gate (machine)', () => {
  it('holds frames until init_ack, then writes init_ack first and the held frames in order', () => {
    const c = connection();
    c.actor.send({ type: 'init' });
    c.actor.send({ type: 'outbound', frames: [frame(4)] });
    c.actor.send({ type: 'outbound', frames: [frame(0, 'control')] });
    c.actor.send({ type: 'outbound', frames: [frame(5, 'error')] });
    expect(c.writes()).toEqual([]);
    c.actor.send({ type: 'attached', ack });
    expect(c.writes()).toEqual([ack, frame(4), frame(0, 'control'), frame(5, 'error')]);
    c.actor.send({ type: 'outbound', frames: [frame(6)] });
    expect(c.writes().at(-1)).toEqual(frame(6));
  });

  it('writes init_ack first under every interleaving of outbound frames and the attach (fast-check)', () => {
    fc.assert(
      fc.property(fc.array(fc.nat({ max: 50 }), { maxLength: 20 }), fc.nat({ max: 20 }), (seqs, attachAt) => {
        const c = connection();
        c.actor.send({ type: 'init' });
        seqs.forEach((seq, i) => {
          if (i === attachAt) c.actor.send({ type: 'attached', ack });
          c.actor.send({ type: 'outbound', frames: [frame(seq)] });
        });
        if (attachAt >= seqs.length) c.actor.send({ type: 'attached', ack });
        const writes = c.writes();
        expect(writes[0]).toBe(ack);
        expect(writes.slice(1).map((f) => f.seq)).toEqual(seqs); // none lost, none reordered, none renumbered
      }),
    );
  });

  it('answers a failed handshake with init_ack{state:deleted} and close 1008, dropping what was held', () => {
    const c = connection();
    c.actor.send({ type: 'outbound', frames: [frame(0, 'control')] });
    c.actor.send({ type: 'reject', failure: { code: 'UNAUTHORIZED', message: 'wrong token' } });
    expect(c.effects).toEqual([
      { type: 'write', frame: { type: 'init_ack', seq: 0, data: { state: 'deleted', code: 'UNAUTHORIZED', error: 'wrong token' } } },
      { type: 'close', code: 1008, reason: 'UNAUTHORIZED' },
    ]);
    expect(c.actor.getSnapshot().status).toBe('done');
  });

  it('refuses a connection with no init within initTimeoutMs', () => {
    const c = connection(500);
    c.clock.increment(499);
    expect(c.effects).toEqual([]);
    c.clock.increment(1);
    expect(c.effects.map((e) => e.type)).toEqual(['write', 'close']);
    expect(c.writes()[0]?.data).toMatchObject({ state: 'deleted', code: 'PROTOCOL_VIOLATION' });
  });

  it('does not time out once init has arrived', () => {
    const c = connection(500);
    c.actor.send({ type: 'init' });
    c.clock.increment(10_000);
    expect(c.effects).toEqual([]);
    expect(c.actor.getSnapshot().value).toBe('handshaking');
  });
});

import { describe, expect, it } from 'vitest';
import { attachSession } from '../../src/gateway/attach.ts';
import type { Runtime } from '../../src/runtime/runtime.ts';
import type { SessionEvent, SessionStatus } from '../../src/runtime/types.ts';

/**
 * C8/C9 on a cluster: a node whose stream of a session lags behind the store delivers, during
 * an attach, events the store already had when the status was read. They must not lower a
 * resuming client's point below its last_seq: it would be sent seqs it has seen.
 */
function fakeRuntime(seq: number, stored: SessionEvent[]): Runtime {
  const status = { sessionId: 's', kind: 'agent', state: 'idle', backlog: 0, turns: 0, busy: false, waitingForUser: false, seq } as SessionStatus;
  return {
    status: async () => status,
    open: async () => status,
    eventsAfter: async (_: string, after: number) => stored.filter((e) => e.seq > after),
  } as unknown as Runtime;
}

const events = Array.from({ length: 9 }, (_, i) => ({ sessionId: 's', seq: i + 1, type: 'state', data: { state: 'idle' } }) as SessionEvent);
const watch = (firstLive: number | undefined) => ({ firstLiveSeq: () => firstLive, gone: () => false, maxFrameBytes: 1 << 15 });

describe('C8/C9: attach on a node whose stream lags', () => {
  it('a resume at the store\'s seq keeps its point: complete, nothing replayed, everything up to last_seq counts as seen', async () => {
    const a = await attachSession(fakeRuntime(9, events), 's', { last_seq: 9 } as never, watch(6));
    expect(a!.ack.data['seq']).toBe(9);
    expect(a!.ack.data['resume']).toEqual({ from: 9, replayed: 0, complete: true });
    expect(a!.through).toBe(9);
  });

  it('a resume between the lagging stream and the store keeps its point', async () => {
    const a = await attachSession(fakeRuntime(9, events), 's', { last_seq: 7 } as never, watch(6));
    expect(a!.ack.data['seq']).toBe(7);
    expect(a!.through).toBe(7);
    expect(a!.replay).toEqual([]);
  });

  it('a resume behind the first live event is replayed up to it, as before', async () => {
    const a = await attachSession(fakeRuntime(9, events), 's', { last_seq: 3 } as never, watch(6));
    expect(a!.ack.data['seq']).toBe(5);
    expect(a!.replay.map((f) => f.seq)).toEqual([4, 5]);
    expect(a!.ack.data['resume']).toEqual({ from: 3, replayed: 2, complete: true });
    expect(a!.through).toBe(3);
  });

  it('without last_seq, events up to the attach point that arrive late are not written', async () => {
    const a = await attachSession(fakeRuntime(9, events), 's', {} as never, watch(undefined));
    expect(a!.ack.data['seq']).toBe(9);
    expect(a!.through).toBe(9);
  });

  it('a client ahead of the session is told incomplete', async () => {
    const a = await attachSession(fakeRuntime(4, events.slice(0, 4)), 's', { last_seq: 9 } as never, watch(undefined));
    expect(a!.ack.data['resume']).toMatchObject({ from: 9, complete: false });
    expect(a!.through).toBe(4);
  });
});

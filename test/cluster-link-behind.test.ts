import { describe, expect, it } from 'vitest';
import { ClusterLink, type LinkDeps } from '../src/runtime/cluster-link.ts';
import type { ClusterHints, ClusterStore } from '../src/runtime/cluster-store.ts';
import type { SessionEvent } from '../src/runtime/types.ts';

const event = (seq: number) => ({ sessionId: 's', seq, type: 'state', data: { state: 'idle' } }) as SessionEvent;

/** A node whose subscribers have seen up to seq `delivered` of a session run elsewhere; the store holds `stored`. */
async function link(delivered: number, stored: number[]) {
  let hints: ClusterHints | undefined;
  const store = {
    join: async (h: ClusterHints) => void (hints = h),
    eventsAfter: async (_: string, seq: number) => stored.filter((s) => s > seq).map(event),
    orphans: async () => [],
    mailWaiting: async () => [],
  } as unknown as ClusterStore;
  const seen = { behind: [] as [number, number][], delivered: [] as number[] };
  const deps: LinkDeps = {
    store,
    clock: { setTimeout: () => 0, clearTimeout: () => {} } as never,
    report: (error) => {
      throw error;
    },
    live: () => undefined,
    watched: () => ['s'],
    delivered: () => delivered,
    begin: () => {},
    deliver: (_, events) => seen.delivered.push(...events.map((e) => e.seq)),
    behind: (_, seq, next) => seen.behind.push([seq, next]),
    activate: () => {},
    take: () => {},
    leaseLost: () => {},
  };
  const l = new ClusterLink(deps, { sweepMs: 1000 });
  await l.joined;
  hints!.events('s', stored.at(-1)!);
  await new Promise((resolve) => setTimeout(resolve, 10));
  l.stop();
  return seen;
}

describe('C8 on a cluster: a tail further behind than the store keeps', () => {
  it('is told, not handed the newer events as if nothing were missing', async () => {
    const seen = await link(3, [10, 11, 12]);
    expect(seen.delivered).toEqual([]);
    expect(seen.behind).toEqual([[3, 10]]);
  });

  it('a tail the store still covers gets every event', async () => {
    const seen = await link(3, [2, 3, 4, 5]);
    expect(seen.delivered).toEqual([4, 5]);
    expect(seen.behind).toEqual([]);
  });
});

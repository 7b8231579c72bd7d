/**
 * Attack on C20 (issue 19), severity MEDIUM.
 *
 * On a cluster the leases are judged by the database's clock (`lease_until > now()`), but
 * schedules by each node's own: a due time is the setting node's `now() + afterMs`, and
 * `PostgresStore.dueSessions(before)` / the Waker compare it with the firing node's clock.
 * Any session no live node owns — every passivated session — is fireable by every node,
 * so one node whose clock runs ahead (a VM resumed with a stale clock, NTP not yet synced,
 * a wrong time zone setting turned into epoch ms) fires the whole cluster's released
 * schedules early: here an hour early. "Never before it was due" (README, issue 19's soak
 * checker) holds only if every node's clock is right; the cluster already has one
 * clock every node agrees on — the database's — and could compare due times with it.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createRuntime, type Clock, type Runtime, type Turn } from '../src/index.ts';
import { PostgresStore } from '../src/postgres.ts';
import { PgFixture, pgUrl } from './postgres-helpers.ts';

let pg: PgFixture;
let schema: string;
const runtimes: Runtime[] = [];
beforeEach(() => {
  pg = new PgFixture();
  schema = pg.schema();
});
afterEach(async () => {
  await Promise.all(runtimes.splice(0).map((r) => r.shutdown({ drainMs: 0 }).catch(() => {})));
  await pg.cleanup();
});

/** The real clock, off by `skewMs`. */
function skewed(skewMs: number): Clock & { now(): number } {
  return {
    setTimeout: (fn: (...args: unknown[]) => void, ms: number) => setTimeout(fn, ms),
    clearTimeout: (id: unknown) => clearTimeout(id as ReturnType<typeof setTimeout>),
    now: () => Date.now() + skewMs,
  };
}

function node(nodeId: string, skewMs = 0) {
  const store = new PostgresStore({ url: pgUrl(), schema, nodeId, leaseTtlMs: 600, renewMs: 150 });
  const ran: string[] = [];
  const agent = (turn: Turn) => {
    ran.push(...turn.inputs.map((i) => i.id));
    return 'ok';
  };
  const runtime = createRuntime({ agent, store, debounceMs: 0, clusterSweepMs: 100, clock: skewed(skewMs), onError: () => {} });
  runtimes.push(runtime);
  return { runtime, ran };
}

describe('C20 on a cluster with a node whose clock is wrong', () => {
  it('C20: a node whose clock is an hour ahead does not fire, an hour early, a schedule another node set', async () => {
    const a = node('a');
    await a.runtime.open('s');
    const { dueAt } = await a.runtime.schedule('s', { id: 'in-an-hour', afterMs: 3_600_000 });
    await a.runtime.shutdown({ drainMs: 0 }); // released: any node may fire it when due
    const b = node('b', 3_600_000 + 5_000);
    await new Promise((resolve) => setTimeout(resolve, 1500)); // b's waker polls every 100 ms
    expect(Date.now()).toBeLessThan(dueAt); // by the database's and a's clock, it is not due for an hour
    expect(b.ran).toEqual([]);
  });
});

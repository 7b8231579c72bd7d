/**
 * Attack on C20 (issue 19), severity MEDIUM.
 *
 * protocol.md: "A client may schedule a wake-up of its own session … once per due time,
 * across passivation, restarts and nodes." On a cluster, a client's `schedule` frame only
 * works if its connection landed on the node that owns the session: `Scheduling.#with`
 * answers every other node with `INVALID_MESSAGE` ("runs on node a: schedule it there").
 * Inputs, answers and approval decisions sent through a non-owner are mailed to the owner
 * (C17, C19); schedule frames are not, and an AEP client behind a load balancer cannot
 * pick its node. Two clients of one session on two gateways: the one on the owner may
 * schedule, the other may not — and protocol.md does not say so.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PostgresStore } from '../../src/postgres.ts';
import { PgFixture, pgUrl } from '../postgres-helpers.ts';
import { Client, startGateway } from './client.ts';

let pg: PgFixture;
let schema: string;
const closers: (() => Promise<void>)[] = [];
beforeEach(() => {
  pg = new PgFixture();
  schema = pg.schema();
});
afterEach(async () => {
  for (const close of closers.splice(0)) await close().catch(() => {});
  await pg.cleanup();
});

async function gatewayNode(nodeId: string) {
  const store = new PostgresStore({ url: pgUrl(), schema, nodeId, leaseTtlMs: 600, renewMs: 150 });
  const g = await startGateway({ runtime: { store, clusterSweepMs: 100 } });
  closers.push(() => g.gateway.close());
  return g;
}

describe('C20 schedule frames on a cluster', () => {
  // Not built: schedules are not mail (docs/protocol.md says so). The frame is refused by name,
  // naming the owner, never dropped or half-done — and the input beside it still works.
  it('C20: a schedule frame sent through a node that does not own the session is refused by name (schedules are not mailed), an input through it is', async () => {
    const a = await gatewayNode('a');
    const b = await gatewayNode('b');
    const x = await Client.attach(a.url, { session_id: 'shared' });
    const hi = x.client.send('input', { content: 'hi' });
    await x.client.until((f) => f.event.type === 'done' && (f.event.data.input_ids as string[]).includes(hi));
    const y = await Client.attach(b.url, { session_id: 'shared' });
    const input = y.client.send('input', { content: 'through b' }); // mailed to a: fine
    await y.client.until((f) => f.event.type === 'done' && (f.event.data.input_ids as string[]).includes(input));
    const frame = y.client.send('schedule', { id: 'later', after_ms: 3_600_000 });
    const answer = await y.client.until(
      (f) => (f.event.type === 'schedule.ack' && f.event.data.client_message_id === frame) || (f.event.type === 'error' && f.event.data.event_id === frame),
    );
    expect(answer.event).toMatchObject({ type: 'error', data: { code: 'INVALID_MESSAGE', message: expect.stringContaining('runs on node "a"') } });
    expect(await a.runtime.schedules('shared')).toEqual([]);
    await x.client.close();
    await y.client.close();
  });
});

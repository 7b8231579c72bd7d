import { afterEach, describe, expect, it } from 'vitest';
import { createRuntime, type SessionEvent } from '../src/index.ts';
import { PgFixture, pgUrl, waitFor } from './postgres-helpers.ts';
import { PostgresStore } from '../src/postgres.ts';

let pg: PgFixture | undefined;
afterEach(async () => {
  await pg?.cleanup();
  pg = undefined;
});

describe('PostgresStore when the server ends its connections', () => {
  it('C12, C16: pool connections terminated under load (pg_terminate_backend) mid-transaction: the process lives on, no durable input is lost or published twice', async () => {
    pg = new PgFixture();
    const schema = pg.schema();
    const store = new PostgresStore({ url: pgUrl(), schema, nodeId: 'victim' });
    const ran = new Map<string, number>();
    const runtime = createRuntime({
      store,
      debounceMs: 0,
      agent: async (turn) => {
        for (const input of turn.inputs) ran.set(input.id, (ran.get(input.id) ?? 0) + 1);
        return 'ok';
      },
      onError: () => {},
      // The client loses a query now and then with its connection: such a read is given up
      // soon (the default is 30 s), so the sessions waiting for it are retried within the test.
      loadTimeoutMs: 2_000,
    });
    const events: SessionEvent[] = [];
    runtime.events$.subscribe((e) => events.push(e));
    const durable: string[] = [];
    let stop = false;
    let n = 0;
    // Many sessions committing all the time, so terminations land inside transactions.
    const load = Array.from({ length: 100 }, async (_, s) => {
      while (!stop) {
        const id = `m${n++}`;
        const receipt = await runtime.send(`s${s}`, { id, content: 'x' });
        if (receipt.status === 'accepted' && receipt.durability === 'durable') durable.push(id);
        // Past an outage's first refusals, not a busy loop: the runtime's retries get their turn.
        await new Promise((resolve) => setTimeout(resolve, receipt.status === 'rejected' ? 20 : 1));
      }
    });
    await waitFor(() => durable.length > 100, 'the load to be under way');
    let kills = 0;
    for (const until = Date.now() + 2_500; Date.now() < until; ) {
      const ended = await pg.admin`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'baton victim'`;
      kills += ended.length;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    stop = true;
    await Promise.all(load);
    expect(kills).toBeGreaterThan(5);
    expect(durable.length).toBeGreaterThan(0);
    // Every durable-acked input runs, once (the runtime recovers from what was committed).
    const done = () => new Set(events.flatMap((e) => (e.type === 'done' ? e.data.input_ids : [])));
    await waitFor(() => durable.every((id) => done().has(id)), 'every durable input to be done', 40_000);
    // Published once: every durable input is in exactly one done. (The agent may have been
    // called twice for it: a turn whose closing commit failed runs again after recovery, and
    // only the second run's output is ever seen — C16's at-least-once for the agent's work.)
    const dones = events.flatMap((e) => (e.type === 'done' ? e.data.input_ids : []));
    expect(durable.filter((id) => dones.filter((d) => d === id).length !== 1)).toEqual([]);
    expect(durable.filter((id) => (ran.get(id) ?? 0) === 0)).toEqual([]);
    // No session is left out of service (a lost read used to hold one, and the retry, for good).
    await waitFor(() => runtime.health().failedSessions === 0, 'every session back in service', 10_000);
    expect(await runtime.send('after', { id: 'after-1', content: 'x' })).toMatchObject({ status: 'accepted', durability: 'durable' });
    await runtime.shutdown({ drainMs: 100 });
  }, 90_000);
});

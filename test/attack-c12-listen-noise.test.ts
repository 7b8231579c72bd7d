import type { Sql } from 'postgres';
import { afterEach, describe, expect, it } from 'vitest';
import type { HintListener } from '../src/runtime/postgres-listener.ts';
import { PgFixture, waitFor, recordingListener } from './postgres-helpers.ts';

let pg: PgFixture;
let listener: HintListener;
afterEach(async () => {
  await listener?.stop();
  await pg?.cleanup();
});

/** A pool for the pings that fails or sends each one as the test says. */
function scriptedPool(real: Sql) {
  const pending: { send: () => void; reject: (error: Error) => void }[] = [];
  const pool = ((...args: Parameters<Sql>) =>
    new Promise((resolve, reject) => pending.push({ send: () => resolve((real as unknown as (...a: Parameters<Sql>) => Promise<unknown>)(...args)), reject }))) as unknown as Sql;
  return { pool, pending };
}

describe('HintListener: reports are news, not noise', () => {
  it('C12: a server that stays away is reported once, not at every check; a ping that fails as the listener stops is not reported at all', async () => {
    pg = new PgFixture();
    const channel = pg.schema();
    const { pool, pending } = scriptedPool(pg.admin);
    const made = recordingListener({ channel, pool, checkMs: 5 });
    listener = made.listener;
    const { reported, counts } = made;
    await listener.start();
    // Twenty checks in a row whose ping fails (the server away: a pool that cannot connect).
    for (let i = 0; i < 20; i++) {
      await waitFor(() => pending.length > 0, `ping ${i}`);
      pending.shift()!.reject(new Error('connect ECONNREFUSED'));
    }
    expect(reported).toHaveLength(1);
    // The server back, then away again: a new outage, a new report.
    await waitFor(() => pending.length > 0, 'a ping');
    pending.shift()!.send();
    await waitFor(() => pending.length > 0, 'a ping');
    pending.shift()!.reject(new Error('connect ECONNREFUSED'));
    await waitFor(() => pending.length > 0, 'a ping');
    expect(reported).toHaveLength(2);
    // As at store.close(): the pool ends under the ping in flight.
    await listener.stop();
    pending.shift()!.reject(new Error('write CONNECTION_DESTROYED'));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(reported).toHaveLength(2);
    expect(counts.relistened).toBe(0);
  });
});

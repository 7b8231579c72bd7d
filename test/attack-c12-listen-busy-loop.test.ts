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

describe('HintListener under load: no false alarms', () => {
  it('C12: an event loop busy for longer than a check right after each ping (a long step, a GC pause) rebuilds nothing: the ping that came back meanwhile is read before it is judged missing', async () => {
    pg = new PgFixture();
    const channel = pg.schema();
    const checkMs = 20;
    let pings = 0;
    // The pool as the listener sees it; once a ping has committed, the loop is busy for 3 checks.
    const pool = (async (...args: Parameters<Sql>) => {
      const rows = await (pg.admin as unknown as (...a: Parameters<Sql>) => Promise<unknown>)(...args);
      pings++;
      setImmediate(() => {
        const until = Date.now() + 3 * checkMs;
        while (Date.now() < until);
      });
      return rows;
    }) as unknown as Sql;
    const made = recordingListener({ channel, pool, checkMs });
    listener = made.listener;
    const { reported, counts } = made;
    await listener.start();
    await waitFor(() => pings >= 30, '30 pings');
    // Without reading first: about 13 rebuilds in 30 checks, each a new connection and a re-announce.
    expect(listener.rebuilds).toBe(0);
    expect(counts.relistened).toBe(0);
    expect(reported).toEqual([]);
  });
});

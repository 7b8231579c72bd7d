import postgres from 'postgres';
import { afterEach, describe, expect, it } from 'vitest';
import { HintListener } from '../src/runtime/postgres-listener.ts';
import { Heard, PgFixture, pgUrl, waitFor, recordingListener } from './postgres-helpers.ts';
import { TcpProxy } from './tcp-proxy.ts';

let pg: PgFixture;
let proxy: TcpProxy;
let listener: HintListener;
afterEach(async () => {
  await listener?.stop();
  await proxy?.close();
  await pg?.cleanup();
});

describe('HintListener: LISTEN that goes deaf is taken anew', () => {
  it('C12: a LISTEN connection that falls silent without closing (half-open) is found by the ping and replaced: hints arrive again, and what was missed is re-announced', async () => {
    pg = new PgFixture();
    const channel = pg.schema();
    const url = new URL(pgUrl());
    proxy = new TcpProxy({ host: url.hostname, port: Number(url.port || 5432) });
    url.port = String(await proxy.listen());
    const app = `listener ${process.pid}`;
    // Through the proxy; keepalive (60 s) would take far longer than this test to notice.
    const made = recordingListener({ channel, pool: pg.admin, checkMs: 100, url: url.href, applicationName: app });
    listener = made.listener;
    const { heard, reported, counts } = made;
    await listener.start();
    await pg.admin`SELECT pg_notify(${channel}, 'inbox:before')`;
    await waitFor(() => heard.inboxes.includes('before'), 'the first hint');
    expect(listener.rebuilds).toBe(0);
    const backends = async () => (await pg.admin<{ pid: number }[]>`SELECT pid FROM pg_stat_activity WHERE application_name = ${app}`).map((b) => b.pid);
    const [frozen] = await backends();

    expect(proxy.freeze()).toBe(1);
    await pg.admin`SELECT pg_notify(${channel}, 'inbox:frozen')`;
    // Sent until one is heard: those sent before the new LISTEN are lost, as they would be.
    let n = 0;
    await waitFor(async () => {
      await pg.admin`SELECT pg_notify(${channel}, ${`inbox:after-${n++}`})`;
      return heard.inboxes.some((id) => id.startsWith('after-'));
    }, 'a hint on the new connection', 5_000);
    expect(heard.inboxes).not.toContain('frozen');
    expect(listener.rebuilds).toBe(1);
    // The store re-announces its waiting mail on this call: hints lost while deaf are not waited for until the sweep.
    expect(counts.relistened).toBe(1);
    expect(reported).toEqual([]);

    // The frozen connection is still open at the server (it cannot know); stop ends the new one.
    const open = await backends();
    expect(open).toHaveLength(2);
    expect(open).toContain(frozen);
    await listener.stop();
    await waitFor(async () => (await backends()).join() === String(frozen), 'the listener to leave the server');
  });

  it('C12: no false alarm: a listener that hears its pings is never rebuilt, and pings are not handed on as hints', async () => {
    pg = new PgFixture();
    const channel = pg.schema();
    const heard = new Heard();
    listener = new HintListener({
      channel,
      connect: (handlers) => postgres(pgUrl(), { max: 1, fetch_types: false, onnotice: () => {}, ...handlers }),
      pool: pg.admin,
      hints: heard,
      relistened: () => expect.unreachable('relistened without a drop'),
      report: (error) => expect.unreachable(String(error)),
      checkMs: 20,
    });
    await listener.start();
    // Twenty or so checks: hints sent between them all arrive, in order.
    for (let i = 0; i < 20; i++) {
      await pg.admin`SELECT pg_notify(${channel}, ${`inbox:s${i}`})`;
      await waitFor(() => heard.inboxes.length === i + 1, `hint ${i}`);
    }
    expect(heard.inboxes).toEqual(Array.from({ length: 20 }, (_, i) => `s${i}`));
    expect(heard.committed).toEqual([]);
    expect(listener.rebuilds).toBe(0);
  });
});

import { afterEach, describe, expect, it } from 'vitest';
import type { StepRecord } from '../src/index.ts';
import { PgFixture, pgUrl, waitFor } from './postgres-helpers.ts';
import { TcpProxy } from './tcp-proxy.ts';

let pg: PgFixture;
let proxy: TcpProxy;
afterEach(async () => {
  await pg?.cleanup();
  await proxy?.close();
});

const step = (sessionId: string, seq: number): StepRecord => ({
  sessionId,
  events: [{ sessionId, seq, type: 'state', data: { state: 'idle' } }],
  consumed: [],
  session: { sessionId, kind: 'agent', snapshot: { seq }, seq },
});

describe('PostgresStore: a LISTEN connection gone half-open', () => {
  it('C12: a node whose LISTEN connection falls silent without closing (only that one) hears hints again within a few checks, and the mail delivered meanwhile is re-announced to it', async () => {
    pg = new PgFixture();
    const schema = pg.schema();
    const url = new URL(pgUrl());
    proxy = new TcpProxy({ host: url.hostname, port: Number(url.port || 5432) });
    url.port = String(await proxy.listen());
    const a = await pg.node(schema, { url: url.href, nodeId: 'a', leaseTtlMs: 3_000, renewMs: 100 });
    const b = await pg.node(schema, { nodeId: 'b', leaseTtlMs: 3_000, renewMs: 100 });
    await a.store.load('s', { recent: 0, history: 0 });
    await a.store.commit([step('s', 1)]);
    const [listen] = await pg.admin<{ client_port: number }[]>`
      SELECT client_port FROM pg_stat_activity WHERE application_name = 'baton a' AND query ILIKE ${`listen "${schema}"`}`;
    expect(proxy.freeze((port) => port === listen!.client_port)).toBe(1);
    await b.store.deliver('s', { kind: 'input', entry: { id: 'm1', content: 'sent while a is deaf' } });
    // Its hint is lost on the frozen connection; the re-announce after the new LISTEN names the session.
    await waitFor(() => a.heard.inboxes.includes('s'), 'the waiting mail re-announced', 5_000);
    await b.store.deliver('t', { kind: 'input', entry: { id: 'm2', content: 'x' } });
    await waitFor(() => a.heard.inboxes.includes('t'), 'a hint on the new LISTEN', 2_000);
    expect(a.heard.lost).toEqual([]);
  });
});

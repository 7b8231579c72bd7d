import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StaleEpochError, type StepRecord } from '../src/index.ts';
import { PostgresStore } from '../src/postgres.ts';
import { Heard, PgFixture, pgUrl, waitFor } from './postgres-helpers.ts';

const step = (sessionId: string, seq: number, extra: Partial<StepRecord> = {}): StepRecord => ({
  sessionId,
  events: [{ sessionId, seq, type: 'state', data: { state: 'idle' } }],
  consumed: [],
  session: { sessionId, kind: 'agent', snapshot: { seq }, seq },
  ...extra,
});
const slow = { leaseTtlMs: 60_000, renewMs: 30_000 };

let pg: PgFixture;
let schema: string;
beforeEach(() => {
  pg = new PgFixture();
  schema = pg.schema();
});
afterEach(() => pg.cleanup());

const nodes = () => pg.admin<{ id: string; incarnation: number }[]>`SELECT id, incarnation FROM ${pg.admin(schema)}.nodes ORDER BY id`;

describe('PostgresStore hints (LISTEN/NOTIFY)', () => {
  it('a delivery hints the inbox and a commit hints its last seq, to every node', async () => {
    const a = await pg.node(schema, { nodeId: 'a', ...slow });
    const b = await pg.node(schema, { nodeId: 'b', ...slow });
    await a.store.deliver('chat:42', { kind: 'input', entry: { id: 'm1', content: 'hi' } });
    await waitFor(() => b.heard.inboxes.includes('chat:42'), 'the inbox hint');
    await a.store.commit([step('chat:42', 1)]);
    await a.store.commit([{ sessionId: 'chat:42', events: [2, 3].map((seq) => step('chat:42', seq).events[0]!), consumed: ['m1'] }]);
    await waitFor(() => b.heard.committed.some(([id, seq]) => id === 'chat:42' && seq === 3), 'the events hint');
    expect(b.heard.committed).toEqual([['chat:42', 1], ['chat:42', 3]]);
    // A duplicate delivery and a refused commit hint nothing.
    await a.store.deliver('chat:42', { kind: 'input', entry: { id: 'm1', content: 'hi' } });
    await expect(b.store.commit([step('chat:42', 9)])).rejects.toThrow(StaleEpochError);
    await a.store.deliver('chat:42', { kind: 'input', entry: { id: 'm2', content: 'marker' } });
    await waitFor(() => b.heard.inboxes.length === 2, 'the marker hint');
    expect(b.heard.committed).toHaveLength(2);
  });

  it('hints arrive again after the LISTEN connection is killed: the client listens again by itself', async () => {
    const a = await pg.node(schema, { nodeId: 'a', ...slow });
    const b = await pg.node(schema, { nodeId: 'b', ...slow });
    const [listener] = await pg.admin<{ pid: number }[]>`
      SELECT pid FROM pg_stat_activity WHERE application_name = 'baton b' AND query ILIKE ${`listen "${schema}"`}`;
    expect(listener).toBeDefined();
    await pg.admin`SELECT pg_terminate_backend(${listener!.pid})`;
    // Hints sent while it reconnects are lost (hence the poll fallback): send until one arrives.
    let n = 0;
    await waitFor(async () => {
      await a.store.deliver('s', { kind: 'input', entry: { id: `m${n++}`, content: 'x' } });
      return b.heard.inboxes.length > 0;
    }, 'a hint after the reconnect');
    const [again] = await pg.admin<{ pid: number }[]>`
      SELECT pid FROM pg_stat_activity WHERE application_name = 'baton b' AND query ILIKE ${`listen "${schema}"`}`;
    expect(again?.pid).not.toBe(listener!.pid);
  });
});

describe('PostgresStore across a server outage', () => {
  // The outage is the test's own database refusing every connection and dropping those it
  // has — what a restart looks like to a client — on whichever server the suite uses (a
  // throwaway embedded server cannot be run as root from a directory only root may enter).
  it('comes back within about a second: the pool reconnects, LISTEN returns, a lease that outlived the outage holds', async () => {
    const database = `baton_outage_${process.pid}_${Date.now().toString(36)}`;
    await pg.admin.unsafe(`CREATE DATABASE ${database}`);
    const url = new URL(pgUrl());
    url.pathname = `/${database}`;
    const nodes = ['a', 'b'].map((nodeId) => new PostgresStore({ url: url.href, schema: 'r', nodeId, leaseTtlMs: 8_000, renewMs: 200 }));
    const outage = async (on: boolean) => {
      await pg.admin.unsafe(`ALTER DATABASE ${database} WITH ALLOW_CONNECTIONS ${on ? 'false' : 'true'}`);
      if (on) await pg.admin`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = ${database}`;
    };
    try {
      const heard = new Heard();
      await nodes[0]!.join(heard);
      await nodes[1]!.join(new Heard());
      await outage(true);
      // The outage itself (nothing to poll): long enough that the client's default backoff would stay away for many seconds.
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      await outage(false);
      const back = Date.now();
      let n = 0;
      await waitFor(async () => {
        await nodes[1]!.deliver('s', { kind: 'input', entry: { id: `m${n++}`, content: 'x' } }).catch(() => {});
        return heard.inboxes.length > 0;
      }, 'a hint after the outage', 4_000);
      expect(Date.now() - back).toBeLessThan(3_000);
      expect(heard.lost).toEqual([]);
      await nodes[0]!.checkOwner();
    } finally {
      await Promise.all(nodes.map((node) => node.close()));
      await pg.admin.unsafe(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    }
  });
});

describe('PostgresStore node lease', () => {
  it('renews on the database clock; a lease row deleted behind its back is lost: leaseLost, claims forgotten, a new incarnation joins', async () => {
    const a = await pg.node(schema, { nodeId: 'a', leaseTtlMs: 1_000, renewMs: 50 });
    const first = a.store.node.incarnation;
    expect(a.store.selfFenced()).toBe(false);
    await a.store.commit([step('s', 1)]);
    const [before] = await pg.admin<{ until: Date }[]>`SELECT lease_until AS until FROM ${pg.admin(schema)}.nodes`;
    await waitFor(async () => (await pg.admin<{ until: Date }[]>`SELECT lease_until AS until FROM ${pg.admin(schema)}.nodes`)[0]!.until > before!.until, 'a renewal');
    await pg.admin`DELETE FROM ${pg.admin(schema)}.nodes WHERE id = 'a'`;
    await waitFor(() => a.heard.lost.length === 1, 'leaseLost');
    expect(a.heard.lost[0]).toBeInstanceOf(StaleEpochError);
    expect((a.heard.lost[0] as StaleEpochError).sessionId).toBeUndefined(); // the whole node stops, not one session
    expect(a.heard.lost[0]!.message).toMatch(/node a \(incarnation \d+\) lost its cluster lease: its lease row is gone or expired/);
    await waitFor(async () => (await nodes())[0]?.incarnation, 'the rejoin');
    expect(a.store.node.incarnation).toBeGreaterThan(first);
    expect(await nodes()).toEqual([{ id: 'a', incarnation: a.store.node.incarnation }]);
    // The claim of the lost incarnation is gone; the session is claimed again, with a new epoch.
    await expect(a.store.commit([step('s', 2)])).rejects.toThrow(StaleEpochError);
    await a.store.load('s', { recent: 0, history: 0 });
    await a.store.commit([step('s', 2)]);
    await a.store.checkOwner();
  });

  it('a lease expired behind its back is never revived: lost, then joined again', async () => {
    const a = await pg.node(schema, { nodeId: 'a', leaseTtlMs: 1_000, renewMs: 50 });
    const first = a.store.node.incarnation;
    await pg.admin`UPDATE ${pg.admin(schema)}.nodes SET lease_until = now() - interval '1 second'`;
    await waitFor(() => a.heard.lost.length === 1, 'leaseLost');
    await waitFor(() => a.store.node.incarnation > first && !a.store.selfFenced(), 'the rejoin');
  });

  it('checkOwner rejects with StaleEpochError once the database says the lease is gone', async () => {
    const a = await pg.node(schema, { nodeId: 'a', ...slow });
    await a.store.checkOwner();
    await pg.admin`DELETE FROM ${pg.admin(schema)}.nodes`;
    await expect(a.store.checkOwner()).rejects.toThrow(StaleEpochError);
    expect(a.heard.lost).toHaveLength(1);
    await waitFor(async () => (await nodes()).length === 1, 'the rejoin');
  });

  it('fences itself by its own clock when renewals stop answering, before the others give up on it', async () => {
    const a = await pg.node(schema, { nodeId: 'a', leaseTtlMs: 400, renewMs: 100 });
    // Hold the lease row: renewals now hang (as on a partitioned network) and never confirm.
    const blocker = pg.admin.begin(async (tx) => {
      await tx`SELECT 1 FROM ${tx(schema)}.nodes WHERE id = 'a' FOR UPDATE`;
      await waitFor(() => a.store.selfFenced(), 'selfFenced', 5_000);
      await waitFor(() => a.heard.lost.length === 1, 'leaseLost by its own clock', 5_000);
    });
    await blocker;
    expect(a.heard.lost[0]!.message).toMatch(/could not renew its lease within 400 ms/);
    await waitFor(() => !a.store.selfFenced(), 'the rejoin');
  });
});

describe('PostgresStore lease under load', () => {
  it('renews on a connection of its own: a pool busy with slow statements does not cost the node its lease', async () => {
    const a = await pg.node(schema, { nodeId: 'a', leaseTtlMs: 500, renewMs: 100, max: 1 });
    // Every statement of the pool now waits (its one connection is blocked for longer than the TTL).
    const blocker = pg.admin.begin(async (tx) => {
      await tx`LOCK TABLE ${tx(schema)}.sessions IN ACCESS EXCLUSIVE MODE`;
      const busy = a.store.sessionIds(10);
      const queued = a.store.sessionIds(10);
      const until = Date.now() + 1200;
      while (Date.now() < until) {
        expect(a.store.selfFenced()).toBe(false);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      return [busy, queued];
    });
    await Promise.all(await blocker);
    expect(a.heard.lost).toEqual([]);
  });
});

describe('PostgresStore node ids (C17)', () => {
  const quick = { leaseTtlMs: 600, renewMs: 150 };

  it('C17: a node id whose holder is alive and renewing is refused at join, and the holder keeps its lease', async () => {
    const holder = await pg.node(schema, { nodeId: 'n', ...quick });
    const second = pg.store(schema, { nodeId: 'n', ...quick });
    await expect(second.join(new Heard())).rejects.toThrow(/node id "n" is held by another live process/);
    expect(holder.store.selfFenced()).toBe(false);
    expect(await nodes()).toEqual([{ id: 'n', incarnation: holder.store.node.incarnation }]);
  });

  it('C17: a node restarted after a crash waits out its predecessor\'s lease (at most a TTL), then joins under a new incarnation', async () => {
    const crashed = await pg.node(schema, { nodeId: 'n', ...quick });
    const before = crashed.store.node.incarnation;
    // As after kill -9: nobody renews the lease, nobody leaves.
    await crashed.store.close();
    const restarted = pg.store(schema, { nodeId: 'n', ...quick });
    const started = Date.now();
    await restarted.join(new Heard());
    expect(Date.now() - started).toBeLessThan(quick.leaseTtlMs + 1_000);
    expect(restarted.node.incarnation).toBeGreaterThan(before);
    expect(await nodes()).toEqual([{ id: 'n', incarnation: restarted.node.incarnation }]);
  });
});

/**
 * Attack on C20 (issue 19), severity MEDIUM (payload), LOW (ids).
 *
 * PostgresStore reads a session's schedules back with
 * `json_strip_nulls(json_build_object(..., 'payload', payload))` (postgres-reads.ts).
 * `json_strip_nulls` is recursive: it deletes every object field whose value is null at any
 * depth — inside the payload too. A schedule set with `{ reply_to: null, text: 'hi' }`
 * comes back after passivation, a restart or on another node as `{ text: 'hi' }`, and a
 * payload that is `null` itself comes back as no payload (the fire's content turns from
 * `null` to ``). The payload is the client's data: the store must give back what it took.
 * The memory store and SQLite keep it.
 *
 * Ids: schedule ids are any string of 1–256 UTF-16 units. The stores cannot keep every
 * such string — PostgreSQL `key()` turns NUL and lone surrogates into U+FFFD, SQLite
 * mangles lone surrogates into three U+FFFD — so after a restart the session's schedule
 * has another id than the one it was set with: `cancelSchedule(id)` with the id the client
 * used answers `false`, and the recurring schedule keeps firing. Refusing such ids (as
 * not well-formed) at `parseSchedule` would keep the id the client knows.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createRuntime, type Runtime } from '../src/index.ts';
import { PostgresStore } from '../src/postgres.ts';
import { SqliteStore } from '../src/sqlite.ts';
import { pgPerTest, pgUrl } from './postgres-helpers.ts';
import { settle, testRuntime } from './helpers.ts';

const fx = pgPerTest(0);
const dir = mkdtempSync(join(tmpdir(), 'baton-attack-c20-ids-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function pgRuntime(nodeId: string): Runtime {
  const store = new PostgresStore({ url: pgUrl(), schema: fx.schema, nodeId, leaseTtlMs: 600, renewMs: 150 });
  const runtime = createRuntime({ agent: () => 'ok', store, debounceMs: 0, clusterSweepMs: 100, onError: () => {} });
  fx.runtimes.push(runtime);
  return runtime;
}

describe('C20 schedules as PostgreSQL gives them back', () => {
  it('C20: a payload with null fields comes back from the store as it was set', async () => {
    const a = pgRuntime('a');
    await a.open('s');
    const payload = { reply_to: null, text: 'hi', nested: { keep: null } };
    await a.schedule('s', { id: 'with-nulls', afterMs: 3_600_000, payload });
    await a.schedule('s', { id: 'null', afterMs: 3_600_000, payload: null });
    await a.shutdown({ drainMs: 0 }); // passivated with the process: the store keeps it
    const b = pgRuntime('b');
    const back = await b.schedules('s');
    expect(back.find((s) => s.id === 'with-nulls')?.payload).toEqual(payload);
    expect(back.find((s) => s.id === 'null')).toHaveProperty('payload', null);
  });

  // Fixed by refusing such ids: the stores key rows by them, and NUL or a lone surrogate comes back changed.
  it('C20: an id a store cannot keep as it is (NUL, a lone surrogate) is refused, not changed behind the caller\'s back (PostgreSQL)', async () => {
    const a = pgRuntime('a');
    await a.open('s');
    await expect(a.schedule('s', { id: 'nul\u0000id', every: 60_000 })).rejects.toMatchObject({ code: 'INVALID_MESSAGE' });
    expect(await a.schedules('s')).toEqual([]);
  });
});

describe('C20 schedule ids as SQLite gives them back', () => {
  it('C20: an id a store cannot keep as it is is refused (SQLite); a paired surrogate is kept', async () => {
    const path = join(dir, 'ids.db');
    const a = testRuntime({ agent: () => 'ok', debounceMs: 0, store: new SqliteStore(path) });
    await a.runtime.open('s');
    await expect(a.runtime.schedule('s', { id: 'lone\uD800', every: 60_000 })).rejects.toMatchObject({ code: 'INVALID_MESSAGE' });
    await a.runtime.schedule('s', { id: 'emoji \u{1F600}', every: 60_000 });
    const b = testRuntime({ agent: () => 'ok', debounceMs: 0, store: new SqliteStore(path) });
    await settle();
    expect((await b.runtime.schedules('s')).map((s) => s.id)).toEqual(['emoji \u{1F600}']);
    expect(await b.runtime.cancelSchedule('s', 'emoji \u{1F600}')).toBe(true);
  });
});

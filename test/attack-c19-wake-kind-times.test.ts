/**
 * Attack on `SessionKind.wakeAt` (commit 41cf121), severity MEDIUM for a kind of one's own
 * on PostgreSQL.
 *
 * The host stored whatever a kind's `wakeAt` returned as the due time of its wake. A kind
 * that computes it as `Math.min(...deadlines)` returns Infinity when it has none; a clock in
 * fractional ms gives a fraction. PostgreSQL keeps due times as bigint and refused both —
 * and with them every commit of the session: it could not even be opened ("the store
 * failed"). SQLite kept Infinity, a schedule that never comes due and keeps the session out
 * of retention for good. A wake is a whole ms within what a Date holds; anything else is
 * no wake.
 */
import { describe, expect, it } from 'vitest';
import { setup } from 'xstate';
import { createRuntime, type SessionKind } from '../src/index.ts';
import { PostgresStore } from '../src/postgres.ts';
import { SqliteStore } from '../src/sqlite.ts';
import { stored } from './helpers.ts';
import { pgPerTest, pgUrl, waitFor } from './postgres-helpers.ts';

const machine = setup({}).createMachine({ id: 'plain', initial: 'idle', states: { idle: { tags: ['quiescent'] } } });
const kindWaking = (at: number): SessionKind => ({ machine, input: () => ({}), wakeAt: () => at });
const cases: [number, number | undefined][] = [
  [Infinity, undefined],
  [NaN, undefined],
  [1500.5, 1500],
  [1e300, 8.64e15],
];

const fx = pgPerTest(10);

describe('C19 the wake time a kind names', () => {
  for (const [store, open] of [
    ['SQLite', () => new SqliteStore(':memory:')],
    ['PostgreSQL', () => new PostgresStore({ url: pgUrl(), schema: fx.schema, nodeId: 'a' })],
  ] as const) {
    it(`C19: ${store}: a wakeAt of Infinity or NaN is no wake, a fraction the whole ms, past a Date's range the last one; the session opens and is stored`, async () => {
      const s = open();
      const errors: unknown[] = [];
      const kinds = Object.fromEntries(cases.map(([at], i) => [`k${i}`, kindWaking(at)]));
      const runtime = createRuntime({ agent: async () => 'ok', kinds, store: s, onError: (error) => errors.push(error) });
      fx.runtimes.push(runtime);
      for (const [i, [, due]] of cases.entries()) {
        await expect(runtime.open(`p${i}`, { kind: `k${i}` })).resolves.toMatchObject({ kind: `k${i}` });
        await runtime.status(`p${i}`);
        const schedules = (await stored(s, `p${i}`))?.schedules ?? [];
        expect(schedules).toEqual(due === undefined ? [] : [{ id: 'baton:wake', dueAt: due }]);
      }
      expect(errors).toEqual([]);
    });
  }

  it('C19: a wake stored for a kind that names none now (a former version did) is cleared by its next step, not left due for good', async () => {
    const store = new SqliteStore(':memory:');
    const before = createRuntime({ agent: async () => 'ok', kinds: { k: kindWaking(5_000) }, store });
    await before.open('p', { kind: 'k' });
    await before.status('p');
    expect((await stored(store, 'p'))?.schedules).toEqual([{ id: 'baton:wake', dueAt: 5_000 }]);
    await before.shutdown({ drainMs: 10 });
    const after = createRuntime({ agent: async () => 'ok', kinds: { k: { machine, input: () => ({}) } }, store, idleTimeoutMs: 10 });
    fx.runtimes.push(after);
    await after.open('p', { kind: 'k' });
    // Passivated for idleness: its last step writes what the kind names now, no wake.
    await waitFor(() => after.sessionIds().length === 0, 'the session to passivate', 2000);
    expect((await stored(store, 'p'))?.schedules).toEqual([]);
  });

  it('C19: a wakeAt that throws is user code: reported, the session opens, is stored and stays in service', async () => {
    const store = new SqliteStore(':memory:');
    const errors: unknown[] = [];
    const thrower: SessionKind = { machine, input: () => ({}), wakeAt: () => { throw new Error('wakeAt broke'); } };
    const runtime = createRuntime({ agent: async () => 'ok', kinds: { k: thrower }, store, onError: (error) => errors.push(error) });
    fx.runtimes.push(runtime);
    await expect(runtime.open('p', { kind: 'k' })).resolves.toMatchObject({ kind: 'k' });
    await runtime.status('p');
    expect(await stored(store, 'p')).toMatchObject({ session: { kind: 'k' }, schedules: [] });
    expect(runtime.sessionIds()).toEqual(['p']);
    expect(errors).toEqual([expect.objectContaining({ message: 'wakeAt broke' })]);
  });
});

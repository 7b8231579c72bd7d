import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryStore, StaleEpochError, type LoadedSession, type LoadOptions, type Store } from '../src/index.ts';
import { isOwnedElsewhere } from '../src/runtime/cluster-store.ts';
import { SqliteStore } from '../src/sqlite.ts';
import { migrate, MIGRATIONS } from '../src/runtime/sqlite-migrations.ts';
import { PgFixture } from './postgres-helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'baton-store-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
let pg: PgFixture;
beforeAll(() => void (pg = new PgFixture()));
afterAll(() => pg.cleanup());

interface Conformance {
  make: () => Store | Promise<Store>;
  /** A store several nodes share keeps a deleted session's events until retention, for the nodes tailing it. */
  keepsDeletedEvents?: boolean;
}

const stores: [string, Conformance][] = [
  ['MemoryStore', { make: () => new MemoryStore({ keepEvents: 4 }) }],
  ['SqliteStore', { make: () => new SqliteStore(join(dir, `t${n++}.db`), { keepEvents: 4 }) }],
  [
    'PostgresStore',
    {
      make: async () => (await pg.node(pg.schema(), { keepEvents: 4 })).store,
      keepsDeletedEvents: true,
    },
  ],
];

const all = { recent: 10, history: 10 };
const session = (seq: number, snapshot: unknown = { value: 'x' }) => ({ sessionId: 's', kind: 'agent', snapshot, seq, version: 3 });
const idle = (sessionId: string, seq: number) => ({ sessionId, seq, type: 'state', data: { state: 'idle' } }) as const;

/** A load by the only node there is: nobody else can own the session. */
async function load(store: Store, sessionId: string, options: LoadOptions = all): Promise<LoadedSession | undefined> {
  const loaded = await store.load(sessionId, options);
  if (isOwnedElsewhere(loaded)) throw new Error(`session ${sessionId} is owned by node ${loaded.ownedBy.id}`);
  return loaded;
}

describe.each(stores)('%s', (_name, { make, keepsDeletedEvents }) => {
  it('C20: keeps schedules with their session: set (upserted by id) and cancelled in a step, loaded earliest first, found by due time', async () => {
    const store = await make();
    const at = (sessionId: string) => ({ sessionId, events: [], consumed: [], session: { ...session(0), sessionId } });
    await store.commit([
      { ...at('s'), schedules: { set: [{ id: 'b', dueAt: 2000, everyMs: 1000, payload: { n: [1, 'two'] } }, { id: 'a', dueAt: 3000, cron: '0 9 * * *' }] } },
      { ...at('t'), schedules: { set: [{ id: 'x', dueAt: 1500 }] } },
    ]);
    expect((await load(store, 's'))?.schedules).toEqual([
      { id: 'b', dueAt: 2000, everyMs: 1000, payload: { n: [1, 'two'] } },
      { id: 'a', dueAt: 3000, cron: '0 9 * * *' },
    ]);
    expect(await store.nextDue!()).toBe(1500);
    expect(await store.dueSessions!(1999, 10)).toEqual(['t']);
    expect(await store.dueSessions!(5000, 10)).toEqual(['t', 's']);
    expect(await store.dueSessions!(5000, 1)).toEqual(['t']);
    await store.commit([{ sessionId: 's', events: [], consumed: [], schedules: { set: [{ id: 'b', dueAt: 4000, everyMs: 1000 }], cancel: ['a'] } }]);
    expect((await load(store, 's'))?.schedules).toEqual([{ id: 'b', dueAt: 4000, everyMs: 1000 }]);
    // Retention leaves a session with schedules (it will wake); a deleted session's go with it.
    expect(await store.prune(Number.MAX_SAFE_INTEGER, () => false)).toBe(0);
    await store.commit([{ sessionId: 't', events: [], consumed: [], deleted: true }]);
    expect(await store.dueSessions!(5000, 10)).toEqual(['s']);
    await store.commit([{ sessionId: 's', events: [], consumed: [], schedules: { cancel: ['b'] } }]);
    expect(await store.nextDue!()).toBeUndefined();
    // (A store several nodes share never prunes a session its live owner holds.)
    if (!keepsDeletedEvents) expect(await store.prune(Number.MAX_SAFE_INTEGER, () => false)).toBe(1);
  });

  it('C18: counts the stored sessions of a namespace (a principal\'s quota), by prefix, wildcards taken literally', async () => {
    const store = await make();
    const ids = ['alice/a', 'alice/b', 'alice%2Fx/c', 'alicex/d', 'bob/a', 'a_c/x', 'abc/x'];
    for (const id of ids) await store.commit([{ sessionId: id, events: [], consumed: [], session: { ...session(0), sessionId: id } }]);
    expect(await store.countSessions!('alice/')).toBe(2);
    expect(await store.countSessions!('bob/')).toBe(1);
    // `_` and `%` are LIKE wildcards: a prefix is compared as it is.
    expect(await store.countSessions!('a_c/')).toBe(1);
    expect(await store.countSessions!('nobody/')).toBe(0);
    await store.commit([{ sessionId: 'alice/a', events: [], consumed: [], deleted: true }]);
    expect(await store.countSessions!('alice/')).toBe(1);
  });

  it('C12: a commit takes inputs into the inbox, in arrival order, until a later one consumes them', async () => {
    const store = await make();
    await store.commit([
      { sessionId: 's', accepted: [{ id: 'a', content: 'one' }, { id: 'b', content: 'two', metadata: { lang: 'en' } }], events: [], consumed: [], session: session(0) },
      { sessionId: 't', accepted: [{ id: 'a', content: 'other session' }], events: [], consumed: [], session: { ...session(0), sessionId: 't' } },
    ]);
    expect((await load(store, 's'))?.pending).toEqual([{ id: 'a', content: 'one' }, { id: 'b', content: 'two', metadata: { lang: 'en' } }]);
    expect((await store.sessionsWithPending()).sort()).toEqual(['s', 't']);
    await store.commit([{ sessionId: 's', events: [idle('s', 5)], consumed: ['a'], session: session(5) }]);
    const loaded = await load(store, 's');
    expect(loaded).toEqual({
      session: session(5),
      lastSeq: 5,
      pending: [{ id: 'b', content: 'two', metadata: { lang: 'en' } }],
      recent: [{ id: 'a', content: 'one' }, { id: 'b', content: 'two', metadata: { lang: 'en' } }],
      history: [],
      schedules: [],
    });
    await store.close();
  });

  it('C16: a step is stored whole: inputs, events, transcript, consumption and snapshot', async () => {
    const store = await make();
    await store.commit([
      {
        sessionId: 's',
        accepted: [{ id: 'm1', content: 'hi' }],
        events: [idle('s', 1), idle('s', 2)],
        consumed: ['m1'],
        transcript: [{ role: 'user', content: 'hi', inputId: 'm1' }, { role: 'assistant', content: 'hello' }],
        session: session(1),
      },
    ]);
    const loaded = await load(store, 's', { recent: 10, history: 1 });
    expect(loaded?.lastSeq).toBe(2); // events newer than the snapshot count
    expect(loaded?.pending).toEqual([]);
    expect(loaded?.recent.map((i) => i.id)).toEqual(['m1']);
    expect(loaded?.history).toEqual([{ role: 'assistant', content: 'hello' }]);
    expect(await load(store, 'nobody')).toBeUndefined();
    await store.close();
  });

  it('holds the newest events for resume, and a deleted session leaves nothing', async () => {
    const store = await make();
    await store.commit([{ sessionId: 's', events: [], consumed: [], session: session(0) }]);
    const events = [1, 2, 3, 4, 5, 6, 7, 8, 9].map((seq) => idle('s', seq));
    for (const e of events) await store.commit([{ sessionId: 's', events: [e], consumed: [] }]);
    expect((await load(store, 's'))?.lastSeq).toBe(9);
    const held = (await store.eventsAfter('s', 0)).map((e) => e.seq);
    expect(held.at(-1)).toBe(9);
    expect(held.length).toBeGreaterThanOrEqual(4);
    expect(held.length).toBeLessThanOrEqual(8);
    expect(await store.eventsAfter('s', 7)).toEqual([events[7], events[8]]);
    await store.commit([{ sessionId: 's', events: [], consumed: [], deleted: true }]);
    expect(await load(store, 's')).toBeUndefined();
    if (keepsDeletedEvents) {
      expect(await store.eventsAfter('s', 7)).toEqual([events[7], events[8]]);
      await store.prune(Number.MAX_SAFE_INTEGER, () => false);
    }
    expect(await store.eventsAfter('s', 0)).toEqual([]);
    await store.close();
  });
});

describe('SqliteStore', () => {
  it('survives being reopened: what was written is there', () => {
    const path = join(dir, 'reopen.db');
    const first = new SqliteStore(path);
    first.commit([{ sessionId: 's', accepted: [{ id: 'a', content: 'kept' }], events: [], consumed: [], session: session(3, { context: { n: 1 } }) }]);
    first.close();
    const second = new SqliteStore(path);
    expect(second.load('s', all)?.pending).toEqual([{ id: 'a', content: 'kept' }]);
    expect(second.load('s', all)?.session.snapshot).toEqual({ context: { n: 1 } });
    second.close();
  });

  it('opens a database made by the previous schema and keeps its data', () => {
    const path = join(dir, 'v1.db');
    const old = new Database(path);
    migrate(old, MIGRATIONS.length - 1); // the schema as the previous release left it
    old.prepare("INSERT INTO sessions (id, kind, snapshot, seq, updated_at) VALUES ('s', 'agent', '{}', 7, 0)").run();
    old.prepare("INSERT INTO inbox (session_id, input_id, content) VALUES ('s', 'a', 'from v1')").run();
    expect(old.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length - 1);
    old.close();
    const store = new SqliteStore(path);
    expect(store.load('s', all)?.session.seq).toBe(7);
    expect(store.load('s', all)?.pending).toEqual([{ id: 'a', content: 'from v1' }]);
    store.commit([{ sessionId: 's', events: [idle('s', 8)], consumed: [] }]);
    expect(store.load('s', all)?.lastSeq).toBe(8);
    store.close();
    const check = new Database(path);
    expect(check.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
    check.close();
  });

  it('refuses a database from a newer Baton instead of guessing', () => {
    const path = join(dir, 'future.db');
    const db = new Database(path);
    db.pragma(`user_version = ${MIGRATIONS.length + 1}`);
    db.close();
    expect(() => new SqliteStore(path)).toThrow(/newer than this Baton/);
  });

  it('C17: a second store on the same file takes it over; the first one\'s writes are refused, naming the holder', () => {
    const path = join(dir, 'owners.db');
    const first = new SqliteStore(path, { holder: 'process A' });
    first.commit([{ sessionId: 's', accepted: [{ id: 'm1', content: 'a' }], events: [], consumed: [], session: session(0) }]);
    const second = new SqliteStore(path, { holder: 'process B' });
    expect(second.epoch).toBe(first.epoch + 1);
    expect(() => first.commit([{ sessionId: 's', accepted: [{ id: 'm2', content: 'b' }], events: [], consumed: [] }])).toThrow(/taken over by process B/);
    expect(() => first.commit([{ sessionId: 's', events: [], consumed: ['m1'] }])).toThrow(StaleEpochError);
    expect(() => first.checkOwner()).toThrow(StaleEpochError);
    second.commit([{ sessionId: 's', accepted: [{ id: 'm3', content: 'c' }], events: [], consumed: [] }]);
    expect(second.load('s', all)?.pending.map((e) => e.id)).toEqual(['m1', 'm3']);
    first.close();
    second.close();
  });

  it('refuses a damaged file and a SQLite database of another application, in one line naming the file', () => {
    const foreign = join(dir, 'foreign.db');
    const db = new Database(foreign);
    db.exec('CREATE TABLE invoices (id INTEGER PRIMARY KEY)');
    db.close();
    expect(() => new SqliteStore(foreign)).toThrow(`${foreign} is a SQLite database of another application, not Baton's`);
    const damaged = join(dir, 'damaged.db');
    const good = new SqliteStore(damaged);
    for (let i = 0; i < 200; i++) good.commit([{ sessionId: 's', accepted: [{ id: `m${i}`, content: 'x'.repeat(500) }], events: [], consumed: [] }]);
    good.close();
    const bytes = readFileSync(damaged);
    bytes.fill(0xa5, 4096 * 3, 4096 * 3 + 2048); // scribble over a page in the middle
    writeFileSync(damaged, bytes);
    expect(() => new SqliteStore(damaged)).toThrow(/damaged|malformed|not a database/);
  });

  it('keeps exactly the newest keepEvents events of every session it writes', () => {
    const store = new SqliteStore(':memory:', { keepEvents: 10 });
    for (let seq = 1; seq <= 100; seq++) {
      store.commit([
        { sessionId: 'a', events: [idle('a', seq)], consumed: [] },
        ...(seq % 7 === 0 ? [{ sessionId: 'b', events: [idle('b', seq / 7)], consumed: [] }] : []),
      ]);
    }
    expect(store.eventsAfter('a', 0).map((e) => e.seq)).toEqual([91, 92, 93, 94, 95, 96, 97, 98, 99, 100]);
    expect(store.eventsAfter('b', 0)).toHaveLength(10);
    store.close();
  });
});

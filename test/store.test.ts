import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryStore, StaleEpochError, type Store } from '../src/index.ts';
import { SqliteStore } from '../src/sqlite.ts';
import { migrate, MIGRATIONS } from '../src/runtime/sqlite-migrations.ts';

const dir = mkdtempSync(join(tmpdir(), 'baton-store-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

const stores: [string, () => Store][] = [
  ['MemoryStore', () => new MemoryStore({ keepEvents: 4 })],
  ['SqliteStore', () => new SqliteStore(join(dir, `t${n++}.db`), { keepEvents: 4 })],
];

describe.each(stores)('%s', (_name, make) => {
  it('keeps the inbox in arrival order until a save consumes it (C12)', () => {
    const store = make();
    store.accept('s', { id: 'a', content: 'one' });
    store.accept('s', { id: 'b', content: 'two', metadata: { lang: 'en' } });
    store.accept('t', { id: 'a', content: 'other session' });
    expect(store.pending('s')).toEqual([{ id: 'a', content: 'one' }, { id: 'b', content: 'two', metadata: { lang: 'en' } }]);
    expect(store.sessionsWithPending().sort()).toEqual(['s', 't']);
    store.save({ sessionId: 's', kind: 'agent', snapshot: { value: 'x' }, seq: 5, version: 3 }, ['a']);
    expect(store.pending('s')).toEqual([{ id: 'b', content: 'two', metadata: { lang: 'en' } }]);
    expect(store.load('s')).toEqual({ sessionId: 's', kind: 'agent', snapshot: { value: 'x' }, seq: 5, version: 3 });
    expect(store.recentInputs('s', 10).map((i) => i.id)).toEqual(['a', 'b']);
    store.close();
  });

  it('holds the newest events for resume', () => {
    const store = make();
    const events = [1, 2, 3, 4, 5, 6, 7, 8, 9].map((seq) => ({ sessionId: 's', seq, type: 'state', data: { state: 'idle' } }) as const);
    for (const e of events) store.appendEvents([e]);
    expect(store.lastSeq('s')).toBe(9);
    const held = store.eventsAfter('s', 0).map((e) => e.seq);
    expect(held.at(-1)).toBe(9);
    expect(held.length).toBeGreaterThanOrEqual(4);
    expect(held.length).toBeLessThanOrEqual(8);
    expect(store.eventsAfter('s', 7)).toEqual([events[7], events[8]]);
    store.delete('s');
    expect(store.eventsAfter('s', 0)).toEqual([]);
    expect(store.load('s')).toBeUndefined();
    store.close();
  });
});

describe('SqliteStore', () => {
  it('survives being reopened: what was written is there', () => {
    const path = join(dir, 'reopen.db');
    const first = new SqliteStore(path);
    first.accept('s', { id: 'a', content: 'kept' });
    first.save({ sessionId: 's', kind: 'agent', snapshot: { context: { n: 1 } }, seq: 3 });
    first.close();
    const second = new SqliteStore(path);
    expect(second.pending('s')).toEqual([{ id: 'a', content: 'kept' }]);
    expect(second.load('s')?.snapshot).toEqual({ context: { n: 1 } });
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
    expect(store.load('s')?.seq).toBe(7);
    expect(store.pending('s')).toEqual([{ id: 'a', content: 'from v1' }]);
    store.appendEvents([{ sessionId: 's', seq: 8, type: 'state', data: { state: 'idle' } }]);
    expect(store.lastSeq('s')).toBe(8);
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

  it('fences writes with the epoch column', () => {
    const path = join(dir, 'epoch.db');
    const store = new SqliteStore(path);
    store.save({ sessionId: 's', kind: 'agent', snapshot: {}, seq: 1 });
    const other = new Database(path);
    other.prepare("UPDATE sessions SET epoch = 2 WHERE id = 's'").run();
    other.close();
    expect(() => store.save({ sessionId: 's', kind: 'agent', snapshot: {}, seq: 2 })).toThrow(/another epoch/);
    store.close();
  });

  it('C17: a second store on the same file takes it over; the first one\'s writes are refused, naming the holder', () => {
    const path = join(dir, 'owners.db');
    const first = new SqliteStore(path, { holder: 'process A' });
    first.accept('s', { id: 'm1', content: 'a' });
    const second = new SqliteStore(path, { holder: 'process B' });
    expect(second.epoch).toBe(first.epoch + 1);
    expect(() => first.accept('s', { id: 'm2', content: 'b' })).toThrow(/taken over by process B/);
    expect(() => first.commit([{ sessionId: 's', events: [], consumed: ['m1'] }])).toThrow(StaleEpochError);
    second.accept('s', { id: 'm3', content: 'c' });
    expect(second.pending('s').map((e) => e.id)).toEqual(['m1', 'm3']);
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
    for (let i = 0; i < 200; i++) good.accept('s', { id: `m${i}`, content: 'x'.repeat(500) });
    good.close();
    const bytes = readFileSync(damaged);
    bytes.fill(0xa5, 4096 * 3, 4096 * 3 + 2048); // scribble over a page in the middle
    writeFileSync(damaged, bytes);
    expect(() => new SqliteStore(damaged)).toThrow(/damaged|malformed|not a database/);
  });

  it('keeps exactly the newest keepEvents events of every session it writes', () => {
    const store = new SqliteStore(':memory:', { keepEvents: 10 });
    for (let seq = 1; seq <= 100; seq++) {
      store.appendEvents([
        { sessionId: 'a', seq, type: 'state', data: { state: 'idle' } },
        ...(seq % 7 === 0 ? [{ sessionId: 'b', seq: seq / 7, type: 'state' as const, data: { state: 'idle' as const } }] : []),
      ]);
    }
    expect(store.eventsAfter('a', 0).map((e) => e.seq)).toEqual([91, 92, 93, 94, 95, 96, 97, 98, 99, 100]);
    expect(store.eventsAfter('b', 0)).toHaveLength(10);
    store.close();
  });
});

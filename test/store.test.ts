import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryStore, type Store } from '../src/index.ts';
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
    store.save({ sessionId: 's', kind: 'agent', snapshot: { value: 'x' }, seq: 5 }, ['a']);
    expect(store.pending('s')).toEqual([{ id: 'b', content: 'two', metadata: { lang: 'en' } }]);
    expect(store.load('s')).toEqual({ sessionId: 's', kind: 'agent', snapshot: { value: 'x' }, seq: 5 });
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
});

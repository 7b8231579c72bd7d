/**
 * Attack on C20 / C19 wake (commit 41cf121), severity LOW (schedules are unreleased: only a
 * store written by a build of main between C20 and 41cf121 holds such a row).
 *
 * Schedule ids starting with `baton:` became the runtime's: new ones are refused, and every
 * stored record with that prefix is hidden as the runtime's own (`clientSchedules`). But a
 * store written before that change may hold a client's schedule named so (`baton:reminder`
 * was a valid id). After the upgrade such a schedule was dropped from the host's schedules —
 * it never fired, no list showed it, `cancelSchedule` answered false — yet its row stayed
 * due: each wake of the process timer found it again and activated the session for
 * nothing, for good, and retention never pruned the session. Only the runtime's own record (`baton:wake`) is the runtime's; a stored
 * client schedule keeps working.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import type { Agent } from '../src/index.ts';
import { SqliteStore } from '../src/sqlite.ts';
import { settle, testRuntime } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'baton-reserved-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('C20 schedule ids the runtime reserves', () => {
  it('C20: a client schedule named baton:… stored before the prefix was reserved is still the client\'s: listed, fired, then gone from the store', async () => {
    const path = join(dir, 'legacy.db');
    const fired: string[] = [];
    const agent: Agent = (turn) => {
      for (const input of turn.inputs) if (input.kind === 'timer') fired.push(input.schedule!.id);
      return 'ok';
    };
    const before = testRuntime({ agent, debounceMs: 0, store: new SqliteStore(path) });
    await before.runtime.send('s', { id: 'm1', content: 'hi' });
    await settle();
    await before.runtime.shutdown();
    // What an older version stored for `runtime.schedule('s', { id: 'baton:reminder', at: 60_000 })`.
    const db = new Database(path);
    db.prepare('INSERT INTO schedules (session_id, id, due_at, every_ms, cron, payload) VALUES (?, ?, ?, NULL, NULL, NULL)').run('s', 'baton:reminder', 60_000);
    db.close();

    const store = new SqliteStore(path);
    const after = testRuntime({ agent, debounceMs: 0, store, idleTimeoutMs: 5_000 });
    after.clock.set(before.clock.now());
    await settle();
    expect((await after.runtime.schedules('s')).map((s) => s.id)).toEqual(['baton:reminder']);
    await after.advance(60_000 - after.clock.now());
    await settle();
    expect(fired).toEqual(['baton:reminder']);
    expect(await store.nextDue()).toBeUndefined();
    expect(await after.runtime.schedules('s')).toEqual([]);
    await after.runtime.shutdown();
  });
});

/**
 * C10: "a resend with the same id is acknowledged as duplicate and never runs twice". For a
 * command that holds only while the session stays live: its id is remembered in the host's
 * RecentIds (runtime.ts `decide`), but commands never enter the durable inbox, and an
 * activation rebuilds RecentIds from the inbox alone (`loaded.recent`). After passivation (or
 * a restart) the same command id runs again — a registered command with a side effect
 * (`/charge`) runs twice for one client message.
 */
import { describe, expect, it } from 'vitest';
import { SqliteStore } from '../src/sqlite.ts';
import { settle, testRuntime } from './helpers.ts';

describe('C10 a resent command id across passivation', () => {
  it('is a duplicate and does not run again', async () => {
    let runs = 0;
    const t = testRuntime({
      agent: async () => 'ok',
      store: new SqliteStore(':memory:'),
      idleTimeoutMs: 1000,
      commands: { charge: () => `charged ${++runs}` },
    });
    expect(await t.runtime.send('s', { id: 'c1', content: '/charge' })).toMatchObject({ status: 'accepted', mode: 'command' });
    await settle();
    expect((await t.runtime.send('s', { id: 'c1', content: '/charge' })).status).toBe('duplicate'); // live: fine
    await t.advance(1000);
    await t.advance(1000);
    expect((await t.runtime.status('s'))?.state).toBe('passivated');
    expect((await t.runtime.send('s', { id: 'c1', content: '/charge' })).status).toBe('duplicate');
    await settle();
    expect(runs).toBe(1);
  });
});

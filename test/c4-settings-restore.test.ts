import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createRuntime, SessionBusyError } from '../src/index.ts';
import { SqliteStore } from '../src/sqlite.ts';
import { controlledAgent, settle, stored } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'baton-settings-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('settings outside snapshots (C4, C12)', () => {
  it('a restart with busyPolicy "reject" applies it to a restored session; stored snapshots carry no settings or drain flags', async () => {
    const db = join(dir, 'settings.db');
    const first = controlledAgent();
    const store1 = new SqliteStore(db);
    const runtime1 = createRuntime({ commitDelayMs: 0, agent: first.agent, store: store1, busyPolicy: 'collect', debounceMs: 0 });
    await runtime1.send('s', { id: 'm1', content: 'a long turn' });
    await settle();
    expect(first.calls).toHaveLength(1);
    await runtime1.shutdown({ drainMs: 0 }); // the durable store keeps the running turn
    const snapshot = (await stored(store1, 's'))!.session.snapshot as { context: Record<string, unknown> };
    expect(snapshot.context).not.toHaveProperty('settings');
    expect(snapshot.context.draining).toBe(false);
    store1.close();

    const second = controlledAgent();
    const store2 = new SqliteStore(db);
    const runtime2 = createRuntime({ commitDelayMs: 0, agent: second.agent, store: store2, busyPolicy: 'reject', debounceMs: 0 });
    await settle(); // recovery re-runs the interrupted turn
    expect(second.calls.map((c) => c.turn.inputs.map((i) => i.id))).toEqual([['m1']]);
    const receipt = await runtime2.send('s', { id: 'm2', content: 'while busy' });
    expect(receipt).toMatchObject({ status: 'rejected', code: 'SESSION_BUSY' });
    expect(receipt.error).toBeInstanceOf(SessionBusyError);
    second.last('s')!.resolve('done');
    await runtime2.shutdown({ drainMs: 0 });
    store2.close();
  });
});

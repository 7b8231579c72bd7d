/**
 * Attack on C19's approval wake (commit 41cf121) on a PostgreSQL cluster: the wake is a row
 * in `schedules`, and a node fires the schedules of the sessions no live node owns. A session
 * waiting for a decision whose owner dies must be woken, and denied, by another node at the
 * approval's deadline — with nothing sent to it.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createRuntime, defineTool, type RuntimeOptions, type SessionEvent, type Turn } from '../src/index.ts';
import { PostgresStore } from '../src/postgres.ts';
import { pgPerTest, pgUrl, waitFor } from './postgres-helpers.ts';

const fx = pgPerTest(100);

const APPROVAL_MS = 2500;

function node(nodeId: string, options: Partial<RuntimeOptions> = {}) {
  const store = new PostgresStore({ url: pgUrl(), schema: fx.schema, nodeId, leaseTtlMs: 600, renewMs: 150 });
  const ranOn: string[] = [];
  const tool = defineTool({ name: 'guarded', description: 'Needs the user', parameters: z.object({}), needsApproval: true, run: () => void ranOn.push(nodeId) });
  const agent = async (turn: Turn) => (await turn.callTool('guarded', {})).status;
  const errors: unknown[] = [];
  const runtime = createRuntime({ agent, tools: [tool], store, debounceMs: 0, clusterSweepMs: 100, approvalTimeoutMs: APPROVAL_MS, onError: (error) => errors.push(error), ...options });
  fx.runtimes.push(runtime);
  const events: SessionEvent[] = [];
  runtime.events$.subscribe((e) => events.push(e));
  const denied = () => events.find((e) => e.type === 'tool_result' && (e.data as { status: string }).status === 'denied');
  return { store, runtime, events, ranOn, errors, denied };
}

describe('C19 the approval wake on a PostgreSQL cluster', () => {
  it('C19, C17: the owner of a waiting session dies; another node wakes it at expires_at and denies the call (approval_timeout), nothing sent', async () => {
    const a = node('a');
    const b = node('b');
    await a.runtime.send('s', { id: 'm1', content: 'go' });
    const request = await waitFor(() => a.events.find((e) => e.type === 'permission_request'), 'the request on a');
    const expiresAt = (request!.data as { expires_at: number }).expires_at;
    // a is gone, and as after a crash the session still names it as its owner.
    await a.runtime.shutdown({ drainMs: 0 }).catch(() => {});
    await a.store.close();
    await fx.pg.admin`UPDATE ${fx.pg.admin(fx.schema)}.sessions SET owner_node = 'a', owner_incarnation = ${a.store.node.incarnation}`;
    const wake = await fx.pg.admin`SELECT id, due_at FROM ${fx.pg.admin(fx.schema)}.schedules WHERE session_id = 's'`;
    expect(wake.map((r) => [r.id, Number(r.due_at)])).toEqual([['baton:wake', expiresAt]]);
    expect(b.denied()).toBeUndefined();
    const result = await waitFor(() => b.denied(), 'the denial on b', APPROVAL_MS + 5000);
    const at = Date.now();
    expect(at).toBeGreaterThanOrEqual(expiresAt);
    expect(at).toBeLessThan(expiresAt + 1500);
    expect(result!.data).toMatchObject({ id: 'call_1_1', status: 'denied', error: { code: 'approval_timeout' } });
    await waitFor(() => b.events.some((e) => e.type === 'done' && e.data.success), 'the turn to end on b');
    expect(a.ranOn).toEqual([]);
    expect(b.ranOn).toEqual([]);
    expect(await fx.pg.admin`SELECT id FROM ${fx.pg.admin(fx.schema)}.schedules`).toHaveLength(0);
  });

  it('C19, C17: a session passivated (released) while it waits stays passivated — no node claims it as an orphan — until the wake at expires_at', async () => {
    const a = node('a', { idleTimeoutMs: 200 });
    const b = node('b', { idleTimeoutMs: 200 });
    await a.runtime.send('s', { id: 'm1', content: 'go' });
    const request = await waitFor(() => a.events.find((e) => e.type === 'permission_request'), 'the request on a');
    const expiresAt = (request!.data as { expires_at: number }).expires_at;
    await waitFor(() => a.runtime.sessionIds().length === 0, 'a to passivate the session');
    const seen = a.events.length + b.events.length;
    // Ten cluster sweeps (clusterSweepMs 100): its held input is no orphan's work.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(Date.now()).toBeLessThan(expiresAt - 500);
    expect([a.runtime.sessionIds(), b.runtime.sessionIds()]).toEqual([[], []]);
    expect((await fx.pg.admin`SELECT owner_node FROM ${fx.pg.admin(fx.schema)}.sessions WHERE id = 's'`)[0]!.owner_node).toBeNull();
    expect(a.events.length + b.events.length).toBe(seen); // no re-run, no done{interrupted} meanwhile
    const denied = await waitFor(() => a.denied() ?? b.denied(), 'the denial', APPROVAL_MS + 5000);
    expect(Date.now()).toBeGreaterThanOrEqual(expiresAt);
    expect(Date.now()).toBeLessThan(expiresAt + 1500);
    expect(denied!.data).toMatchObject({ status: 'denied', error: { code: 'approval_timeout' } });
    await waitFor(() => [...a.events, ...b.events].some((e) => e.type === 'done' && e.data.success), 'the turn to end');
    const all = [...a.events, ...b.events];
    expect(all.filter((e) => e.type === 'tool_result')).toHaveLength(1);
    // One interrupted done: the wake's re-run of the parked turn, nothing before it.
    expect(all.filter((e) => e.type === 'done' && e.data.reason === 'interrupted')).toHaveLength(1);
    expect([...a.errors, ...b.errors]).toEqual([]);
  });
});

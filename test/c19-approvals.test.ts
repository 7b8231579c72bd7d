import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Agent, SessionEvent, ToolResult } from '../src/index.ts';
import { SqliteStore } from '../src/sqlite.ts';
import { seqGaps, settle, testRuntime, turnOverlaps } from './helpers.ts';
import { callingAgent, guardedTool, parked } from './approvals-fixture.ts';

const dir = mkdtempSync(join(tmpdir(), 'baton-approvals-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const sqlite = () => join(dir, `c19-${n++}.db`);

const kinds = (events: readonly SessionEvent[]) =>
  events.filter((e) => e.type === 'tool_call' || e.type === 'tool_result' || e.type === 'permission_request').map((e) => {
    const data = e.data as { id: string; status?: string };
    return `${e.type}:${data.id}${data.status ? `:${data.status}` : ''}`;
  });

describe('C19 approvals', () => {
  it('C19: an approved call runs once, after its permission_request; the session waits for the user meanwhile', async () => {
    const { tool, runs } = guardedTool();
    const results: ToolResult[] = [];
    const t = testRuntime({ agent: callingAgent(results), tools: [tool], debounceMs: 0 });
    await t.runtime.send('s', { id: 'm1', content: 'hello' });
    await settle();
    const request = t.of('s').find((e) => e.type === 'permission_request');
    expect(request?.data).toEqual({
      id: 'call_1_1',
      tool_name: 'guarded',
      input: { text: 'hello' },
      description: 'Does something the user must allow',
      expires_at: t.clock.now() + 300_000,
    });
    expect(runs).toHaveLength(0);
    expect(await t.runtime.status('s')).toMatchObject({ state: 'busy', busy: true, waitingForUser: true });
    await t.runtime.send('s', { id: 'c1', content: '/status' });
    await settle();
    expect(JSON.stringify(t.of('s').at(-1)?.data)).toContain('waiting for approval: call_1_1');

    expect(await t.runtime.decide('s', { id: 'call_1_1', allowed: true })).toEqual({ status: 'accepted' });
    await settle();
    expect(runs).toHaveLength(1);
    expect(runs[0]!.context).toMatchObject({ callId: 'call_1_1', attempt: 1, idempotencyKey: 'call_1_1:1' });
    expect(results).toEqual([{ id: 'call_1_1', status: 'ok', output: 'HELLO' }]);
    expect(kinds(t.of('s'))).toEqual(['tool_call:call_1_1', 'permission_request:call_1_1', 'tool_result:call_1_1:ok']);
    expect(t.dones('s')).toEqual([expect.objectContaining({ success: true })]);
    expect(await t.runtime.status('s')).toMatchObject({ waitingForUser: false, busy: false });
    expect(seqGaps(t.events)).toEqual([]);
    expect(turnOverlaps(t.events)).toEqual([]);
  });

  it('C19: a denial is the result, with the reason; the tool never runs; a second decision is INVALID_MESSAGE', async () => {
    const { tool, runs } = guardedTool();
    const results: ToolResult[] = [];
    const t = testRuntime({ agent: callingAgent(results), tools: [tool], debounceMs: 0 });
    await t.runtime.send('s', { id: 'm1', content: 'rm -rf' });
    await settle();
    expect(await t.runtime.decide('s', { id: 'call_1_1', allowed: false, reason: 'not today' })).toEqual({ status: 'accepted' });
    await settle();
    expect(runs).toHaveLength(0);
    expect(results).toEqual([{ id: 'call_1_1', status: 'denied', error: { code: 'denied', message: 'not today' } }]);
    const again = await t.runtime.decide('s', { id: 'call_1_1', allowed: true });
    expect(again).toMatchObject({ status: 'rejected', code: 'INVALID_MESSAGE' });
    expect(await t.runtime.decide('s', { id: 'call_9_9', allowed: true })).toMatchObject({ status: 'rejected', code: 'INVALID_MESSAGE' });
    expect(await t.runtime.decide('nobody', { id: 'call_1_1', allowed: true })).toMatchObject({ status: 'rejected', code: 'SESSION_NOT_FOUND' });
    expect(await t.runtime.decide('s', { id: 'call_1_1', allowed: 'yes' } as never)).toMatchObject({ status: 'rejected', code: 'INVALID_MESSAGE' });
    await settle();
    expect(runs).toHaveLength(0);
    expect(kinds(t.of('s')).filter((k) => k.startsWith('tool_result'))).toEqual(['tool_result:call_1_1:denied']);
  });

  it('C19: no decision by approvalTimeoutMs is a denial; time spent waiting does not count against turnTimeoutMs', async () => {
    const { tool, runs } = guardedTool();
    const results: ToolResult[] = [];
    const t = testRuntime({ agent: callingAgent(results), tools: [tool], debounceMs: 0, turnTimeoutMs: 1000, approvalTimeoutMs: 5000 });
    await t.runtime.send('s', { id: 'm1', content: 'x' });
    await settle();
    await t.advance(4999);
    expect(t.dones('s')).toEqual([]); // the turn timeout (1 s) is held while the user decides
    await t.advance(1);
    expect(results).toEqual([{ id: 'call_1_1', status: 'denied', error: { code: 'approval_timeout', message: expect.any(String) } }]);
    expect(runs).toHaveLength(0);
    expect(t.dones('s')).toEqual([expect.objectContaining({ success: true })]);
  });

  it('C19: /stop while waiting ends the wait: one cancelled result before done; a late decision is refused', async () => {
    const { tool, runs } = guardedTool();
    const t = testRuntime({ agent: callingAgent(), tools: [tool], debounceMs: 0 });
    await t.runtime.send('s', { id: 'm1', content: 'x' });
    await settle();
    await t.runtime.send('s', { id: 'c1', content: '/stop' });
    await settle();
    expect(kinds(t.of('s'))).toEqual(['tool_call:call_1_1', 'permission_request:call_1_1', 'tool_result:call_1_1:cancelled']);
    const types = t.types('s');
    expect(types.indexOf('tool_result')).toBeLessThan(types.indexOf('done'));
    expect(t.dones('s')).toEqual([expect.objectContaining({ reason: 'stopped_by_user' })]);
    expect(await t.runtime.decide('s', { id: 'call_1_1', allowed: true })).toMatchObject({ status: 'rejected', code: 'INVALID_MESSAGE' });
    await t.advance(300_000); // the deadline of an ended wait fires nothing
    expect(runs).toHaveLength(0);
    expect(kinds(t.of('s'))).toHaveLength(3);
    expect(await t.runtime.status('s')).toMatchObject({ waitingForUser: false });
  });

  it('C19: busy policies hold while a turn waits: reject refuses, collect queues, interrupt cancels the wait', async () => {
    for (const [policy, expected] of [
      ['reject', { receipt: 'rejected', results: [] as string[] }],
      ['collect', { receipt: 'accepted', results: [] as string[] }],
      ['interrupt', { receipt: 'accepted', results: ['tool_result:call_1_1:cancelled'] }],
    ] as const) {
      const { tool } = guardedTool();
      const t = testRuntime({ agent: callingAgent(), tools: [tool], debounceMs: 0, busyPolicy: policy });
      await t.runtime.send('s', { id: 'm1', content: 'x' });
      await settle();
      const receipt = await t.runtime.send('s', { id: 'm2', content: 'y' });
      await settle();
      expect(receipt.status, policy).toBe(expected.receipt);
      expect(kinds(t.of('s')).filter((k) => k.startsWith('tool_result:call_1')), policy).toEqual(expected.results);
      if (policy === 'interrupt') {
        expect(t.dones('s')[0], policy).toMatchObject({ reason: 'interrupted' });
        expect(kinds(t.of('s')), policy).toContain('permission_request:call_2_1'); // the next turn asks anew
      } else {
        expect(t.dones('s'), policy).toEqual([]);
        expect(await t.runtime.status('s'), policy).toMatchObject({ waitingForUser: true, backlog: policy === 'collect' ? 1 : 0 });
      }
    }
  });

  it('C19: under steer, an input sent while the turn waits reaches the turn', async () => {
    const { tool } = guardedTool();
    const steered: string[] = [];
    const agent: Agent = async (turn) => {
      const pending = turn.callTool('guarded', { text: 'x' });
      for await (const input of turn.steer!) {
        steered.push(input.content);
        break;
      }
      await pending;
      return 'ok';
    };
    const t = testRuntime({ agent, tools: [tool], debounceMs: 0, busyPolicy: 'steer' });
    await t.runtime.send('s', { id: 'm1', content: 'go' });
    await settle();
    expect(await t.runtime.send('s', { id: 'm2', content: 'also this' })).toMatchObject({ status: 'accepted', mode: 'injected' });
    await settle();
    expect(steered).toEqual(['also this']);
    await t.runtime.decide('s', { id: 'call_1_1', allowed: true });
    await settle();
    expect(t.dones('s')).toEqual([expect.objectContaining({ success: true, input_ids: ['m1', 'm2'] })]);
  });

  it('C19: a crash while waiting: the pending approval is stored; the re-run asks nothing again and the decision runs the tool once', async () => {
    const path = sqlite();
    const first = guardedTool();
    const before = testRuntime({ agent: callingAgent(), tools: [first.tool], debounceMs: 0, store: new SqliteStore(path) });
    await before.runtime.send('s', { id: 'm1', content: 'deploy' });
    await settle();
    const request = before.of('s').find((e) => e.type === 'permission_request')!;
    // The process dies here. A second one opens the store and re-runs the turn.
    const second = guardedTool();
    const results: ToolResult[] = [];
    const after = testRuntime({ agent: callingAgent(results), tools: [second.tool], debounceMs: 0, store: new SqliteStore(path) });
    await settle();
    expect(await after.runtime.status('s')).toMatchObject({ waitingForUser: true });
    expect(after.types('s')).not.toContain('permission_request'); // asked once, still open
    expect(await after.runtime.decide('s', { id: 'call_1_1', allowed: true })).toEqual({ status: 'accepted' });
    await settle();
    expect(first.runs.length + second.runs.length).toBe(1);
    expect(results).toEqual([{ id: 'call_1_1', status: 'ok', output: 'DEPLOY' }]);
    expect(kinds(after.of('s'))).toEqual(['tool_result:call_1_1:ok']);
    expect(after.dones('s').map((d) => d.reason ?? 'ok')).toEqual(['interrupted', 'ok']);
    expect((request.data as { expires_at: number }).expires_at).toBeGreaterThan(0);
    // The transcript holds the call once, with its one result.
    const history = (await new SqliteStore(path).load('s', { recent: 0, history: 10 }))!;
    expect('session' in history && history.history.map((e) => e.role)).toEqual(['user', 'tool_call', 'tool_result', 'assistant']);
  });

  it('C19: a re-run cut off before its agent reached the old calls leaves them to the next re-run: none asked or called anew, the running one runs with attempt 2 under its id', async () => {
    const path = sqlite();
    const { tool, runs } = guardedTool({ hold: true });
    // Two calls at once: the first is allowed and runs when the process dies; the second waits for the user.
    const both: Agent = async (turn) => {
      const [a, b] = await Promise.all([turn.callTool('guarded', { text: 'a' }), turn.callTool('guarded', { text: 'b' })]);
      return `${a.status} ${b.status}`;
    };
    const first = testRuntime({ agent: both, tools: [tool], debounceMs: 0, store: new SqliteStore(path) });
    await first.runtime.send('s', { id: 'm1', content: 'go' });
    await settle();
    await first.runtime.decide('s', { id: 'call_1_1', allowed: true });
    await settle();
    expect(runs.map((r) => r.context.idempotencyKey)).toEqual(['call_1_1:1']);
    // The second process re-runs the turn and dies while its agent is still thinking, before any call.
    const thinking: Agent = () => new Promise<never>(() => {});
    const second = testRuntime({ agent: thinking, tools: [tool], debounceMs: 0, store: new SqliteStore(path) });
    await settle();
    expect(second.types('s')).toContain('message.start');
    // The third re-runs it again: its calls are the old ones.
    const results: string[] = [];
    const third = testRuntime({ agent: async (turn) => (results.push(String(await both(turn))), undefined), tools: [tool], debounceMs: 0, store: new SqliteStore(path) });
    await settle();
    expect(kinds(third.of('s'))).toEqual([]); // no tool_call, no permission_request again
    expect(runs.map((r) => r.context.idempotencyKey)).toEqual(['call_1_1:1', 'call_1_1:2']);
    expect(await third.runtime.decide('s', { id: 'call_1_2', allowed: true })).toEqual({ status: 'accepted' });
    await settle();
    runs[1]!.resolve('A');
    runs[2]!.resolve('B');
    await settle();
    expect(runs.map((r) => r.context.idempotencyKey)).toEqual(['call_1_1:1', 'call_1_1:2', 'call_1_2:1']);
    expect(results).toEqual(['ok ok']);
    expect(kinds(third.of('s'))).toEqual(['tool_result:call_1_1:ok', 'tool_result:call_1_2:ok']);
  });

  it('C19: a decision recorded before a crash is not asked again; a tool cut off while running runs again with attempt 2', async () => {
    const path = sqlite();
    const first = guardedTool({ hold: true });
    const before = testRuntime({ agent: callingAgent(), tools: [first.tool], debounceMs: 0, store: new SqliteStore(path) });
    await before.runtime.send('s', { id: 'm1', content: 'pay' });
    await settle();
    await before.runtime.decide('s', { id: 'call_1_1', allowed: true });
    await settle();
    expect(first.runs).toHaveLength(1); // running when the process dies
    const second = guardedTool({ hold: true });
    const results: ToolResult[] = [];
    const after = testRuntime({ agent: callingAgent(results), tools: [second.tool], debounceMs: 0, store: new SqliteStore(path) });
    await settle();
    expect(after.types('s')).not.toContain('permission_request');
    expect(await after.runtime.status('s')).toMatchObject({ waitingForUser: false });
    expect(second.runs.map((r) => r.context.idempotencyKey)).toEqual(['call_1_1:2']); // at-least-once, with a key to tell
    second.runs[0]!.resolve('paid');
    await settle();
    expect(results).toEqual([{ id: 'call_1_1', status: 'ok', output: 'paid' }]);
    expect(after.dones('s').map((d) => d.reason ?? 'ok')).toEqual(['interrupted', 'ok']);
  });

  it('C19: a finished call is not run again after a crash; its recorded result is replayed', async () => {
    const path = sqlite();
    const first = guardedTool();
    let calls = 0;
    const twice: Agent = async (turn) => {
      calls++;
      const a = await turn.callTool('guarded', { text: 'a' });
      const b = await turn.callTool('guarded', { text: 'b' });
      return `${a.status} ${b.status}`;
    };
    const before = testRuntime({ agent: twice, tools: [first.tool], debounceMs: 0, store: new SqliteStore(path) });
    await before.runtime.send('s', { id: 'm1', content: 'go' });
    await settle();
    await before.runtime.decide('s', { id: 'call_1_1', allowed: true });
    await settle();
    expect(first.runs).toHaveLength(1); // a ran; b waits
    const second = guardedTool();
    const after = testRuntime({ agent: twice, tools: [second.tool], debounceMs: 0, store: new SqliteStore(path) });
    await settle();
    await after.runtime.decide('s', { id: 'call_1_2', allowed: true });
    await settle();
    expect(second.runs.map((r) => r.input)).toEqual([{ text: 'b' }]);
    expect(calls).toBe(2);
    expect(after.of('s').filter((e) => e.type === 'message.delta').map((e) => (e.data as { content: string }).content).join('')).toBe('ok ok');
  });

  it('C19: a re-run that makes another call cancels the old one and asks for the new one', async () => {
    const path = sqlite();
    const { tool } = guardedTool();
    let run = 0;
    const fickle: Agent = async (turn) => {
      const result = await turn.callTool('guarded', { text: `run ${++run}` });
      return result.status;
    };
    const before = testRuntime({ agent: fickle, tools: [tool], debounceMs: 0, store: new SqliteStore(path) });
    await before.runtime.send('s', { id: 'm1', content: 'go' });
    await settle();
    const after = testRuntime({ agent: fickle, tools: [tool], debounceMs: 0, store: new SqliteStore(path) });
    await settle();
    expect(kinds(after.of('s'))).toEqual(['tool_result:call_1_1:cancelled', 'tool_call:call_2_1', 'permission_request:call_2_1']);
    expect(await after.runtime.decide('s', { id: 'call_1_1', allowed: true })).toMatchObject({ status: 'rejected' });
    expect(await after.runtime.decide('s', { id: 'call_2_1', allowed: true })).toEqual({ status: 'accepted' });
    await settle();
    expect(after.dones('s').map((d) => d.reason ?? 'ok')).toEqual(['interrupted', 'ok']);
  });

  it('C19: a session that waits past idleTimeoutMs passivates; the decision re-activates it and the tool runs once', async () => {
    const { t, runs, results } = await parked();
    expect(await t.runtime.status('s')).toMatchObject({ waitingForUser: true });
    expect(await t.runtime.decide('s', { id: 'call_1_1', allowed: true })).toEqual({ status: 'accepted' });
    await settle();
    expect(runs).toHaveLength(1);
    expect(results).toEqual([{ id: 'call_1_1', status: 'ok', output: 'LATER' }]);
    expect(kinds(t.of('s'))).toEqual(['tool_call:call_1_1', 'permission_request:call_1_1', 'tool_result:call_1_1:ok']);
    expect(t.dones('s').map((d) => d.reason ?? 'ok')).toEqual(['interrupted', 'ok']);
  });

  it('C19: a passivated session waiting for a decision is woken when the approval runs out: denied then, its turn ends, though nothing is sent to it', async () => {
    const { t, store, runs, results, expiresAt } = await parked();
    // The wake is the runtime's own: no client sees it among the session's schedules.
    expect(await t.runtime.schedules('s')).toEqual([]);
    expect(await t.runtime.status('s')).toMatchObject({ waitingForUser: true, schedules: [] });
    await expect(t.runtime.schedule('s', { id: 'baton:wake', afterMs: 5_000 })).rejects.toMatchObject({ code: 'INVALID_MESSAGE' });
    await t.advance(expiresAt - t.clock.now() - 1);
    expect(results).toEqual([]);
    await t.advance(1);
    await settle();
    // The re-run of the woken session arms the approval's timer at 0 ms: the simulated clock moves it.
    await t.advance(0);
    await settle();
    expect(results).toEqual([expect.objectContaining({ id: 'call_1_1', status: 'denied', error: expect.objectContaining({ code: 'approval_timeout' }) })]);
    expect(runs).toHaveLength(0);
    expect(t.dones('s').map((d) => d.reason ?? 'ok')).toEqual(['interrupted', 'ok']);
    expect(await t.runtime.status('s')).toMatchObject({ waitingForUser: false });
    // Nothing is left to wake it: the store holds no due time for it.
    expect(await store.nextDue!()).toBeUndefined();
  });

  it('C19: the approval deadline survives a restart: past it, the re-run is denied at once', async () => {
    const path = sqlite();
    const first = guardedTool();
    const before = testRuntime({ agent: callingAgent(), tools: [first.tool], debounceMs: 0, store: new SqliteStore(path), approvalTimeoutMs: 1000 });
    await before.runtime.send('s', { id: 'm1', content: 'x' });
    await settle();
    const expiresAt = (before.of('s').find((e) => e.type === 'permission_request')!.data as { expires_at: number }).expires_at;
    const results: ToolResult[] = [];
    const after = testRuntime({ agent: callingAgent(results), tools: [first.tool], debounceMs: 0, store: new SqliteStore(path), approvalTimeoutMs: 1000 });
    after.clock.set(expiresAt + 1);
    await settle();
    await after.advance(0);
    expect(results).toEqual([expect.objectContaining({ status: 'denied', error: expect.objectContaining({ code: 'approval_timeout' }) })]);
    expect(first.runs).toHaveLength(0);
  });

  it('C19: shutdown while waiting, with a durable store, does not wait out drainMs and keeps the approval for the next start', async () => {
    const path = sqlite();
    const first = guardedTool();
    const before = testRuntime({ agent: callingAgent(), tools: [first.tool], debounceMs: 0, store: new SqliteStore(path) });
    await before.runtime.send('s', { id: 'm1', content: 'x' });
    await settle();
    await before.runtime.shutdown({ drainMs: 60_000 }); // resolves without the simulated clock moving
    expect(before.dones('s')).toEqual([]);
    const results: ToolResult[] = [];
    const after = testRuntime({ agent: callingAgent(results), tools: [first.tool], debounceMs: 0, store: new SqliteStore(path) });
    await settle();
    expect(await after.runtime.decide('s', { id: 'call_1_1', allowed: true })).toEqual({ status: 'accepted' });
    await settle();
    expect(results).toEqual([expect.objectContaining({ status: 'ok' })]);
    expect(first.runs).toHaveLength(1);
  });
});

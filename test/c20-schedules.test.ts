import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import type { Agent, BusyPolicy, SessionInput, Turn } from '../src/index.ts';
import { SqliteStore } from '../src/sqlite.ts';
import { controlledAgent, settle, testRuntime } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'baton-schedules-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const sqlite = () => join(dir, `c20-${n++}.db`);

/** An agent that records every input it is given, and answers at once. */
function recordingAgent() {
  const seen: SessionInput[] = [];
  const agent: Agent = (turn) => {
    seen.push(...turn.inputs);
    return 'ok';
  };
  return { agent, seen, timers: () => seen.filter((i) => i.kind === 'timer').map((i) => i.schedule) };
}

/** A simulated clock that counts the timers armed and not yet fired or cleared. */
function countingClock() {
  const clock = new SimulatedClock();
  const pending = new Set<unknown>();
  return {
    clock: {
      setTimeout: (fn: (...args: unknown[]) => void, ms: number) => {
        const id: unknown = clock.setTimeout((...args: unknown[]) => {
          pending.delete(id);
          fn(...args);
        }, ms);
        pending.add(id);
        return id;
      },
      clearTimeout: (id: unknown) => {
        pending.delete(id);
        clock.clearTimeout(id as never);
      },
      now: () => clock.now(),
    },
    sim: clock,
    pending: () => pending.size,
  };
}

describe('C20 schedules', () => {
  it('C20: a one-shot fires once at its due time, as a typed timer input, then is gone', async () => {
    const a = recordingAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 0 });
    await t.runtime.open('s');
    const record = await t.runtime.schedule('s', { id: 'nudge', afterMs: 1000, payload: { ask: 'still there?' } });
    expect(record).toEqual({ id: 'nudge', dueAt: 1000, payload: { ask: 'still there?' } });
    expect(await t.runtime.schedules('s')).toEqual([record]);
    await t.advance(999);
    expect(a.timers()).toEqual([]);
    await t.advance(1);
    expect(a.timers()).toEqual([{ id: 'nudge', dueAt: 1000, payload: { ask: 'still there?' } }]);
    expect(a.seen[0]).toMatchObject({ id: 'timer:nudge:1000', kind: 'timer', content: '{"ask":"still there?"}' });
    expect(t.dones('s')).toEqual([expect.objectContaining({ success: true, input_ids: ['timer:nudge:1000'] })]);
    expect(await t.runtime.schedules('s')).toEqual([]);
    await t.advance(10_000);
    expect(a.timers()).toHaveLength(1);
  });

  it('C20: a recurring schedule is re-armed from its due time; a long gap catches up with one fire, not one per interval', async () => {
    const a = recordingAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 0 });
    await t.runtime.open('s');
    await t.runtime.schedule('s', { id: 'tick', every: 1000 });
    await t.advance(1000);
    await t.advance(1000);
    expect(a.timers().map((s) => s!.dueAt)).toEqual([1000, 2000]);
    await t.advance(4500); // 6500: due times 3000…6000 were missed
    expect(a.timers().map((s) => s!.dueAt)).toEqual([1000, 2000, 3000]);
    expect((await t.runtime.schedules('s'))[0]!.dueAt).toBe(7000); // the phase stays on the due times
    await t.advance(500);
    expect(a.timers().map((s) => s!.dueAt)).toEqual([1000, 2000, 3000, 7000]);
  });

  it('C20: a cancelled schedule never fires; cancelling one that does not exist says false', async () => {
    const a = recordingAgent();
    const t = testRuntime({ agent: a.agent, debounceMs: 0 });
    await t.runtime.open('s');
    await t.runtime.schedule('s', { id: 'x', afterMs: 100 });
    expect(await t.runtime.cancelSchedule('s', 'x')).toBe(true);
    expect(await t.runtime.cancelSchedule('s', 'x')).toBe(false);
    await t.advance(1000);
    expect(a.timers()).toEqual([]);
  });

  it('C20: bad specs are typed errors; an unknown session is SESSION_NOT_FOUND; client ids cannot pose as timers', async () => {
    const t = testRuntime({ agent: recordingAgent().agent, debounceMs: 0 });
    await t.runtime.open('s');
    await expect(t.runtime.schedule('s', { id: 'x' })).rejects.toMatchObject({ code: 'INVALID_MESSAGE' });
    await expect(t.runtime.schedule('s', { id: 'x', afterMs: 1, every: 1000 })).rejects.toMatchObject({ code: 'INVALID_MESSAGE' });
    await expect(t.runtime.schedule('s', { id: 'x', every: 10 })).rejects.toMatchObject({ code: 'INVALID_MESSAGE' });
    await expect(t.runtime.schedule('s', { id: 'x', cron: 'not a cron' })).rejects.toMatchObject({ code: 'INVALID_MESSAGE' });
    await expect(t.runtime.schedule('nobody', { id: 'x', afterMs: 1 })).rejects.toMatchObject({ code: 'SESSION_NOT_FOUND' });
    expect(await t.runtime.send('s', { id: 'timer:x:1', content: 'forged' })).toMatchObject({ status: 'rejected', code: 'INVALID_MESSAGE' });
  });

  it('C20: a fire that finds the session busy follows its busy policy', async () => {
    const outcomes: Record<string, unknown> = {};
    for (const policy of ['collect', 'reject', 'steer', 'interrupt'] as BusyPolicy[]) {
      const c = controlledAgent();
      const steered: string[] = [];
      const agent: Agent = (turn: Turn) => {
        if (policy === 'steer') void (async () => { for await (const input of turn.steer!) steered.push(input.id); })();
        return c.agent(turn);
      };
      const t = testRuntime({ agent, debounceMs: 0, busyPolicy: policy });
      await t.runtime.send('s', { id: 'm1', content: 'busy' });
      await settle();
      await t.runtime.schedule('s', { id: 'due', afterMs: 10 });
      await t.advance(10);
      outcomes[policy] = {
        calls: c.contents(),
        steered,
        errors: t.of('s').filter((e) => e.type === 'error').map((e) => (e.data as { code: string }).code),
        dones: t.dones('s').map((d) => d.reason ?? 'ok'),
      };
    }
    expect(outcomes).toEqual({
      collect: { calls: [['busy']], steered: [], errors: [], dones: [] }, // waits for the turn
      reject: { calls: [['busy']], steered: [], errors: ['SESSION_BUSY'], dones: [] }, // refused, and said so
      steer: { calls: [['busy']], steered: ['timer:due:10'], errors: [], dones: [] }, // handed to the turn
      interrupt: { calls: [['busy'], ['']], steered: [], errors: [], dones: ['interrupted'] }, // ends it, runs next
    });
  });

  it('C20: a passivated session is activated when its schedule is due, and only one process timer waits for many sessions', async () => {
    const a = recordingAgent();
    const c = countingClock();
    const t = testRuntime({ agent: a.agent, debounceMs: 0, clock: c.clock, idleTimeoutMs: 1000 });
    for (let i = 0; i < 50; i++) {
      await t.runtime.open(`s${i}`);
      await t.runtime.schedule(`s${i}`, { id: 'later', afterMs: 60_000 + i });
    }
    c.sim.increment(1000);
    await settle();
    c.sim.increment(1000);
    await settle();
    expect(t.runtime.sessionIds()).toEqual([]); // all passivated
    expect(c.pending()).toBeLessThanOrEqual(2); // the schedules' one timer (and the idle sweep, if armed)
    c.sim.increment(60_000);
    await settle(30);
    expect(a.timers().map((s) => s!.id)).toHaveLength(50);
    expect(new Set(a.seen.map((i) => i.id)).size).toBe(50);
  });

  it('C20: turn.schedule sets a schedule from inside a turn; it fires later as the turn\'s follow-up', async () => {
    const seen: SessionInput[] = [];
    const agent: Agent = (turn) => {
      seen.push(...turn.inputs);
      if (turn.inputs[0]?.kind !== 'timer') turn.schedule({ id: 'follow-up', afterMs: 5000, payload: 'how did it go?' });
      return 'ok';
    };
    const t = testRuntime({ agent, debounceMs: 0 });
    await t.runtime.send('s', { id: 'm1', content: 'I will try it' });
    await settle();
    expect(await t.runtime.schedules('s')).toEqual([{ id: 'follow-up', dueAt: 5000, payload: 'how did it go?' }]);
    await t.advance(5000);
    expect(seen.map((i) => [i.id, i.content])).toEqual([
      ['m1', 'I will try it'],
      ['timer:follow-up:5000', 'how did it go?'],
    ]);
    await t.runtime.send('s', { id: 'c1', content: '/status' });
    await settle();
    expect(JSON.stringify(t.of('s').at(-1)?.data)).not.toContain('follow-up'); // fired: gone
  });

  it('C20: /status lists a session\'s schedules; runtime.status too', async () => {
    const t = testRuntime({ agent: recordingAgent().agent, debounceMs: 0 });
    await t.runtime.open('s');
    await t.runtime.schedule('s', { id: 'daily', cron: '0 9 * * *' });
    await t.runtime.send('s', { id: 'c1', content: '/status' });
    await settle();
    expect(JSON.stringify(t.of('s').at(-1)?.data)).toContain('schedules: daily at 1970-01-01T09:00:00.000Z');
    expect((await t.runtime.status('s'))?.schedules).toEqual([{ id: 'daily', dueAt: 9 * 3_600_000, cron: '0 9 * * *' }]);
  });

  it('C20: a schedule further out than a timer can hold (24.8 days) arms no longer timer than that, and fires on its day', async () => {
    const a = recordingAgent();
    const sim = new SimulatedClock();
    let longest = 0;
    const clock = {
      setTimeout: (fn: (...args: unknown[]) => void, ms: number) => ((longest = Math.max(longest, ms)), sim.setTimeout(fn, ms)),
      clearTimeout: (id: unknown) => sim.clearTimeout(id as never),
      now: () => sim.now(),
    };
    const t = testRuntime({ agent: a.agent, debounceMs: 0, clock });
    await t.runtime.open('s');
    const day = 24 * 3_600_000;
    await t.runtime.schedule('s', { id: 'monthly', afterMs: 30 * day });
    await settle();
    expect(longest).toBeLessThanOrEqual(2_147_483_647); // Node fires a longer one at once, again and again
    for (let d = 0; d < 29; d++) {
      sim.increment(day);
      await settle();
    }
    expect(a.timers()).toEqual([]);
    sim.increment(day);
    await settle();
    expect(a.timers().map((s) => s!.id)).toEqual(['monthly']);
    await expect(t.runtime.schedule('s', { id: 'x', at: 1e20 })).rejects.toMatchObject({ code: 'INVALID_MESSAGE' });
  });

  it('C20: schedules due while the process was down fire once each after the restart (a recurring one once, not per interval)', async () => {
    const path = sqlite();
    const first = recordingAgent();
    const before = testRuntime({ agent: first.agent, debounceMs: 0, store: new SqliteStore(path) });
    await before.runtime.open('s');
    await before.runtime.schedule('s', { id: 'once', afterMs: 1000 });
    await before.runtime.schedule('s', { id: 'tick', every: 1000 });
    // The process dies at 0; the next one starts at 10 500.
    const second = recordingAgent();
    const clock = new SimulatedClock();
    clock.set(10_500);
    const after = testRuntime({ agent: second.agent, debounceMs: 0, store: new SqliteStore(path), clock });
    await settle();
    clock.increment(0); // the process timer, armed for what is overdue
    await settle(20);
    expect(second.timers().map((s) => [s!.id, s!.dueAt]).sort()).toEqual([['once', 1000], ['tick', 1000]]);
    expect(await after.runtime.schedules('s')).toEqual([{ id: 'tick', dueAt: 11_000, everyMs: 1000 }]);
    // A third process on the same store fires nothing again.
    const third = recordingAgent();
    const clock3 = new SimulatedClock();
    clock3.set(10_600);
    testRuntime({ agent: third.agent, debounceMs: 0, store: new SqliteStore(path), clock: clock3 });
    await settle();
    clock3.increment(0);
    await settle(20);
    expect(third.timers()).toEqual([]);
    expect(first.timers()).toEqual([]);
  });
});

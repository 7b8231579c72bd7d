/**
 * Attack on C20 (issue 19), severity HIGH.
 *
 * The process timer (`Waker`) fires at most WAKE_BATCH (100) sessions per wake; when a wake
 * gets a full batch it assumes more are due and re-arms at once (`#arm(now)`, a 0 ms timer),
 * whether or not the batch could be fired. A batch that cannot be fired — the store refuses
 * commits (a full disk, a lost connection: FaultStore), or the sessions cannot be activated
 * — is the same 100 sessions at the next wake: the process loops on 0 ms timers, each round
 * activating 100 sessions, failing 100 commits and querying the store, for as long as the
 * outage lasts (and for good, if the sessions can never fire: see the cron wedge). With
 * 99 such sessions the waker backs off by `storeRetryMs` as designed; with 100 it is a
 * CPU busy loop that also hammers the failing store. Shown on the simulated clock: while
 * no time passes at all, the waker keeps asking the store for due sessions.
 */
import { describe, expect, it } from 'vitest';
import { MemoryStore, type Agent } from '../src/index.ts';
import { FaultStore } from '../src/testing/index.ts';
import { settle, testRuntime } from './helpers.ts';

class CountingStore extends MemoryStore {
  dueCalls = 0;
  override dueSessions(before: number, limit: number): string[] {
    this.dueCalls++;
    return super.dueSessions(before, limit);
  }
}

async function outage(sessions: number) {
  const inner = new CountingStore();
  const store = new FaultStore(inner);
  const ran: string[] = [];
  const agent: Agent = (turn) => {
    ran.push(...turn.inputs.map((i) => `${turn.sessionId} ${i.id}`));
    return 'ok';
  };
  const t = testRuntime({ agent, debounceMs: 0, store, idleTimeoutMs: 1000, onError: () => {} });
  for (let i = 0; i < sessions; i++) {
    await t.runtime.open(`s${i}`);
    await t.runtime.schedule(`s${i}`, { id: 'wake', afterMs: 10_000 });
  }
  await t.advance(1000);
  await t.advance(1000);
  expect(t.runtime.sessionIds()).toEqual([]); // all passivated
  store.failing = new Error('database or disk is full');
  await t.advance(8000); // due now: the wake finds them, and every commit fails
  await settle(20);
  const before = inner.dueCalls;
  // No time passes from here: a waker that backs off asks the store nothing more.
  for (let i = 0; i < 30; i++) {
    t.clock.increment(0);
    await settle(5);
  }
  const spins = inner.dueCalls - before;
  // The store comes back: every session fires once.
  store.failing = undefined;
  for (let i = 0; i < 40; i++) await t.advance(1000);
  await settle(50);
  return { spins, fired: new Set(ran).size, ran: ran.length };
}

describe('C20 the process timer while the store fails', () => {
  it('C20: with 99 due sessions and commits failing, the waker backs off (no wake while no time passes), and all fire once after recovery', async () => {
    const r = await outage(99);
    expect(r.spins).toBe(0);
    expect(r).toMatchObject({ fired: 99, ran: 99 });
  });

  it('C20: with 100 due sessions and commits failing, the waker does not spin on 0 ms timers while no time passes', async () => {
    const r = await outage(100);
    expect(r.spins).toBeLessThanOrEqual(1);
    expect(r).toMatchObject({ fired: 100, ran: 100 });
  });
});

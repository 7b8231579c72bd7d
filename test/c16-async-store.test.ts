/**
 * C1 and C16 on an asynchronous store (a network database): every store call answers when
 * fast-check's scheduler says so. The session is claimed synchronously and its inputs wait
 * in order while it activates; a receipt says `accepted` only once its step is committed.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryStore, StoreUnavailableError, type Receipt, type Store, type Turn } from '../src/index.ts';
import { SqliteStore } from '../src/sqlite.ts';
import { FaultStore } from '../src/testing/index.ts';
import { seqGaps, settle, testRuntime, turnOverlaps } from './helpers.ts';

/** A store whose every answer is a task of the scheduler: load, commit and reads land in any order it picks. */
function scheduledStore(s: fc.Scheduler, inner: Store): Store {
  const later = <T>(label: string, call: () => T | Promise<T>): Promise<T> => s.schedule(Promise.resolve(), label).then(call);
  return {
    durable: true,
    load: (id, options) => later(`load ${id}`, () => inner.load(id, options)),
    commit: (steps) => later(`commit ${steps.map((step) => step.sessionId).join(',')}`, () => inner.commit(steps)),
    eventsAfter: (id, seq) => later('eventsAfter', () => inner.eventsAfter(id, seq)),
    sessionsWithPending: () => later('pending', () => inner.sessionsWithPending()),
    prune: (before, isLive) => inner.prune(before, isLive),
    close: () => inner.close(),
  };
}

/** Lets the scheduler and the event loop (group commit runs once per loop turn) run until both are idle. */
async function drive(s: fc.Scheduler): Promise<void> {
  for (let round = 0; round < 200; round++) {
    await settle();
    if (s.count() === 0) {
      await settle();
      if (s.count() === 0) return;
    }
    await s.waitOne();
  }
  throw new Error('the runtime never came to rest');
}

/** An agent tracking how many of its turns run at once (C1). */
function countingAgent() {
  let running = 0;
  let max = 0;
  const agent = async (turn: Turn) => {
    running++;
    max = Math.max(max, running);
    await Promise.resolve();
    running--;
    return `reply to ${turn.inputs.map((i) => i.content).join('+')}`;
  };
  return { agent, max: () => max };
}

describe('C1 and C16 on an asynchronous store', () => {
  it('C1: inputs and commands sent while the session activates are taken in the order sent, one turn at a time, each in one done', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.scheduler(),
        fc.array(fc.constantFrom('input', 'command', 'duplicate'), { minLength: 1, maxLength: 6 }),
        fc.constantFrom('collect', 'followup'),
        async (s, plan, busyPolicy) => {
          const counting = countingAgent();
          const t = testRuntime({ agent: counting.agent, store: scheduledStore(s, new MemoryStore()), debounceMs: 0, maxWaitMs: 0, busyPolicy });
          const receipts: Promise<Receipt>[] = [];
          const sent: string[] = [];
          plan.forEach((what, i) => {
            const id = what === 'duplicate' && sent.length > 0 ? sent[0]! : what === 'command' ? `c${i}` : `m${i}`;
            const content = what === 'command' ? '/status' : id;
            if (what === 'input' || (what === 'duplicate' && sent.length === 0)) sent.push(id);
            receipts.push(t.runtime.send('s', { id, content: what === 'duplicate' && sent[0] === id ? id : content }));
          });
          // Claimed at once, before the store has answered anything (C1).
          expect(t.runtime.sessionIds().length + (s.count() > 0 ? 1 : 0)).toBeGreaterThan(0);
          await drive(s);
          const settled = await Promise.all(receipts);
          expect(settled.filter((r) => r.status === 'rejected')).toEqual([]);
          expect(counting.max()).toBe(sent.length > 0 ? 1 : 0);
          expect(turnOverlaps(t.events)).toEqual([]);
          expect(seqGaps(t.events)).toEqual([]);
          expect(t.dones('s').flatMap((d) => d.input_ids)).toEqual(sent);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('C1: a passivated session re-activates once, however many callers arrive while the store reads it', async () => {
    const inner = new MemoryStore();
    let loads = 0;
    const store: Store = {
      ...scheduledLess(inner),
      load: (id, options) => {
        if (options.recent > 0) loads++; // an activation's load, not a status read
        return new Promise((resolve) => setTimeout(() => resolve(inner.load(id, options)), 1));
      },
    };
    const counting = countingAgent();
    const t = testRuntime({ agent: counting.agent, store, debounceMs: 0, maxWaitMs: 0, idleTimeoutMs: 10 });
    await t.runtime.send('s', { id: 'm0', content: 'first' });
    await t.advance(100);
    expect(t.runtime.sessionIds()).toEqual([]); // passivated (C11)
    loads = 0;
    const receipts = Array.from({ length: 5 }, (_, i) => t.runtime.send('s', { id: `m${i + 1}`, content: `n${i + 1}` }));
    const status = t.runtime.status('s');
    const results = await Promise.all(receipts);
    expect(loads).toBe(1);
    expect(results.map((r) => r.status)).toEqual(['accepted', 'accepted', 'accepted', 'accepted', 'accepted']);
    expect((await status)?.sessionId).toBe('s');
    for (let i = 0; i < 5 && t.dones('s').length < 3; i++) await settle();
    await new Promise((resolve) => setTimeout(resolve, 5));
    await settle();
    expect(t.dones('s').flatMap((d) => d.input_ids)).toEqual(['m0', 'm1', 'm2', 'm3', 'm4', 'm5']);
    expect(counting.max()).toBe(1);
  });

  it('C16: a receipt waits for its commit, and a commit that fails turns it into STORE_UNAVAILABLE with nothing published', async () => {
    const store = new FaultStore(new SqliteStore(':memory:'), { latencyMs: 1 });
    const t = testRuntime({ agent: async () => 'ok', store, debounceMs: 0, maxWaitMs: 0, storeRetryMs: 60_000, onError: () => {} });
    const first = await t.runtime.send('s', { id: 'm1', content: 'one' });
    expect(first).toMatchObject({ status: 'accepted', durability: 'durable' });
    while (t.dones('s').length === 0) await new Promise((resolve) => setTimeout(resolve, 2));
    const before = t.events.length;
    store.failing = new Error('database or disk is full');
    const refused = await t.runtime.send('s', { id: 'm2', content: 'two' });
    expect(refused.status).toBe('rejected');
    expect(refused.error).toBeInstanceOf(StoreUnavailableError);
    expect(t.events.length).toBe(before); // nothing of the failed step was published
    expect(t.runtime.health().ok).toBe(false);
    // Nothing of m2 was stored: the inbox holds no input a restart would run.
    store.failing = undefined;
    expect(await store.sessionsWithPending()).toEqual([]);
  });

  it('C16: a receipt stays unresolved until the store acknowledges the commit of its step', async () => {
    const inner = new SqliteStore(':memory:');
    const acks: (() => void)[] = [];
    const store: Store = {
      ...scheduledLess(inner),
      commit: (steps) => new Promise<void>((resolve) => acks.push(() => resolve(inner.commit(steps)))),
    };
    const t = testRuntime({ agent: async () => 'ok', store, debounceMs: 0, maxWaitMs: 0 });
    let receipt: Receipt | undefined;
    void t.runtime.send('s', { id: 'm1', content: 'one' }).then((r) => (receipt = r));
    await settle();
    expect(acks).toHaveLength(1); // the step is with the store
    expect(receipt).toBeUndefined();
    expect(t.events).toEqual([]); // and nothing of it is published
    acks.shift()!();
    await settle();
    expect(receipt).toMatchObject({ status: 'accepted', durability: 'durable' });
    expect(t.events.map((e) => e.type)).toContain('state');
  });

  it('C14: shutdown waits for a session still activating, and runs the input it accepted', async () => {
    const inner = new MemoryStore();
    const store = new FaultStore(inner, { latencyMs: 5 });
    const counting = countingAgent();
    const t = testRuntime({ agent: counting.agent, store, debounceMs: 0, maxWaitMs: 0 });
    const receipt = t.runtime.send('s', { id: 'm1', content: 'during activation' });
    const down = t.runtime.shutdown({ drainMs: 1000 });
    expect(await receipt).toMatchObject({ status: 'accepted' });
    await down;
    expect(t.dones('s').flatMap((d) => [...d.input_ids, ...(d.cancelled_input_ids ?? [])])).toEqual(['m1']);
  });
});

/** The store's own methods, bound (to override one of them). */
function scheduledLess(inner: Store): Store {
  return {
    durable: inner.durable,
    load: (id, options) => inner.load(id, options),
    commit: (steps) => inner.commit(steps),
    eventsAfter: (id, seq) => inner.eventsAfter(id, seq),
    sessionsWithPending: () => inner.sessionsWithPending(),
    prune: (before, isLive) => inner.prune(before, isLive),
    close: () => inner.close(),
  };
}

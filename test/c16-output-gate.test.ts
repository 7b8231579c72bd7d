/**
 * C16 output gate: nothing of a step is visible before its commit succeeds. A store that
 * fails on demand (an I/O error, a full disk) stands in for the real thing; the SQLite store
 * under it keeps what was committed, as a restart would find it.
 */
import { describe, expect, it } from 'vitest';
import { StoreUnavailableError, type SessionEvent, type StepRecord } from '../src/index.ts';
import { SqliteStore } from '../src/sqlite.ts';
import { controlledAgent, seqGaps, settle, testRuntime } from './helpers.ts';

/** SQLite in memory whose commits throw while `failing` is set, like a full disk. */
class FaultyStore extends SqliteStore {
  failing = false;
  writes = 0;
  constructor() {
    super(':memory:');
  }
  override commit(steps: readonly StepRecord[]): void {
    this.writes++;
    if (this.failing) throw new Error('database or disk is full');
    super.commit(steps);
  }
}

function setup() {
  const store = new FaultyStore();
  const control = controlledAgent();
  const errors: unknown[] = [];
  const t = testRuntime({ agent: control.agent, store, debounceMs: 0, maxWaitMs: 0, storeRetryMs: 1000, onError: (e) => errors.push(e) });
  const seen: SessionEvent[] = [];
  const streamErrors: unknown[] = [];
  t.runtime.eventsOf('s').subscribe({ next: (e) => seen.push(e), error: (e) => streamErrors.push(e) });
  return { ...t, store, control, errors, seen, streamErrors };
}

describe('C16 output gate', () => {
  it('a failed commit publishes nothing of its step, stops the session, and recovery runs the input once with no seq reused', async () => {
    const t = setup();
    expect(await t.runtime.send('s', { id: 'm1', content: 'hello' })).toMatchObject({ status: 'accepted', durability: 'durable' });
    await t.advance(0);
    expect(t.control.calls).toHaveLength(1);
    const committed = t.events.length;
    const lastSeq = t.events.at(-1)!.seq;

    t.store.failing = true;
    t.control.last('s')!.turn.emit('never seen');
    t.control.last('s')!.resolve('the end');
    await settle();

    // Nothing of the failed steps: no delta, no done, not on events$ nor on the session stream.
    expect(t.events).toHaveLength(committed);
    expect(t.seen.map((e) => e.type)).not.toContain('done');
    expect(t.streamErrors).toEqual([expect.any(StoreUnavailableError)]);
    expect(t.runtime.health()).toMatchObject({ ok: false, failedSessions: 1, fenced: false });
    expect(t.runtime.sessionIds()).not.toContain('s');

    // The store works again: the retry re-activates the session from what was committed.
    t.store.failing = false;
    await t.advance(1000);
    expect(t.runtime.health()).toMatchObject({ ok: true, failedSessions: 0 });
    expect(t.control.calls).toHaveLength(2);
    expect(t.control.calls[1]!.turn.inputs.map((i) => i.id)).toEqual(['m1']);
    t.control.last('s')!.resolve('again');
    await settle();

    const dones = t.dones('s');
    expect(dones.filter((d) => d.input_ids.includes('m1'))).toHaveLength(1); // C12: exactly once
    expect(t.events.slice(committed).every((e) => e.seq > lastSeq)).toBe(true); // no seq reused
    expect(seqGaps(t.events)).toEqual([]); // C8 across the failure
    expect(t.events.some((e) => e.type === 'message.delta' && e.data.content === 'never seen')).toBe(false);
  });

  it("a stream's error reaches the deprecated (next, error) subscribe form too", async () => {
    const t = setup();
    const errors: unknown[] = [];
    const stream = t.runtime.eventsOf('s');
    // rxjs's older form, still common in JavaScript callers.
    (stream.subscribe as unknown as (next: () => void, error: (e: unknown) => void) => void).call(stream, () => {}, (e) => errors.push(e));
    await t.runtime.send('s', { id: 'm1', content: 'x' });
    await t.advance(0);
    t.store.failing = true;
    t.control.last('s')!.resolve('done');
    await settle();
    expect(errors).toEqual([expect.any(StoreUnavailableError)]);
  });

  it('an input the store cannot take is rejected with a typed error, never acknowledged, and no agent runs', async () => {
    const t = setup();
    await t.runtime.open('s');
    await settle();
    t.store.failing = true;
    const receipt = await t.runtime.send('s', { id: 'm1', content: 'hello' });
    expect(receipt).toMatchObject({ status: 'rejected', code: 'INTERNAL_ERROR' });
    expect(receipt.error).toBeInstanceOf(StoreUnavailableError);
    await t.advance(10);
    expect(t.control.calls).toHaveLength(0);
  });

  it('an agent starts only for a turn whose start is committed; the input, stored with that step, is refused with it', async () => {
    const t = setup();
    await t.runtime.open('s');
    await settle();
    t.store.failing = true;
    // The step that accepts m1 and starts its turn does not commit: m1 is not in the inbox,
    // its turn never starts, and the client is told so (it may send it again).
    const refused = await t.runtime.send('s', { id: 'm1', content: 'hello' });
    expect(refused).toMatchObject({ status: 'rejected', code: 'INTERNAL_ERROR' });
    expect(refused.error).toBeInstanceOf(StoreUnavailableError);
    await t.advance(0);
    expect(t.control.calls).toHaveLength(0);
    expect(t.events.filter((e) => e.type === 'state' && e.data.state === 'running')).toHaveLength(0);

    t.store.failing = false;
    await t.advance(1000);
    expect(t.control.calls).toHaveLength(0); // nothing of m1 was stored, so nothing re-runs
    expect(await t.runtime.send('s', { id: 'm1', content: 'hello' })).toMatchObject({ status: 'accepted', durability: 'durable' });
    await settle();
    expect(t.control.calls.map((c) => c.turn.inputs.map((i) => i.id))).toEqual([['m1']]);
  });

  it('a new session whose first save fails is refused, and the next input after recovery is served', async () => {
    const t = setup();
    t.store.failing = true;
    expect(await t.runtime.send('s', { id: 'm1', content: 'hello' })).toMatchObject({ status: 'rejected', code: 'INTERNAL_ERROR' });
    expect(t.runtime.health().ok).toBe(false);
    t.store.failing = false;
    expect(await t.runtime.send('s', { id: 'm1', content: 'hello' })).toMatchObject({ status: 'accepted' });
    await t.advance(0);
    expect(t.control.calls).toHaveLength(1);
    // Healthy again once the retry's probe write went through, not merely on activation.
    await t.advance(1000);
    expect(t.runtime.health().ok).toBe(true);
  });
});

describe('C16 store outages at scale', () => {
  it('many sessions failing at once: one report, one probe per retry pass with backoff, all back once the store works', async () => {
    const t = setup();
    const ids = Array.from({ length: 40 }, (_, i) => `s${i}`);
    const receipts = await Promise.all(ids.map((id) => t.runtime.send(id, { id: `${id}-m1`, content: 'hi' })));
    expect(receipts.filter((r) => r.status === 'accepted')).toHaveLength(ids.length);
    await t.advance(0);
    expect(t.control.calls).toHaveLength(40);
    t.store.failing = true;
    for (const call of t.control.calls) call.resolve('done');
    await settle();
    expect(t.runtime.health()).toMatchObject({ ok: false, failedSessions: 40 });
    expect(t.errors.filter((e) => e instanceof StoreUnavailableError)).toHaveLength(1);

    const before = t.store.writes;
    await t.advance(1000); // first pass: the probe fails, nobody else is tried
    expect(t.store.writes - before).toBeLessThanOrEqual(2);
    await t.advance(1000); // backoff: the next pass is 2000 ms after the first
    expect(t.store.writes - before).toBeLessThanOrEqual(2);
    t.store.failing = false;
    await t.advance(1000);
    expect(t.runtime.health()).toMatchObject({ ok: true, failedSessions: 0 });
    await settle();
    for (const call of t.control.calls.slice(40)) call.resolve('again');
    await settle();
    for (const id of ids) expect(t.dones(id).filter((d) => d.input_ids.includes(`${id}-m1`)), id).toHaveLength(1);
    expect(t.errors.filter((e) => e instanceof StoreUnavailableError)).toHaveLength(1);
  });

  it('an input the store refuses takes its session out of service; the next input that commits brings it back, health with it', async () => {
    const t = setup();
    await t.runtime.open('s');
    await settle();
    t.store.failing = true;
    expect((await t.runtime.send('s', { id: 'm1', content: 'x' })).status).toBe('rejected');
    expect(t.runtime.health()).toMatchObject({ ok: false, failedSessions: 1, storeError: 'database or disk is full' });
    t.store.failing = false;
    // Before any retry pass: the resent input re-activates the session and commits.
    expect((await t.runtime.send('s', { id: 'm1', content: 'x' })).status).toBe('accepted');
    expect(t.runtime.health()).toMatchObject({ ok: true, failedSessions: 0 });
  });

  it('no retry re-activates a session once shutdown has begun', async () => {
    const t = setup();
    await t.runtime.send('s', { id: 'm1', content: 'x' });
    await t.advance(0);
    t.store.failing = true;
    t.control.last('s')!.resolve('done');
    await settle();
    const shutdown = t.runtime.shutdown({ drainMs: 5000 });
    t.store.failing = false;
    await t.advance(1000);
    expect(t.control.calls).toHaveLength(1);
    expect(t.runtime.sessionIds()).toEqual([]);
    await t.advance(5000);
    await shutdown;
  });
});

describe('C7 widened: subscribers never take the process down', () => {
  it('a throwing subscriber of eventsOf and events$ (direct and piped) is reported; the others receive every event', async () => {
    const control = controlledAgent();
    const errors: unknown[] = [];
    const t = testRuntime({ agent: control.agent, debounceMs: 0, maxWaitMs: 0, onError: (e) => errors.push(e) });
    const { map } = await import('rxjs');
    t.runtime.eventsOf('s').subscribe(() => {
      throw new Error('subscriber bug');
    });
    t.runtime.events$.pipe(map((e) => e.seq)).subscribe(() => {
      throw new Error('piped subscriber bug');
    });
    t.runtime.events$
      .pipe(
        map(() => {
          throw new Error('operator bug');
        }),
      )
      .subscribe();
    const after: SessionEvent[] = [];
    t.runtime.eventsOf('s').subscribe((e) => after.push(e));
    await t.runtime.send('s', { id: 'm1', content: 'hi' });
    await t.advance(0);
    control.last('s')!.resolve('ok');
    await settle();
    expect(after.map((e) => e.type)).toContain('done');
    expect(after).toEqual(t.of('s'));
    const messages = errors.map((e) => (e as Error).message);
    expect(messages).toContain('subscriber bug');
    expect(messages).toContain('piped subscriber bug');
    expect(messages).toContain('operator bug');
    // Every event reached the throwing subscribers too (each failure reported once per event).
    expect(messages.filter((m) => m === 'subscriber bug')).toHaveLength(after.length);
  });
});

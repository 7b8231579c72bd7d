/**
 * C12: input metadata is the client's data, whatever its shape. Payloads stay out of the
 * machines' context (ids in context, payloads beside it): XState revives anything in a
 * restored context that looks like an actor reference, and metadata shaped like one came
 * back to the agent as `undefined`, `Object.prototype` or `Object`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createActor } from 'xstate';
import { sessionMachine, type SessionInput } from '../src/index.ts';
import { onboardingKind } from '../src/runtime/onboarding-kind.ts';
import type { OnboardingContext } from '../machines/onboarding.ts';
import type { Question } from '../machines/events.ts';
import { SqliteStore } from '../src/sqlite.ts';
import { controlledAgent, settle, stored, testRuntime } from './helpers.ts';
import { settings } from './machine-helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'baton-metadata-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const path = () => join(dir, `m${n++}.db`);
const hang = () => new Promise<never>(() => {});
const question = (q: string): Question => ({ question: q, header: q, options: [], multi_select: false });
const QUESTIONS = [question('a'), question('b'), question('c')] as const;

/** Metadata a client may send, each shaped like something XState persists or revives. */
const SHAPES = {
  actorRef: { xstate$$type: 1, id: 'x' },
  refLike: { id: 'child', sessionId: 'x.1', send: 'x' },
  fullRefLike: { id: 'child', sessionId: 'x.1', send: 'x', ref: 'r' },
  nested: { a: { xstate$$type: 1, id: 'y' }, list: [{ xstate$$type: 1, id: 'z' }, { id: 'q', sessionId: 's', send: 1, ref: {} }] },
  // As the wire delivers it: JSON.parse makes `__proto__` an own key, not the prototype.
  proto: JSON.parse('{"__proto__":{"xstate$$type":1,"id":"p"},"constructor":{"prototype":{"polluted":true}},"lang":"en"}'),
  protoRef: JSON.parse('{"__proto__":{"id":"c","sessionId":"x.2","send":"x","ref":"r"},"toString":"not a function"}'),
} satisfies Record<string, Record<string, unknown>>;
type Shape = keyof typeof SHAPES;
const ids = Object.keys(SHAPES) as Shape[];

/** What the agent saw of each input, by id. */
function seen(calls: ReturnType<typeof controlledAgent>['calls']): Map<string, SessionInput> {
  return new Map(calls.flatMap((c) => c.turn.inputs.map((i) => [i.id, i] as const)));
}

function expectSameMetadata(received: SessionInput | undefined, sent: Record<string, unknown>) {
  expect(received).toBeDefined();
  const metadata = received!.metadata;
  expect(metadata).toEqual(sent);
  // toEqual alone does not see a swapped prototype or an own `__proto__` key that went missing.
  expect(JSON.stringify(metadata)).toBe(JSON.stringify(sent));
  expect(Object.getPrototypeOf(metadata)).toBe(Object.prototype);
}

describe('C12 metadata survives a restart as data', () => {
  it('C12: metadata shaped like actor references, in a running turn and its backlog, reaches the agent unchanged after a crash', async () => {
    const p = path();
    const first = controlledAgent();
    const before = testRuntime({ agent: first.agent, debounceMs: 0, store: new SqliteStore(p) });
    // The first input starts a turn the agent holds; the rest wait in the backlog.
    for (const id of ids) {
      expect(await before.runtime.send('s', { id, content: id, metadata: SHAPES[id] })).toMatchObject({ status: 'accepted', durability: 'durable' });
    }
    await settle();
    expect(first.calls.map((c) => c.turn.inputs.map((i) => i.id))).toEqual([[ids[0]]]);
    // The process dies; a new runtime opens the same file.
    const second = controlledAgent();
    const after = testRuntime({ agent: second.agent, debounceMs: 0, store: new SqliteStore(p) });
    await settle();
    second.calls[0]?.resolve();
    await settle();
    second.calls[1]?.resolve();
    await settle();
    expect(after.dones('s').flatMap((d) => (d.success ? d.input_ids : []))).toEqual(ids);
    const inputs = seen(second.calls);
    for (const id of ids) expectSameMetadata(inputs.get(id), SHAPES[id]);
  });

  it('C12: metadata in an open batch kept by a shutdown reaches the agent unchanged at the next start', async () => {
    const p = path();
    const first = controlledAgent();
    const before = testRuntime({ agent: first.agent, debounceMs: 1000, maxWaitMs: 5000, store: new SqliteStore(p) });
    await Promise.all(ids.map((id) => before.runtime.send('s', { id, content: id, metadata: SHAPES[id] })));
    expect((await before.runtime.status('s'))?.state).toBe('collecting');
    await before.runtime.shutdown({ drainMs: 0 });
    expect(first.calls).toEqual([]);
    // Nothing the client sent is in the saved snapshot: only ids.
    const store = new SqliteStore(p);
    expect(JSON.stringify((await stored(store, 's'))?.session.snapshot)).not.toMatch(/xstate\$\$type|sessionId":"x|polluted/);
    const second = controlledAgent();
    const after = testRuntime({ agent: second.agent, debounceMs: 1000, maxWaitMs: 5000, store });
    await after.advance(1000);
    second.calls[0]?.resolve();
    await settle();
    expect(after.dones('s').flatMap((d) => (d.success ? d.input_ids : []))).toEqual(ids);
    const inputs = seen(second.calls);
    for (const id of ids) expectSameMetadata(inputs.get(id), SHAPES[id]);
  });

  it('C12: steered inputs keep their metadata, and a passivated session hands it back on its next turn', async () => {
    const p = path();
    const first = controlledAgent();
    const t = testRuntime({ agent: first.agent, debounceMs: 0, busyPolicy: 'steer', idleTimeoutMs: 1000, store: new SqliteStore(p) });
    await t.runtime.send('s', { id: 'a', content: 'a', metadata: SHAPES.actorRef });
    await settle();
    const steered: SessionInput[] = [];
    first.calls[0]!.turn.steer!.drain();
    await t.runtime.send('s', { id: 'b', content: 'b', metadata: SHAPES.proto });
    await settle();
    steered.push(...first.calls[0]!.turn.steer!.drain());
    expectSameMetadata(steered[0], SHAPES.proto);
    first.calls[0]!.resolve('ok');
    await settle();
    await t.advance(2000);
    expect((await t.runtime.status('s'))?.state).toBe('passivated');
    await t.runtime.send('s', { id: 'c', content: 'c', metadata: SHAPES.nested });
    await settle();
    expectSameMetadata(first.calls[1]?.turn.inputs[0], SHAPES.nested);
  });

  it('C12: the machines keep no client metadata in their context: their persisted snapshots hold ids (and answer texts)', () => {
    const marker = /xstate\$\$type|sessionId":"x|polluted|not a function/;
    const session = createActor(sessionMachine, { input: { sessionId: 's', settings: settings({ debounceMs: 0, busyPolicy: 'steer' }) } }).start();
    session.send({ type: 'activate' });
    for (const id of ids) session.send({ type: 'input', input: { id, content: id, metadata: SHAPES[id] } });
    session.send({ type: 'agent.steering', turnId: 1 });
    session.send({ type: 'input', input: { id: 'steered', content: 'x', metadata: SHAPES.fullRefLike } });
    expect(session.getSnapshot().context.turn?.steered).toEqual([{ id: 'steered' }]);
    expect(JSON.stringify(session.getPersistedSnapshot())).not.toMatch(marker);

    const onboarding = createActor(onboardingKind({ analyzer: hang }).machine, { input: { sessionId: 'o', questions: QUESTIONS } }).start();
    onboarding.send({ type: 'start' });
    onboarding.send({ type: 'input', input: { id: 'a1', content: 'one', metadata: SHAPES.nested } });
    onboarding.send({ type: 'input', input: { id: 'a2', content: 'two', metadata: SHAPES.protoRef } });
    const context = onboarding.getSnapshot().context as OnboardingContext;
    expect([context.current, ...context.pending]).toEqual([
      { id: 'a1', content: 'one', questionId: 'q1' },
      { id: 'a2', content: 'two' },
    ]);
    expect(JSON.stringify(onboarding.getPersistedSnapshot())).not.toMatch(marker);
  });
});

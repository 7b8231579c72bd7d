import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StaleEpochError, type LoadedSession, type StepRecord } from '../src/index.ts';
import { isOwnedElsewhere } from '../src/runtime/cluster-store.ts';
import { MIGRATIONS, migrate } from '../src/runtime/postgres-migrations.ts';
import { PgFixture, waitFor } from './postgres-helpers.ts';

const all = { recent: 10, history: 10 };
const snapshot = (seq: number) => ({ sessionId: 's', kind: 'agent', snapshot: { value: 'idle', seq }, seq, version: 1 });
const idle = (sessionId: string, seq: number) => ({ sessionId, seq, type: 'state', data: { state: 'idle' } }) as const;
const step = (sessionId: string, seq: number, extra: Partial<StepRecord> = {}): StepRecord => ({
  sessionId,
  events: [idle(sessionId, seq)],
  consumed: [],
  session: { ...snapshot(seq), sessionId },
  ...extra,
});
/** A lease that outlives the test unless a test takes it away: no renewal interferes. */
const slow = { leaseTtlMs: 60_000, renewMs: 30_000 };

let pg: PgFixture;
let schema: string;
beforeEach(() => {
  pg = new PgFixture();
  schema = pg.schema();
});
afterEach(() => pg.cleanup());

const epochOf = async (id: string) => (await pg.admin`SELECT epoch FROM ${pg.admin(schema)}.sessions WHERE id = ${id}`)[0]?.epoch as number | undefined;

describe('PostgresStore claims (C17)', () => {
  it('a live owner keeps its sessions: another node is told who owns one, the owner loads it again at the same epoch', async () => {
    const a = await pg.node(schema, { nodeId: 'a', ...slow });
    const b = await pg.node(schema, { nodeId: 'b', ...slow });
    expect(await a.store.load('s', all)).toBeUndefined(); // nothing stored yet, and no row made
    expect(await epochOf('s')).toBeUndefined();
    await a.store.commit([step('s', 1)]);
    expect(await epochOf('s')).toBe(1);
    expect(await b.store.load('s', all)).toEqual({ ownedBy: a.store.node, kind: 'agent' });
    expect(await b.store.ownerOf('s')).toEqual(a.store.node);
    expect(((await a.store.load('s', all)) as LoadedSession).lastSeq).toBe(1);
    expect(await epochOf('s')).toBe(1);
    // A status read claims nothing, and says who runs the session.
    const status = (await b.store.load('s', { ...all, claim: false })) as LoadedSession;
    expect({ seq: status.session.seq, owner: status.owner }).toEqual({ seq: 1, owner: a.store.node });
    expect(await b.store.ownerOf('s')).toEqual(a.store.node);
    await a.store.commit([step('s', 2, { release: true })]);
    expect(((await b.store.load('s', { ...all, claim: false })) as LoadedSession).owner).toBeUndefined();
  });

  it('a node whose lease ran out loses its sessions: the next node claims with epoch + 1 and the old owner\'s write is refused', async () => {
    const a = await pg.node(schema, { nodeId: 'a', ...slow });
    const b = await pg.node(schema, { nodeId: 'b', ...slow });
    await a.store.commit([step('s', 1, { accepted: [{ id: 'm1', content: 'hi' }] })]);
    // a stops renewing in the others' eyes (a paused process): its lease expires by the database clock.
    await pg.admin`UPDATE ${pg.admin(schema)}.nodes SET lease_until = now() - interval '1 second' WHERE id = 'a'`;
    expect(await a.store.ownerOf('s')).toBeUndefined();
    expect(await a.store.orphans(10)).toEqual(['s']);
    const claimed = (await b.store.load('s', all)) as LoadedSession;
    expect(claimed.pending.map((i) => i.id)).toEqual(['m1']);
    expect(await epochOf('s')).toBe(2);
    const refused = a.store.commit([step('s', 2, { consumed: ['m1'] }), step('other', 1)]);
    await expect(refused).rejects.toThrow(StaleEpochError);
    await expect(refused).rejects.toThrow(/session "s" is now at epoch 2, owned by node b/);
    // Only that session stops: the error names it.
    await expect(refused).rejects.toMatchObject({ holder: `node b (incarnation ${b.store.node.incarnation})`, sessionId: 's' });
    // Nothing of the refused group was stored, the other session's step included (C16).
    expect(await a.store.load('other', all)).toBeUndefined();
    expect((await b.store.eventsAfter('s', 0)).map((e) => e.seq)).toEqual([1]);
    // a forgot its claim: it may not write s again until it claims it.
    await expect(a.store.commit([step('s', 3)])).rejects.toThrow(/this node never claimed it/);
    await b.store.commit([step('s', 2, { consumed: ['m1'] })]);
  });

  it('a crashed node (closed without leaving) is dead once its lease expires; another node then claims its sessions', async () => {
    const a = await pg.node(schema, { nodeId: 'a', leaseTtlMs: 300, renewMs: 100 });
    const b = await pg.node(schema, { nodeId: 'b', leaseTtlMs: 300, renewMs: 100 });
    await a.store.commit([step('s', 1)]);
    await a.store.close();
    expect(isOwnedElsewhere(await b.store.load('s', all))).toBe(true);
    const claimed = await waitFor(async () => {
      const loaded = await b.store.load('s', all);
      return isOwnedElsewhere(loaded) ? undefined : loaded;
    }, 'the lease of a to expire');
    expect(claimed?.session.seq).toBe(1);
    expect(await epochOf('s')).toBe(2);
    expect(await b.store.ownerOf('s')).toEqual(b.store.node);
  });

  it('nodes claiming one released session at once: exactly one gets it, every time', async () => {
    const a = await pg.node(schema, { nodeId: 'a', ...slow });
    const others = await Promise.all(['b', 'c', 'd', 'e'].map((nodeId) => pg.node(schema, { nodeId, ...slow })));
    await a.store.commit([step('s', 1, { release: true })]);
    for (let round = 0; round < 10; round++) {
      const before = (await epochOf('s'))!;
      const answers = await Promise.all(others.map(({ store }) => store.load('s', all)));
      const winners = others.filter((_, i) => !isOwnedElsewhere(answers[i]));
      expect(winners).toHaveLength(1);
      expect(answers.filter(isOwnedElsewhere).map((x) => x.ownedBy)).toEqual([winners[0]!.store.node, winners[0]!.store.node, winners[0]!.store.node]);
      expect(await epochOf('s')).toBe(before + 1);
      await winners[0]!.store.commit([step('s', round + 2, { release: true })]);
    }
  });

  it('a release step gives the session up in its transaction: epoch + 1, no owner; the releaser must claim again', async () => {
    const a = await pg.node(schema, { nodeId: 'a', ...slow });
    const b = await pg.node(schema, { nodeId: 'b', ...slow });
    await a.store.commit([step('s', 1)]);
    await a.store.commit([step('s', 2, { release: true })]);
    expect(await epochOf('s')).toBe(2);
    expect(await a.store.ownerOf('s')).toBeUndefined();
    await expect(a.store.commit([step('s', 3)])).rejects.toThrow(StaleEpochError);
    expect(((await b.store.load('s', all)) as LoadedSession).lastSeq).toBe(2);
    expect(await epochOf('s')).toBe(3);
  });

  it('leave releases every session of the node and deletes its lease', async () => {
    const a = await pg.node(schema, { nodeId: 'a', ...slow });
    const b = await pg.node(schema, { nodeId: 'b', ...slow });
    await a.store.commit([step('s', 1), step('t', 1)]);
    await a.store.leave();
    expect(await pg.admin`SELECT id FROM ${pg.admin(schema)}.nodes ORDER BY id`).toEqual([{ id: 'b' }]);
    expect(await epochOf('s')).toBe(2);
    expect(isOwnedElsewhere(await b.store.load('t', all))).toBe(false);
    await expect(a.store.load('s', all)).rejects.toThrow(StaleEpochError);
  });

  it('refuses to claim or write before join', async () => {
    const store = pg.store(schema);
    await expect(store.load('s', all)).rejects.toThrow(/join\(\) before/);
    await expect(store.commit([step('s', 1)])).rejects.toThrow(/join\(\) before/);
    expect(store.selfFenced()).toBe(true);
  });
});

describe('PostgresStore mail and orphans', () => {
  it('deliver writes mail to any session, even one with no row yet; a second delivery of an id is a duplicate', async () => {
    const a = await pg.node(schema, { nodeId: 'a', ...slow });
    expect(await a.store.deliver('s', { kind: 'input', entry: { id: 'm1', content: 'hello', metadata: { lang: 'en' } } })).toBe('accepted');
    expect(await a.store.deliver('s', { kind: 'input', entry: { id: 'm1', content: 'changed' } })).toBe('duplicate');
    expect(await a.store.deliver('s', { kind: 'command', entry: { id: 'c1', content: '/status' } })).toBe('accepted');
    expect(await a.store.deliver('s', { kind: 'control', entry: { id: 'k1', content: 'stop' } })).toBe('accepted');
    expect(await a.store.deliver('s', { kind: 'answer', entry: { id: 'q1', content: 'blue', metadata: { questionId: 'color' } } })).toBe('accepted');
    expect((await a.store.mail('s')).map((m) => `${m.kind}:${m.entry.id}`)).toEqual(['input:m1', 'command:c1', 'control:k1', 'answer:q1']);
    expect((await a.store.mail('s'))[0]?.entry).toEqual({ id: 'm1', content: 'hello', metadata: { lang: 'en' } });
    expect(await a.store.sessionsWithPending()).toEqual(['s']);
  });

  it('the owner takes mail with a step: taken mail is not offered again; inputs and answers wait until consumed, commands and controls go', async () => {
    const a = await pg.node(schema, { nodeId: 'a', ...slow });
    const b = await pg.node(schema, { nodeId: 'b', ...slow });
    await a.store.commit([step('s', 1, { accepted: [{ id: 'own', content: 'said here' }] }), step('t', 1)]);
    expect(await a.store.mailWaiting()).toEqual([]); // what the owner accepts itself is taken already
    await b.store.deliver('s', { kind: 'input', entry: { id: 'm1', content: 'hello' } });
    await b.store.deliver('s', { kind: 'command', entry: { id: 'c1', content: '/status' } });
    await b.store.deliver('s', { kind: 'answer', entry: { id: 'q1', content: 'blue', metadata: { questionId: 'color' } } });
    await b.store.deliver('x', { kind: 'input', entry: { id: 'm', content: 'nobody owns x' } });
    expect(await a.store.mailWaiting()).toEqual(['s']);
    expect(await b.store.mailWaiting()).toEqual([]);
    // Pending work includes mail not yet taken: a node that claims the session after a crash runs it in order.
    expect(((await a.store.load('s', all)) as LoadedSession).pending.map((i) => i.id)).toEqual(['own', 'm1', 'q1']);
    await a.store.commit([{ sessionId: 's', events: [], consumed: ['c1'], taken: ['m1', 'c1', 'q1'] }]);
    expect(await a.store.mail('s')).toEqual([]);
    expect(await a.store.mailWaiting()).toEqual([]);
    const loaded = (await a.store.load('s', all)) as LoadedSession;
    expect(loaded.pending).toEqual([{ id: 'own', content: 'said here' }, { id: 'm1', content: 'hello' }, { id: 'q1', content: 'blue', metadata: { questionId: 'color' } }]);
    expect(loaded.recent.map((i) => i.id)).toEqual(['own', 'm1', 'q1']);
    await a.store.commit([{ sessionId: 's', events: [], consumed: ['own', 'm1', 'q1'] }]);
    expect(await a.store.sessionsWithPending()).toEqual(['x']);
    expect(await b.store.deliver('s', { kind: 'input', entry: { id: 'm1', content: 'late resend' } })).toBe('duplicate');
    // Mail the owner then accepts as its own input (the same id) is taken by that step.
    await b.store.deliver('s', { kind: 'input', entry: { id: 'm2', content: 'two' } });
    await a.store.commit([{ sessionId: 's', accepted: [{ id: 'm2', content: 'two' }], events: [], consumed: [] }]);
    expect(await a.store.mail('s')).toEqual([]);
  });

  it('orphans: sessions with waiting mail and no live owner — no row, no owner, or a dead one', async () => {
    const a = await pg.node(schema, { nodeId: 'a', ...slow });
    const b = await pg.node(schema, { nodeId: 'b', ...slow });
    await a.store.commit([step('owned', 1), step('released', 1, { release: true }), step('dead', 1)]);
    for (const id of ['nobody', 'owned', 'released', 'dead', 'quiet']) await b.store.deliver(id, { kind: 'input', entry: { id: 'm', content: 'x' } });
    await b.store.commit([step('quiet', 1, { consumed: ['m'] })]);
    expect((await b.store.orphans(10)).sort()).toEqual(['nobody', 'released']);
    await pg.admin`UPDATE ${pg.admin(schema)}.sessions SET owner_incarnation = owner_incarnation - 1 WHERE id = 'dead'`;
    expect((await b.store.orphans(10)).sort()).toEqual(['dead', 'nobody', 'released']);
    expect(await b.store.orphans(1)).toHaveLength(1);
  });
});

describe('PostgresStore storage', () => {
  it('keeps any string exactly — NUL and lone surrogates included — and one odd input never fails the group', async () => {
    const a = await pg.node(schema, { nodeId: 'a', ...slow });
    const odd = { id: 'id\u0000x', content: 'a\u0000b \ud800 c', metadata: { note: '\u0000' } };
    const oddEvent = { sessionId: 's', seq: 1, type: 'message.delta', data: { message_id: 'r1', content: odd.content } } as const;
    await a.store.commit([
      step('s', 1, { accepted: [odd], transcript: [{ role: 'user', content: odd.content, inputId: odd.id }], events: [oddEvent], session: { ...snapshot(1), snapshot: { said: odd.content } } }),
      step('t', 1, { accepted: [{ id: 'plain', content: 'plain' }] }),
    ]);
    expect(await a.store.eventsAfter('s', 0)).toEqual([oddEvent]);
    await a.store.commit([step('s', 2, { session: { ...snapshot(2), snapshot: { said: odd.content } } })]);
    const loaded = (await a.store.load('s', all)) as LoadedSession;
    expect(loaded.session.snapshot).toEqual({ said: odd.content });
    expect(loaded.pending).toEqual([odd]);
    expect(loaded.history).toEqual([{ role: 'user', content: odd.content, inputId: odd.id }]);
    await a.store.commit([{ sessionId: 's', events: [], consumed: [odd.id] }]);
    expect(((await a.store.load('s', all)) as LoadedSession).pending).toEqual([]);
    expect(((await a.store.load('t', all)) as LoadedSession).pending).toEqual([{ id: 'plain', content: 'plain' }]);
  });

  it('C16: a group holding several steps of one session writes them in order, in one transaction', async () => {
    const a = await pg.node(schema, { nodeId: 'a', ...slow });
    await a.store.commit([
      step('s', 1, { accepted: [{ id: 'm1', content: 'one' }] }),
      step('t', 1),
      step('s', 2, { consumed: ['m1'], transcript: [{ role: 'user', content: 'one', inputId: 'm1' }] }),
      step('s', 3, { accepted: [{ id: 'm2', content: 'two' }] }),
    ]);
    const loaded = (await a.store.load('s', all)) as LoadedSession;
    expect({ seq: loaded.session.seq, lastSeq: loaded.lastSeq, pending: loaded.pending.map((i) => i.id) }).toEqual({ seq: 3, lastSeq: 3, pending: ['m2'] });
    expect(loaded.history).toEqual([{ role: 'user', content: 'one', inputId: 'm1' }]);
    expect(await epochOf('s')).toBe(1);
    // Deleted and made again in one group: the new session starts clean, owned here.
    await a.store.commit([{ sessionId: 's', events: [], consumed: [], deleted: true }, step('s', 1)]);
    expect((await a.store.eventsAfter('s', 0)).map((e) => e.seq)).toEqual([1]);
    expect(((await a.store.load('s', all)) as LoadedSession).pending).toEqual([]);
    await a.store.commit([step('s', 2)]);
  });

  it('a deleted session keeps its events until retention; its id used again starts afresh', async () => {
    const a = await pg.node(schema, { nodeId: 'a', ...slow });
    await a.store.commit([step('s', 1, { accepted: [{ id: 'm1', content: 'x' }] }), step('s', 2)]);
    await a.store.commit([{ sessionId: 's', events: [idle('s', 3)], consumed: [], deleted: true }]);
    expect(await a.store.load('s', all)).toBeUndefined();
    expect(await a.store.mail('s')).toEqual([]);
    expect((await a.store.eventsAfter('s', 1)).map((e) => e.seq)).toEqual([2, 3]);
    expect(await a.store.prune(snapshot(0).seq, () => false)).toBe(0);
    expect(await a.store.eventsAfter('s', 0)).toHaveLength(3);
    await a.store.commit([step('s', 1)]);
    expect((await a.store.eventsAfter('s', 0)).map((e) => e.seq)).toEqual([1]);
    await a.store.commit([{ sessionId: 's', events: [], consumed: [], deleted: true }]);
    await a.store.prune(Number.MAX_SAFE_INTEGER, () => false);
    expect(await a.store.eventsAfter('s', 0)).toEqual([]);
  });

  it('prune deletes sessions written before the cutoff that wait for nothing, are not live here and have no live owner elsewhere', async () => {
    const a = await pg.node(schema, { nodeId: 'a', ...slow });
    const b = await pg.node(schema, { nodeId: 'b', ...slow });
    const at = (sessionId: string, when: number, extra: Partial<StepRecord> = {}) => step(sessionId, 1, { session: { ...snapshot(1), sessionId, at: when }, release: true, ...extra });
    await a.store.commit([at('old', 100), at('new', 5_000), at('waiting', 100, { accepted: [{ id: 'm', content: 'x' }] }), at('live', 100)]);
    await b.store.commit([{ ...at('elsewhere', 100), release: false }]);
    expect(await a.store.prune(1_000, (id) => id === 'live')).toBe(1);
    expect(await a.store.load('old', { ...all, claim: false })).toBeUndefined();
    expect(await a.store.eventsAfter('old', 0)).toEqual([]);
    for (const id of ['new', 'waiting', 'live', 'elsewhere']) expect(await a.store.load(id, { ...all, claim: false })).toBeDefined();
  });

  it('prune spares a session claimed while it waited for the row: the claim is judged on the locked row', async () => {
    const a = await pg.node(schema, { nodeId: 'a', ...slow });
    const b = await pg.node(schema, { nodeId: 'b', ...slow });
    await a.store.commit([step('old', 1, { session: { ...snapshot(1), sessionId: 'old', at: 100 }, release: true })]);
    let pruned: Promise<number> | undefined;
    await pg.admin.begin(async (tx) => {
      // b claims the session; before that commits, prune finds the row ownerless and waits for its lock.
      await tx`UPDATE ${tx(schema)}.sessions SET owner_node = 'b', owner_incarnation = ${b.store.node.incarnation}, epoch = epoch + 1 WHERE id = 'old'`;
      pruned = a.store.prune(1_000, () => false);
      await waitFor(async () => (await pg.admin`SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE '%DELETE FROM sessions%'`).length > 0, 'prune to wait');
    });
    expect(await pruned).toBe(0);
    expect(await b.store.ownerOf('old')).toEqual(b.store.node);
  });

  it('keeps exactly the newest keepEvents events of every session it writes', async () => {
    const a = await pg.node(schema, { nodeId: 'a', keepEvents: 10, ...slow });
    for (let seq = 1; seq <= 30; seq++) await a.store.commit([{ sessionId: 'a', events: [idle('a', seq)], consumed: [] }]);
    expect((await a.store.eventsAfter('a', 0)).map((e) => e.seq)).toEqual([21, 22, 23, 24, 25, 26, 27, 28, 29, 30]);
  });

  it('C8 across nodes: a group commit with more events than keepEvents keeps them all until the next one, so nodes tailing the session read every event', async () => {
    const a = await pg.node(schema, { nodeId: 'a', keepEvents: 10, ...slow });
    const seqs = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
    await a.store.commit([{ sessionId: 'a', events: seqs(1, 5).map((seq) => idle('a', seq)), consumed: [] }]);
    // One group: two steps of the session, 25 events in all (a streamed reply committed at once).
    await a.store.commit([
      { sessionId: 'a', events: seqs(6, 20).map((seq) => idle('a', seq)), consumed: [] },
      { sessionId: 'a', events: seqs(21, 30).map((seq) => idle('a', seq)), consumed: [] },
    ]);
    expect((await a.store.eventsAfter('a', 5)).map((e) => e.seq)).toEqual(seqs(6, 30));
    // The next commit trims to the newest keepEvents again.
    await a.store.commit([{ sessionId: 'a', events: [idle('a', 31)], consumed: [] }]);
    expect((await a.store.eventsAfter('a', 0)).map((e) => e.seq)).toEqual(seqs(22, 31));
  });
});

describe('PostgresStore migrations', () => {
  it('are idempotent, and nodes starting at once run each exactly once', async () => {
    await Promise.all([migrate(pg.admin, schema), migrate(pg.admin, schema), pg.node(schema, { nodeId: 'x', ...slow })]);
    await migrate(pg.admin, schema);
    expect(await pg.admin`SELECT version FROM ${pg.admin(schema)}.baton_schema_version ORDER BY version`).toEqual(MIGRATIONS.map((_, i) => ({ version: i + 1 })));
  });

  it('open a schema the previous version made and keep its data', async () => {
    await migrate(pg.admin, schema, MIGRATIONS.length - 1);
    const t = pg.admin(schema);
    await pg.admin`INSERT INTO ${t}.sessions (id, kind, snapshot, seq, updated_at, epoch) VALUES ('s', 'agent', '{"v":1}', 7, 0, 3)`;
    await pg.admin`INSERT INTO ${t}.inbox (session_id, input_id, kind, entry) VALUES ('s', 'a', 'input', '{"id":"a","content":"from v1"}')`;
    const a = await pg.node(schema, { nodeId: 'a', ...slow });
    const loaded = (await a.store.load('s', all)) as LoadedSession;
    expect({ seq: loaded.session.seq, snapshot: loaded.session.snapshot, pending: loaded.pending }).toEqual({ seq: 7, snapshot: { v: 1 }, pending: [{ id: 'a', content: 'from v1' }] });
    expect(await epochOf('s')).toBe(4);
    expect((await a.store.mail('s')).map((m) => m.entry.id)).toEqual(['a']);
    expect(await a.store.deliver('s', { kind: 'answer', entry: { id: 'q', content: 'x' } })).toBe('accepted');
    expect(await pg.admin`SELECT max(version) AS v FROM ${t}.baton_schema_version`).toEqual([{ v: MIGRATIONS.length }]);
  });

  it('refuse a schema from a newer Baton, and a schema of another application, in one line', async () => {
    await migrate(pg.admin, schema);
    await pg.admin`INSERT INTO ${pg.admin(schema)}.baton_schema_version (version) VALUES (${MIGRATIONS.length + 1})`;
    await expect(pg.node(schema)).rejects.toThrow(`the PostgreSQL schema "${schema}" has Baton schema version ${MIGRATIONS.length + 1}, newer than this Baton (${MIGRATIONS.length}); upgrade Baton`);
    const foreign = pg.schema();
    await pg.admin.unsafe(`CREATE SCHEMA ${foreign}; CREATE TABLE ${foreign}.invoices (id int)`);
    await expect(pg.node(foreign)).rejects.toThrow(`the PostgreSQL schema "${foreign}" holds tables of another application, not Baton's`);
  });

  it('rejects bad options with a TypeError quoting the value', () => {
    expect(() => pg.store('Bad-Schema')).toThrow(/option "schema" must be a lower-case identifier, got "Bad-Schema"/);
    expect(() => pg.store(schema, { leaseTtlMs: 1000, renewMs: 1000 })).toThrow(/"renewMs" must be less than leaseTtlMs \(1000\), got 1000/);
  });
});

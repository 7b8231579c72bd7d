/**
 * Model-based test: random command sequences over many sessions, run against the real
 * runtime and against a reference model a few dozen lines long (FIFO per session, batch
 * windows, backlog cap, stop, command lane). After every step the turns the agent saw
 * must be the turns the model predicts; at the end every accepted input is in exactly
 * one `done`, in arrival order, with gapless seq and no overlapping turns.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Turn } from '../src/index.ts';
import { seqGaps, settle, testRuntime, turnOverlaps } from './helpers.ts';

const DEBOUNCE = 100;
const MAX_WAIT = 250;
const CAP = 4;
const SESSIONS = ['a', 'b', 'c'] as const;
type Policy = 'collect' | 'followup';

interface ModelSession {
  batch: string[];
  firstAt: number;
  lastAt: number;
  backlog: string[];
  turn: string[] | null;
  /** Every turn the agent should have seen, in order. */
  turns: string[][];
  accepted: string[];
}

class Model {
  now = 0;
  nextId = 0;
  readonly sessions = new Map<string, ModelSession>();
  constructor(readonly policy: Policy) {}

  session(id: string): ModelSession {
    let s = this.sessions.get(id);
    if (!s) this.sessions.set(id, (s = { batch: [], firstAt: 0, lastAt: 0, backlog: [], turn: null, turns: [], accepted: [] }));
    return s;
  }

  start(s: ModelSession, inputs: string[]) {
    s.turn = inputs;
    s.turns.push(inputs);
  }

  /** What the runtime must answer to an input. */
  input(sessionId: string, id: string): 'primary' | 'queued' | 'rejected' {
    const s = this.session(sessionId);
    if (s.batch.length + s.backlog.length >= CAP) return 'rejected';
    s.accepted.push(id);
    if (s.turn) {
      s.backlog.push(id);
      return 'queued';
    }
    if (s.batch.length === 0) s.firstAt = this.now;
    s.lastAt = this.now;
    s.batch.push(id);
    return 'primary';
  }

  finish(sessionId: string) {
    const s = this.session(sessionId);
    s.turn = null;
    if (s.backlog.length === 0) return;
    const take = this.policy === 'followup' ? 1 : s.backlog.length;
    this.start(s, s.backlog.splice(0, take));
  }

  stop(sessionId: string) {
    const s = this.session(sessionId);
    s.turn = null;
    s.batch = [];
    s.backlog = [];
  }

  advance(ms: number) {
    this.now += ms;
    for (const s of this.sessions.values()) {
      if (s.batch.length > 0 && !s.turn && Math.min(s.lastAt + DEBOUNCE, s.firstAt + MAX_WAIT) <= this.now) {
        this.start(s, s.batch);
        s.batch = [];
      }
    }
  }
}

function realSystem(policy: Policy) {
  const pending = new Map<string, { turn: Turn; finish: (ok: boolean) => void }[]>();
  const seen = new Map<string, string[][]>();
  const agent = (turn: Turn) =>
    new Promise<string>((resolve, reject) => {
      seen.set(turn.sessionId, [...(seen.get(turn.sessionId) ?? []), turn.inputs.map((i) => i.id)]);
      const list = pending.get(turn.sessionId) ?? [];
      list.push({ turn, finish: (ok) => (ok ? resolve('ok') : reject(new Error('agent failed'))) });
      pending.set(turn.sessionId, list);
    });
  const t = testRuntime({ agent, debounceMs: DEBOUNCE, maxWaitMs: MAX_WAIT, backlogCap: CAP, busyPolicy: policy });
  return { t, pending, seen };
}
type Real = ReturnType<typeof realSystem>;

/** After every step: the agent has seen exactly the turns the model predicts. */
function agree(m: Model, r: Real) {
  for (const id of SESSIONS) expect(r.seen.get(id) ?? [], `turns of ${id}`).toEqual(m.sessions.get(id)?.turns ?? []);
}

const sessionArb = fc.constantFrom(...SESSIONS);

class SendInput implements fc.AsyncCommand<Model, Real> {
  constructor(readonly sessionId: string) {}
  check = () => true;
  async run(m: Model, r: Real) {
    const id = `i${m.nextId++}`;
    const expected = m.input(this.sessionId, id);
    const receipt = await r.t.runtime.send(this.sessionId, { id, content: id });
    expect(receipt.status === 'rejected' ? 'rejected' : receipt.mode).toBe(expected);
    await settle();
    agree(m, r);
  }
  toString = () => `input(${this.sessionId})`;
}

class SendStatus implements fc.AsyncCommand<Model, Real> {
  constructor(readonly sessionId: string) {}
  check = () => true;
  async run(m: Model, r: Real) {
    const id = `c${m.nextId++}`;
    const s = m.session(this.sessionId);
    const receipt = await r.t.runtime.send(this.sessionId, { id, content: '/status' });
    // Commands count against the backlog cap like inputs.
    if (s.batch.length + s.backlog.length >= CAP) {
      expect(receipt.code).toBe('SESSION_BUSY');
      return;
    }
    s.accepted.push(id);
    await settle();
    // Priority lane: answered at once, whatever the session is doing.
    expect(r.t.of(this.sessionId).findLast((e) => e.type === 'message')?.data).toMatchObject({ id: `${id}:reply` });
  }
  toString = () => `status(${this.sessionId})`;
}

class Finish implements fc.AsyncCommand<Model, Real> {
  constructor(readonly sessionId: string, readonly ok: boolean) {}
  check = (m: Readonly<Model>) => m.sessions.get(this.sessionId)?.turn != null;
  async run(m: Model, r: Real) {
    m.finish(this.sessionId);
    const call = r.pending.get(this.sessionId)?.shift();
    expect(call, 'the model expects a running turn').toBeDefined();
    call?.finish(this.ok);
    await settle();
    agree(m, r);
  }
  toString = () => `${this.ok ? 'finish' : 'fail'}(${this.sessionId})`;
}

class Stop implements fc.AsyncCommand<Model, Real> {
  constructor(readonly sessionId: string) {}
  check = (m: Readonly<Model>) => m.sessions.has(this.sessionId);
  async run(m: Model, r: Real) {
    m.stop(this.sessionId);
    await r.t.runtime.control(this.sessionId, 'stop');
    await settle();
    // A stopped turn's late answer must be discarded: deliver it now.
    for (const call of r.pending.get(this.sessionId)?.splice(0) ?? []) call.finish(true);
    await settle();
    agree(m, r);
  }
  toString = () => `stop(${this.sessionId})`;
}

class Advance implements fc.AsyncCommand<Model, Real> {
  constructor(readonly ms: number) {}
  check = () => true;
  async run(m: Model, r: Real) {
    m.advance(this.ms);
    await r.t.advance(this.ms);
    agree(m, r);
  }
  toString = () => `advance(${this.ms})`;
}

const commands = [
  sessionArb.map((s) => new SendInput(s)),
  sessionArb.map((s) => new SendInput(s)),
  sessionArb.map((s) => new SendStatus(s)),
  fc.tuple(sessionArb, fc.boolean()).map(([s, ok]) => new Finish(s, ok)),
  sessionArb.map((s) => new Stop(s)),
  fc.constantFrom(0, 50, 100, 150, 250).map((ms) => new Advance(ms)),
];

describe('model-based: runtime vs reference model', () => {
  for (const policy of ['collect', 'followup'] as const) {
    it(`keeps C1, C2, C3, C4 (${policy}), C5, C6 and C8 over random command sequences`, async () => {
      await fc.assert(
        fc.asyncProperty(fc.commands(commands, { size: '+1' }), async (cmds) => {
          const m = new Model(policy);
          const r = realSystem(policy);
          await fc.asyncModelRun(() => ({ model: m, real: r }), cmds);
          // Drain: finish everything so every accepted input reaches a done.
          for (let i = 0; i < 50; i++) {
            await r.t.advance(MAX_WAIT);
            for (const list of r.pending.values()) list.shift()?.finish(true);
          }
          await settle();
          for (const id of SESSIONS) {
            const ids = r.t.dones(id).flatMap((d) => [...d.input_ids, ...(d.cancelled_input_ids ?? [])]);
            const inputs = (m.sessions.get(id)?.accepted ?? []).filter((x) => x.startsWith('i'));
            expect(ids, `every accepted input of ${id} in exactly one done, in order`).toEqual(inputs);
          }
          expect(seqGaps(r.t.events)).toEqual([]);
          expect(turnOverlaps(r.t.events)).toEqual([]);
        }),
        { numRuns: 150 },
      );
    });
  }
});

/**
 * Race tests: the real-world bugs this runtime exists to rule out, replayed under every
 * interleaving fast-check's scheduler picks. Agent completions and client sends are
 * scheduled tasks, so their order is the scheduler's choice, not the event loop's.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createActor } from 'xstate';
import { sessionMachine, type Receipt, type SessionEffect, type Turn } from '../src/index.ts';
import { runScheduled, seqGaps, testRuntime, turnOverlaps } from './helpers.ts';
import { settings } from './machine-helpers.ts';

/** Runs `fn` when the scheduler releases the task called `label`. */
function later(s: fc.Scheduler, label: string, fn: () => unknown): void {
  void s.schedule(Promise.resolve(), label).then(fn);
}

/** An agent whose every turn ends when the scheduler says so, tracking overlap (C1). */
function scheduledAgent(s: fc.Scheduler, behaviour: (turn: Turn, n: number) => 'ok' | 'throw' = () => 'ok') {
  let running = 0;
  let maxRunning = 0;
  let n = 0;
  const agent = async (turn: Turn) => {
    const call = ++n;
    running++;
    maxRunning = Math.max(maxRunning, running);
    try {
      turn.emit(`delta of turn ${call}`);
      await s.schedule(Promise.resolve(), `agent turn ${call}`);
      if (behaviour(turn, call) === 'throw') throw new Error(`turn ${call} failed`);
      return `reply ${call}`;
    } finally {
      running--;
    }
  };
  return { agent, maxRunning: () => maxRunning, calls: () => n };
}

describe('races (fast-check scheduler)', () => {
  it('C1: a second input during the first turn await never overlaps it', async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), fc.constantFrom('collect', 'followup', 'steer'), async (s, policy) => {
        const a = scheduledAgent(s);
        const t = testRuntime({ agent: a.agent, debounceMs: 0, busyPolicy: policy });
        const sent: string[] = [];
        const receipts: Promise<Receipt>[] = [];
        for (const id of ['m1', 'm2', 'm3']) {
          later(s, `send ${id}`, () => {
            sent.push(id);
            receipts.push(t.runtime.send('s', { id, content: id }));
          });
        }
        await runScheduled(s);
        expect((await Promise.all(receipts)).map((r) => r.status)).toEqual(['accepted', 'accepted', 'accepted']);
        expect(a.maxRunning()).toBe(1);
        expect(turnOverlaps(t.events)).toEqual([]);
        // Every input in exactly one done, in arrival order.
        expect(t.dones('s').flatMap((d) => d.input_ids)).toEqual(sent);
        expect(seqGaps(t.events)).toEqual([]);
      }),
    );
  });

  it('C1: concurrent first messages for a new session start one agent (the sentinel bug)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), fc.integer({ min: 2, max: 6 }), async (s, connections) => {
        const a = scheduledAgent(s);
        const t = testRuntime({ agent: a.agent, debounceMs: 0 });
        const receipts: Promise<Receipt>[] = [];
        const live: string[][] = [];
        for (let c = 0; c < connections; c++) {
          later(s, `connection ${c}`, () => {
            receipts.push(t.runtime.send('new-session', { id: `c${c}`, content: 'hi' }));
            // Claimed by the first send, synchronously: every later one finds the same actor.
            live.push(t.runtime.sessionIds());
          });
        }
        await runScheduled(s);
        expect(live).toEqual(Array(connections).fill(['new-session']));
        expect((await Promise.all(receipts)).filter((r) => r.status === 'accepted')).toHaveLength(connections);
        expect(a.maxRunning()).toBe(1);
        expect(t.dones().flatMap((d) => d.input_ids).sort()).toEqual([...Array(connections).keys()].map((c) => `c${c}`));
        expect(t.of('new-session').filter((e) => e.type === 'state' && e.data.state === 'created')).toHaveLength(1);
      }),
    );
  });

  it('C1: inputs that arrive while the session is still activating start exactly one turn', async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), async (s) => {
        const actor = createActor(sessionMachine, { input: { sessionId: 's', settings: settings({ debounceMs: 0 }) } });
        const effects: SessionEffect[] = [];
        actor.on('*', (e) => effects.push(e));
        actor.start();
        for (const id of ['m1', 'm2']) {
          later(s, `send ${id}`, () => actor.send({ type: 'input', input: { id, content: id } }));
        }
        later(s, 'activation done', () => actor.send({ type: 'activate' }));
        await s.waitIdle();
        const starts = effects.filter((e) => e.type === 'turn.start');
        expect(starts).toHaveLength(1);
        const inputs = starts[0]?.type === 'turn.start' ? starts[0].turn.inputs.map((i) => i.id) : [];
        // Whatever arrived before activation is batched; what came after joins the backlog, never a parallel turn.
        expect(inputs.length).toBeGreaterThanOrEqual(1);
        expect(actor.getSnapshot().context.queue.length + inputs.length).toBe(2);
        actor.stop();
      }),
    );
  });

  it('C5: a command between two messages — priority answers at once, ordered waits its turn', async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), fc.constantFrom('priority', 'ordered'), async (s, lane) => {
        const a = scheduledAgent(s);
        const t = testRuntime({ agent: a.agent, debounceMs: 0, commandLane: lane });
        let replyAtOnce = false;
        s.scheduleSequence([
          { builder: async () => t.runtime.send('s', { id: 'm1', content: 'one' }), label: 'send m1' },
          {
            builder: async () => {
              const receipt = await t.runtime.send('s', { id: 'c1', content: '/status' });
              // The step that accepted the command also answered it: its reply is published before the receipt.
              replyAtOnce = receipt.status === 'accepted' && t.of('s').some((e) => e.type === 'message' && e.data.id === 'c1:reply');
            },
            label: 'send /status',
          },
          { builder: async () => t.runtime.send('s', { id: 'm2', content: 'two' }), label: 'send m2' },
        ]);
        await runScheduled(s);
        const order = t.of('s').flatMap((e) =>
          e.type === 'message' ? ['reply'] : e.type === 'done' ? [`done:${e.data.input_ids.join(',')}`] : [],
        );
        if (lane === 'ordered') {
          // Arrival order, always: m1's turn, then the command, then m2's turn.
          expect(order).toEqual(['done:m1', 'reply', 'done:m2']);
        } else {
          // At once, whatever m1's turn is doing; m2 still gets its own turn after m1.
          expect(replyAtOnce).toBe(true);
          expect(order.filter((x) => x !== 'reply')).toEqual(['done:m1', 'done:m2']);
        }
      }),
    );
  });

  it('C6: /stop while the turn is starting ends it stopped, with nothing after it', async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), async (s) => {
        const a = scheduledAgent(s);
        const t = testRuntime({ agent: a.agent, debounceMs: 0 });
        later(s, 'send m1', () => t.runtime.send('s', { id: 'm1', content: 'one' }));
        later(s, 'send /stop', () => t.runtime.send('s', { id: 'c1', content: '/stop' }));
        await runScheduled(s);
        const dones = t.dones('s');
        const m1Done = dones.find((d) => d.input_ids.includes('m1'));
        // Either the stop came first (nothing to stop, m1 runs) or it stopped m1; never both, never lost.
        expect(dones.flatMap((d) => d.input_ids)).toEqual(['m1']);
        if (m1Done?.reason === 'stopped_by_user') {
          const at = t.of('s').findIndex((e) => e.type === 'done');
          expect(t.of('s').slice(at + 1).map((e) => e.type)).toEqual(['state']);
        }
        expect(a.maxRunning()).toBeLessThanOrEqual(1);
        expect(turnOverlaps(t.events)).toEqual([]);
      }),
    );
  });

  it('C7: an agent that throws, followed by a normal input, leaves the session working', async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), async (s) => {
        const a = scheduledAgent(s, (_turn, n) => (n === 1 ? 'throw' : 'ok'));
        const t = testRuntime({ agent: a.agent, debounceMs: 0 });
        s.scheduleSequence([
          { builder: async () => t.runtime.send('s', { id: 'm1', content: 'one' }), label: 'send m1' },
          { builder: async () => t.runtime.send('s', { id: 'm2', content: 'two' }), label: 'send m2' },
        ]);
        await runScheduled(s);
        const dones = t.dones('s');
        expect(dones.flatMap((d) => d.input_ids)).toEqual(['m1', 'm2']);
        expect(dones[0]).toMatchObject({ success: false, reason: 'failed' });
        expect(dones.at(-1)).toMatchObject({ success: true });
        expect((await t.runtime.status('s'))?.state).toBe('idle');
      }),
    );
  });
});

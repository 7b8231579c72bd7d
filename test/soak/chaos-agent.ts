import { setTimeout as sleep } from 'node:timers/promises';
import type { Agent, ScheduleRecord, Turn } from '../../src/index.ts';
import { hash, pick, prng } from './random.ts';
import { SOAK_TOOLS } from './tools.ts';

/** What a chaos turn does, by seeded chance. */
export const BEHAVIOURS = { fast: 40, slow: 20, stream: 20, throws: 7, hangs: 5, ignoresAbort: 8 } as const;
/** `--faults off`: an agent that only ever answers. */
const CALM_BEHAVIOURS: Record<keyof typeof BEHAVIOURS, number> = { ...BEHAVIOURS, throws: 0, hangs: 0, ignoresAbort: 0 };
/**
 * A turn with an input starting with this streams a flood (6 MB in 8 KB deltas): a slow
 * reader asks for it, because on loopback only a flood past the kernel's socket buffers
 * (about 4 MB here) makes the gateway drop deltas (`done.dropped`).
 */
export const FLOOD_PREFIX = 'flood';
const FLOOD_DELTAS = 768;
const FLOOD_DELTA = 'f'.repeat(8 * 1024);
/** The share of turns that call tools (C19) before their behaviour. */
const TOOL_TURNS = 0.3;
/** The share of turns (not woken by a schedule) that set a schedule of their session with `turn.schedule` (C20). */
const SCHEDULE_TURNS = 0.05;
/** A behaviour, or `tools` / `schedule`: counted once per turn that called tools / set a schedule first. */
export type Behaviour = keyof typeof BEHAVIOURS | 'flood' | 'tools' | 'schedule';
/** What the agent tells of schedules (the soak's gateway logs it for the checker, C20). */
export interface ScheduleLog {
  /** It set `schedule` (as soon as `turn.schedule` returned). */
  set(sessionId: string, schedule: ScheduleRecord): void;
  /** A turn was handed the fire `inputId` at `at` (`Date.now()`, as the turn began). */
  handed(sessionId: string, inputId: string, at: number): void;
}

/**
 * An agent that, per turn, answers fast, answers slowly, streams a long reply, throws, hangs
 * until the turn timeout, or ignores its abort signal and answers late (a late answer the
 * session must discard). Before that, some turns call the soak's tools (C19). The choices
 * are a function of the seed and the turn's first input id, so a replayed turn behaves the
 * same — and makes the same calls, which its journal replays. `seen` counts behaviours
 * for the summary. Some turns first set a one-shot schedule of their session (C20); a turn
 * a schedule woke sets none, so schedules do not breed. `log` hears of both: what was set,
 * and when a turn was handed a fire.
 */
export function chaosAgent(seed: number, turnTimeoutMs: number, seen: Record<Behaviour, number>, faults = true, log?: ScheduleLog): Agent {
  return async (turn) => {
    const at = Date.now();
    for (const input of turn.inputs) if (input.kind === 'timer') log?.handed(turn.sessionId, input.id, at);
    const random = prng(hash(seed, turn.sessionId, turn.inputs[0]?.id ?? ''));
    setSchedule(turn, prng(hash(seed, turn.sessionId, turn.inputs[0]?.id ?? '', 'schedule')), seen, log);
    const flood = turn.inputs.some((input) => input.content.startsWith(FLOOD_PREFIX));
    const behaviour: Behaviour = flood ? 'flood' : pick(random, faults ? BEHAVIOURS : CALM_BEHAVIOURS);
    seen[behaviour]++;
    // Its own stream of choices, so the behaviours drawn above are what they were before tools.
    const plan = prng(hash(seed, turn.sessionId, turn.inputs[0]?.id ?? '', 'tools'));
    if (!flood && plan() < TOOL_TURNS) {
      seen.tools++;
      const refused = await callTools(turn, plan);
      if (refused !== undefined) return refused;
    }
    const words = turn.inputs.length;
    switch (behaviour) {
      case 'fast':
        return `ok ${words}`;
      case 'slow':
        await sleep(20 + random() * 200, undefined, { signal: turn.signal }).catch(() => undefined);
        return `slow ${words}`;
      case 'stream': {
        const deltas = 5 + Math.floor(random() * 40);
        for (let i = 0; i < deltas && !turn.signal.aborted; i++) {
          turn.emit(`w${i} `);
          if (i % 8 === 7) await sleep(5);
        }
        return;
      }
      case 'flood':
        for (let i = 0; i < FLOOD_DELTAS && !turn.signal.aborted; i++) {
          turn.emit(FLOOD_DELTA);
          if (i % 32 === 31) await sleep(1); // let the socket drain between chunks, as a model's stream would
        }
        return;
      case 'throws':
        throw new Error('chaos: the agent crashed');
      case 'hangs':
        // Until the turn times out (or is stopped): the runtime aborts the signal.
        await new Promise<void>((resolve) => turn.signal.addEventListener('abort', () => resolve(), { once: true }));
        return;
      case 'ignoresAbort':
        // Answers after the turn may have been stopped or timed out: the answer must be dropped.
        await sleep(50 + random() * turnTimeoutMs * 1.5);
        turn.emit('late ');
        return 'late';
    }
  };
}

/**
 * By seeded chance, a one-shot schedule 100–1500 ms away, named after the turn's first input
 * (a re-run of the turn sets it again: a replacement, with a new due time).
 */
function setSchedule(turn: Turn, random: () => number, seen: Record<Behaviour, number>, log: ScheduleLog | undefined): void {
  const first = turn.inputs[0];
  if (!first || first.kind === 'timer' || random() >= SCHEDULE_TURNS) return;
  seen.schedule++;
  const record = turn.schedule({ id: `agent-${first.id}`, afterMs: 100 + Math.floor(random() * 1400), payload: `agent wake ${first.id}` });
  log?.set(turn.sessionId, record);
}

/**
 * One to three steps of tool calls — a step now and then two calls at once, so two approvals
 * may wait together — each call the plain or the guarded tool by seeded chance (and now
 * and then with an input the tool refuses). What it draws depends only on the results,
 * which a re-run replays. Returns the reply when a call was denied or cancelled: the turn
 * goes no further.
 */
async function callTools(turn: Turn, random: () => number): Promise<string | undefined> {
  for (let step = 0, steps = 1 + Math.floor(random() * 3); step < steps; step++) {
    const calls = Array.from({ length: random() < 0.2 ? 2 : 1 }, (_, i) => {
      const name = random() < 0.5 ? SOAK_TOOLS.plain : SOAK_TOOLS.guarded;
      return turn.callTool(name, random() < 0.05 ? { text: 42 } : { text: `s${step}c${i}` });
    });
    const results = await Promise.all(calls);
    const stopped = results.find((r) => r.status === 'denied' || r.status === 'cancelled');
    if (stopped && 'error' in stopped) return `no: ${stopped.error.code}`;
  }
  return undefined;
}

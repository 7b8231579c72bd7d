import { setTimeout as sleep } from 'node:timers/promises';
import type { Agent } from '../../src/index.ts';
import { hash, pick, prng } from './random.ts';

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
export type Behaviour = keyof typeof BEHAVIOURS | 'flood';

/**
 * An agent that, per turn, answers fast, answers slowly, streams a long reply, throws, hangs
 * until the turn timeout, or ignores its abort signal and answers late (a late answer the
 * session must discard). The choice is a function of the seed and the turn's first input
 * id, so a replayed turn behaves the same. `seen` counts behaviours for the summary.
 */
export function chaosAgent(seed: number, turnTimeoutMs: number, seen: Record<Behaviour, number>, faults = true): Agent {
  return async (turn) => {
    const random = prng(hash(seed, turn.sessionId, turn.inputs[0]?.id ?? ''));
    const flood = turn.inputs.some((input) => input.content.startsWith(FLOOD_PREFIX));
    const behaviour: Behaviour = flood ? 'flood' : pick(random, faults ? BEHAVIOURS : CALM_BEHAVIOURS);
    seen[behaviour]++;
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

/**
 * A session's schedule fires as its stream shows them (C20), and when the gateway first wrote
 * each event: what the schedule checks read. Pure.
 */
import { timerOf, type FrameRecord } from './history.ts';
import { refusalDones, type StreamEvent } from './tool-checks.ts';

/** One showing of a fire: the input `timer:<id>:<due>` taken by a turn, cancelled, or refused. */
export interface Fire {
  readonly input: string;
  readonly id: string;
  readonly dueAt: number;
  readonly how: 'consumed' | 'cancelled' | 'refused';
  /** The events that show it: the turn's `message.start` and `done`, the `done` alone, or the `error`. */
  readonly shown: readonly StreamEvent[];
}

/**
 * Every fire in the stream, by input id. A turn's inputs show at its `message.start` (the
 * last since the previous `done`: a re-run's, after a cut-off turn) — if every seq from it
 * to the `done` was seen: a gap may hide another turn's `done` and `message.start` (a gap
 * inside a message passes for dropped deltas) — else at the `done`. An input refused when
 * its session came back shows as an `error` and the `done` that cancels it right after:
 * one fire.
 */
export function firesOf(events: readonly StreamEvent[]): Map<string, Fire[]> {
  const seen = new Set(events.map((e) => e.seq));
  const whole = (from: number, to: number) => {
    for (let seq = from + 1; seq < to; seq++) if (!seen.has(seq)) return false;
    return true;
  };
  const fires = new Map<string, Fire[]>();
  const add = (input: string, how: Fire['how'], shown: StreamEvent[]) => {
    const timer = timerOf(input);
    if (timer) fires.set(input, [...(fires.get(input) ?? []), { input, ...timer, how, shown }]);
  };
  const pairedWithError = new Set<string>();
  const refusals = refusalDones(events);
  let start: StreamEvent | undefined;
  events.forEach((e, i) => {
    if (e.type === 'message.start') start = e;
    else if (e.type === 'error' && typeof e.data.event_id === 'string') {
      const next = events[i + 1];
      const cancelled = next?.type === 'done' && (next.data.cancelled_input_ids ?? []).includes(e.data.event_id);
      if (cancelled) pairedWithError.add(`${next.seq}:${e.data.event_id}`);
      add(e.data.event_id, 'refused', cancelled ? [e, next] : [e]);
    } else if (e.type === 'done') {
      const shown = start && whole(start.seq, e.seq) ? [start, e] : [e];
      for (const input of e.data.input_ids ?? []) add(input, 'consumed', shown);
      for (const input of e.data.cancelled_input_ids ?? []) if (!pairedWithError.has(`${e.seq}:${input}`)) add(input, 'cancelled', [e]);
      if (!refusals.has(e.seq)) start = undefined; // a refusal is said inside the running turn
    }
  });
  return fires;
}

/** The earliest time the gateway wrote any of these events to any connection (a replay is written later). */
export function writeTimes(frames: readonly FrameRecord[]): Map<number, number> {
  const times = new Map<number, number>();
  for (const f of frames) if (f.seq > 0 && f.ts !== undefined && !(f.ts >= (times.get(f.seq) ?? Infinity))) times.set(f.seq, f.ts);
  return times;
}

/** The earliest of these events' write times, if any was recorded. */
export function earliest(shown: readonly StreamEvent[], written: ReadonlyMap<number, number>): number | undefined {
  const times = shown.map((e) => written.get(e.seq)).filter((t): t is number => t !== undefined);
  return times.length > 0 ? Math.min(...times) : undefined;
}

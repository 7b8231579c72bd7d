/**
 * One soak session's schedules as its client knows them (C20): it sets them with `schedule`
 * frames, cancels some with `schedule_cancel`, and watches its stream for their fires, so
 * the end of the run can wait for the one-shots it is owed. The checker reads only the
 * history; this is the client's own bookkeeping.
 */
import type { Conn } from './client-connection.ts';
import { SCHEDULES } from './faults.ts';
import { timerOf } from './history.ts';
import { pick } from './random.ts';

/** Where a cancel stands: sent, answered (found or not), or refused (an error: nothing changed). */
type CancelState = 'sent' | 'cancelled' | 'not found' | 'refused';

interface Known {
  readonly everyMs?: number;
  /** From the ack: the schedule as stored. */
  dueAt?: number;
  refused?: boolean;
  cancel?: CancelState;
}

export class ClientSchedules {
  readonly #random: () => number;
  readonly #count: (what: string) => void;
  readonly #known = new Map<string, Known>();
  /** Frame ids of cancels, to the schedule each names. */
  readonly #cancels = new Map<string, string>();
  /** Timer input ids seen in a done or an error: fires. */
  readonly #fired = new Set<string>();
  #n = 0;

  /** `random`: the session's own stream for schedules, so its other choices stay as they were. */
  constructor(random: () => number, count: (what: string) => void) {
    this.#random = random;
    this.#count = count;
  }

  /** Sets a new schedule (its id is the frame's: each is set once); now and then cancels it a moment later. */
  set(conn: Conn, live: () => Conn | undefined): void {
    const random = this.#random;
    const id = `sch${this.#n++}`;
    const drawn = pick(random, SCHEDULES);
    // One recurring schedule at a time: a session it wakes every second while no client
    // watches outruns the 256 events a resume can replay.
    const kind = drawn === 'every' && this.recurring().length > 0 ? 'after' : drawn;
    this.#count(`schedule: ${kind}`);
    const wall = Date.now();
    const spec =
      kind === 'after' ? { afterMs: 100 + Math.floor(random() * 1400) } : kind === 'at past' ? { at: wall - Math.floor(random() * 2000) } : { everyMs: 1000 + Math.floor(random() * 1500) };
    const data = { id, payload: `wake ${id}`, ...('afterMs' in spec ? { after_ms: spec.afterMs } : 'at' in spec ? { at: spec.at } : { every_ms: spec.everyMs }) };
    this.#known.set(id, 'everyMs' in spec ? { everyMs: spec.everyMs } : {});
    conn.unanswered.set(id, 1);
    conn.send('schedule', data, id, { schedule: { id, ...spec, wall } });
    // A cancel racing the due time: sometimes before it, sometimes after the fire.
    if ('afterMs' in spec && random() < 0.25) {
      this.#count('schedule: cancelled soon after');
      setTimeout(() => {
        const on = live();
        if (on) this.cancel(on, id);
      }, random() * spec.afterMs * 1.2);
    }
  }

  /** When the session starts: one client in five sets a schedule first thing (a reminder as the conversation opens). */
  opening(conn: Conn, live: () => Conn | undefined): void {
    if (this.#random() < 0.2) this.set(conn, live);
  }

  /** Cancels one of the session's schedules, by seeded chance (fired, due or gone: the ack says which). */
  cancelOne(conn: Conn): void {
    const ids = [...this.#known.keys()];
    if (ids.length === 0) return;
    this.cancel(conn, ids[Math.floor(this.#random() * ids.length)]!);
  }

  cancel(conn: Conn, id: string): void {
    const frame = `cx${this.#n++}`;
    const known = this.#known.get(id);
    if (known && known.cancel !== 'cancelled') known.cancel = 'sent';
    this.#cancels.set(frame, id);
    conn.unanswered.set(frame, 1);
    conn.send('schedule_cancel', { id }, frame, { cancel: id });
  }

  /** Recurring schedules not known to be cancelled: the end of the run cancels them, so they stop waking the session. */
  recurring(): string[] {
    return [...this.#known].filter(([, k]) => k.everyMs !== undefined && !k.refused && k.cancel !== 'cancelled').map(([id]) => id);
  }

  observe(type: string, data: Record<string, any>): void {
    if (type === 'schedule.ack') {
      const cancelled = this.#cancels.get(data.client_message_id);
      const known = this.#known.get(cancelled ?? data.client_message_id);
      if (!known) return;
      if (cancelled === undefined) known.dueAt = data.due_at;
      else if (known.cancel !== 'cancelled') known.cancel = data.cancelled ? 'cancelled' : 'not found';
    }
    if (type === 'error' && typeof data.event_id === 'string') {
      const cancelled = this.#cancels.get(data.event_id);
      const known = this.#known.get(cancelled ?? data.event_id);
      if (known && cancelled === undefined) known.refused = true;
      else if (known && known.cancel === 'sent') known.cancel = 'refused';
      if (timerOf(data.event_id)) this.#fired.add(data.event_id);
    }
    if (type === 'done') for (const id of [...(data.input_ids ?? []), ...(data.cancelled_input_ids ?? [])]) if (timerOf(id)) this.#fired.add(id);
  }

  /** Timer inputs seen. */
  get fires(): number {
    return this.#fired.size;
  }

  /**
   * A one-shot acked and not cancelled (or whose cancel may have been lost) that has not been
   * seen to fire: the end of the run waits for it, so the checker can require it.
   */
  owed(): boolean {
    for (const [id, k] of this.#known) {
      if (k.everyMs !== undefined || k.dueAt === undefined || k.refused) continue;
      if (k.cancel === 'cancelled' || k.cancel === 'sent') continue;
      if (!this.#fired.has(`timer:${id}:${k.dueAt}`)) return true;
    }
    return false;
  }
}

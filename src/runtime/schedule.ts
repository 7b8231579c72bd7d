import { Cron } from 'croner';
import { InvalidMessageError } from '../errors.ts';
import type { ScheduleRecord } from './store.ts';

/** Most schedules one session may hold: a runaway agent must not fill the store. */
export const MAX_SCHEDULES_PER_SESSION = 100;

/**
 * The shortest interval a recurring schedule may have. A schedule fires a whole turn; a
 * floor keeps an agent that schedules in a loop from turning its session into a busy loop.
 */
export const MIN_EVERY_MS = 1000;

/** The latest time a Date can hold. */
const MAX_DATE_MS = 8.64e15;

/** Most bytes of JSON a schedule's payload may have (it is stored, and fires as an input's content). */
export const MAX_PAYLOAD_BYTES = 65_536;

/**
 * A schedule as `runtime.schedule` and `turn.schedule` take it (C20): an id, exactly one of
 * `at` (a time), `afterMs`, `every` (ms, recurring) or `cron` (recurring, UTC), and a payload.
 */
export interface ScheduleSpec {
  /** Unique within the session: setting an id again replaces that schedule. 1–256 characters. */
  readonly id: string;
  /** Fire once at this time (ms since the epoch on the runtime's clock, or a Date). */
  readonly at?: number | Date;
  /** Fire once this many ms from now. */
  readonly afterMs?: number;
  /** Fire every this many ms (at least {@link MIN_EVERY_MS}), the first time one interval from now. */
  readonly every?: number;
  /** Fire at every occurrence of this cron expression (5 or 6 fields, UTC), the first after now. */
  readonly cron?: string;
  /** JSON (at most {@link MAX_PAYLOAD_BYTES} of it): the agent gets it with the fire. */
  readonly payload?: unknown;
}

/** Schedule ids the runtime keeps for itself (see {@link WAKE_SCHEDULE_ID}); a client's may not start so. */
export const RESERVED_SCHEDULE_PREFIX = 'baton:';

/**
 * The runtime's own schedule of a session that must be activated at a time though nothing is
 * sent to it — a passivated session whose approval runs out then (see `SessionKind.wakeAt`).
 * It is stored like any schedule, so the store's due times wake it, but it fires no input.
 */
export const WAKE_SCHEDULE_ID = `${RESERVED_SCHEDULE_PREFIX}wake`;

/**
 * A kind's `wakeAt` as the due time to store: a whole ms within what a Date holds, like a
 * client's `at`. Anything else is no wake — `Math.min()` of no deadlines is Infinity, and a
 * store keyed on integers (PostgreSQL's bigint) would refuse it, or a fraction, and with it
 * every commit of the session.
 */
export function wakeDue(at: unknown): number | undefined {
  return typeof at === 'number' && Number.isFinite(at) ? Math.min(Math.floor(at), MAX_DATE_MS) : undefined;
}

/**
 * The schedules a client set: those of the runtime are not theirs to list, count or cancel.
 * Only the ids the runtime uses are its own, not the whole prefix: a store written before the
 * prefix was reserved may hold a client's `baton:…` schedule, which must still fire, be listed
 * and end — hidden, it would stay due for good and bring the process timer back for it.
 */
export function clientSchedules(records: readonly ScheduleRecord[]): ScheduleRecord[] {
  return records.filter((s) => s.id !== WAKE_SCHEDULE_ID);
}

/** A spec made into the schedule to store, or an `InvalidMessageError` saying what to fix. */
export function parseSchedule(spec: ScheduleSpec, now: number): ScheduleRecord {
  if (typeof spec !== 'object' || spec === null) throw new InvalidMessageError('a schedule must be an object { id, at | afterMs | every | cron, payload? }');
  const { id, at, afterMs, every, cron } = spec;
  if (typeof id !== 'string' || id.length === 0 || id.length > 256) throw new InvalidMessageError('schedule.id must be a string of 1–256 characters');
  // Stores key rows by it: NUL and lone surrogates would come back changed, and then not be found.
  if (/\0|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(id)) throw new InvalidMessageError('schedule.id must be text without NUL or lone surrogates');
  if (id.startsWith(RESERVED_SCHEDULE_PREFIX)) throw new InvalidMessageError(`schedule.id may not start with "${RESERVED_SCHEDULE_PREFIX}": those are the runtime's`);
  const where = `schedule "${id}"`;
  const given = (['at', 'afterMs', 'every', 'cron'] as const).filter((k) => spec[k] !== undefined);
  if (given.length !== 1) throw new InvalidMessageError(`${where}: give exactly one of at, afterMs, every, cron (got ${given.length === 0 ? 'none' : given.join(', ')})`);
  const payload = jsonPayload(where, spec.payload);
  const base = { id, ...(payload !== undefined && { payload }) };
  if (at !== undefined) {
    const time = at instanceof Date ? at.getTime() : at;
    // Within what a Date can show (±8.64e15 ms), from the epoch on: /status prints it as one.
    if (typeof time !== 'number' || !Number.isFinite(time) || time < 0 || time > MAX_DATE_MS) {
      throw new InvalidMessageError(`${where}: at must be a time (ms since the epoch, at most ${MAX_DATE_MS}, or a Date)`);
    }
    return { ...base, dueAt: Math.floor(time) };
  }
  if (afterMs !== undefined) {
    if (!isDelay(afterMs)) throw new InvalidMessageError(`${where}: afterMs must be a non-negative number of milliseconds`);
    return { ...base, dueAt: now + Math.floor(afterMs) };
  }
  if (every !== undefined) {
    if (!isDelay(every) || every < MIN_EVERY_MS) throw new InvalidMessageError(`${where}: every must be at least ${MIN_EVERY_MS} ms`);
    const everyMs = Math.floor(every);
    return { ...base, dueAt: now + everyMs, everyMs };
  }
  const first = cronAfter(where, cron, now);
  return { ...base, dueAt: first, cron: cron! };
}

/**
 * When a recurring schedule is next due after it fired at `now` for its `dueAt`; `undefined`
 * for a one-shot. Re-armed from the due time, not from when it ran: `every` keeps its phase
 * (the smallest `dueAt + k·every` after now), and a process that was down fires once for
 * all the intervals it missed, not once per interval.
 */
export function nextDueAfter(schedule: ScheduleRecord, now: number): number | undefined {
  if (schedule.everyMs !== undefined && schedule.everyMs > 0) {
    const k = Math.max(1, Math.floor((now - schedule.dueAt) / schedule.everyMs) + 1);
    return schedule.dueAt + k * schedule.everyMs;
  }
  if (schedule.cron !== undefined) return cronAfter(`schedule "${schedule.id}"`, schedule.cron, Math.max(schedule.dueAt, now));
  return undefined;
}

/** The longest cron expression taken: parsing one is synchronous work at every fire. */
const MAX_CRON_LENGTH = 256;

/** The cron expression's next occurrence strictly after `after` (UTC). */
function cronAfter(where: string, expression: unknown, after: number): number {
  if (typeof expression !== 'string' || expression.trim() === '') throw new InvalidMessageError(`${where}: cron must be a cron expression`);
  if (expression.length > MAX_CRON_LENGTH) throw new InvalidMessageError(`${where}: cron is longer than ${MAX_CRON_LENGTH} characters`);
  // 5 fields, or 6 with seconds first (or a nickname such as @daily); croner would also take a year.
  const fields = expression.trim().split(/\s+/).length;
  if (!expression.trim().startsWith('@') && fields !== 5 && fields !== 6) {
    throw new InvalidMessageError(`${where}: cron "${expression}" must have 5 or 6 fields (minute hour day month weekday, seconds first if 6)`);
  }
  let next: Date | null;
  try {
    next = new Cron(expression, { timezone: 'UTC', paused: true }).nextRun(new Date(after));
  } catch (error) {
    throw new InvalidMessageError(`${where}: cron "${expression}" is not a cron expression: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (!next) throw new InvalidMessageError(`${where}: cron "${expression}" never fires after ${new Date(after).toISOString()}`);
  return next.getTime();
}

function isDelay(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 && value <= 10 * 365 * 24 * 3_600_000;
}

/** The payload as it will be stored and fired: a JSON copy. */
function jsonPayload(where: string, payload: unknown): unknown {
  if (payload === undefined) return undefined;
  let json: string | undefined;
  try {
    json = JSON.stringify(payload);
  } catch (error) {
    throw new InvalidMessageError(`${where}: payload must be JSON data: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (json === undefined) throw new InvalidMessageError(`${where}: payload must be JSON data`);
  if (Buffer.byteLength(json, 'utf8') > MAX_PAYLOAD_BYTES) throw new InvalidMessageError(`${where}: payload is more than ${MAX_PAYLOAD_BYTES} bytes of JSON`);
  return JSON.parse(json);
}

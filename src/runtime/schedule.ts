import type { ScheduleRecord } from './store.ts';
// Placeholder until the store layer lands (sched-store): every-ms only.
export function nextDueAfter(schedule: ScheduleRecord, now: number): number | undefined {
  if (schedule.everyMs === undefined) return undefined;
  const k = Math.floor((now - schedule.dueAt) / schedule.everyMs) + 1;
  return schedule.dueAt + Math.max(1, k) * schedule.everyMs;
}
/** Most schedules one session may hold: a runaway agent must not fill the store. */
export const MAX_SCHEDULES_PER_SESSION = 100;

export interface ScheduleSpec {
  readonly id: string;
  readonly at?: number | Date;
  readonly afterMs?: number;
  readonly every?: number;
  readonly cron?: string;
  readonly payload?: unknown;
}
export function parseSchedule(spec: ScheduleSpec, now: number): ScheduleRecord {
  const dueAt = spec.at !== undefined ? Number(spec.at) : spec.afterMs !== undefined ? now + spec.afterMs : now + (spec.every ?? 0);
  return { id: spec.id, dueAt, ...(spec.every !== undefined && { everyMs: spec.every }), ...(spec.payload !== undefined && { payload: spec.payload }) };
}

/**
 * The soak checker's rules for schedules (C20), over one session: its stream (the union of
 * what its clients saw, by seq, with the time the gateway wrote each frame), the `schedule`
 * and `schedule_cancel` frames its clients sent and the answers they got, and the schedules
 * its agent set (the gateways' logs). Pure, like the rest of the checker.
 *
 * A fire is the input `timer:<schedule id>:<due time>` showing in the stream: in a `done`'s
 * `input_ids` (a turn took it) or `cancelled_input_ids`, or named by an `error` (the session
 * refused it: busy policy `reject`, or refused when it came back after a restart).
 *
 * "Never before its due time" is checked twice: against the time the gateway first wrote
 * the events that show a fire (a fire a client saw only in a replay is bounded by the
 * replay's time), and against the time the agent's turn was handed it, which no client
 * needs to watch.
 */
import { timerOf, type AgentFireRecord, type AgentScheduleRecord, type FrameRecord, type HistoryRecord, type SentRecord } from './history.ts';
import { earliest, firesOf, writeTimes, type Fire } from './schedule-fires.ts';
import type { SessionStream, StreamEvent } from './tool-checks.ts';

/**
 * Due times and frame timestamps are both `Date.now()` of the gateway's machine: a fire is
 * never seen before its due time, but for this much clock granularity.
 */
export const FIRE_CLOCK_SLACK_MS = 1;

/**
 * A one-shot acked and not cancelled must have fired if its due time (moved past any
 * outage) passed this long before its session's last client left: a fire waits at most for
 * the running turn (the turn timeout, 1 s here) and then takes its own.
 */
export const FIRE_GRACE_MS = 3000;

export interface ScheduleViolation {
  readonly contract: 'C20';
  readonly session: string;
  readonly message: string;
  readonly slice: readonly HistoryRecord[];
}

/** A time nothing could fire: the gateway was down (kill to restart), or its store failed every write. */
export interface Outage {
  readonly from: number;
  readonly to: number;
  /** The one gateway was down (not a cluster's node, whose sessions move while the others fire theirs). */
  readonly down?: boolean;
}

/** A fire due this soon after the kill may have been the killed process's own (the orchestrator's clock is not the gateway's). */
const KILL_EDGE_MS = 50;

export interface SessionSchedules extends SessionStream {
  /** The `schedule` and `schedule_cancel` frames its clients sent. */
  readonly sent: readonly SentRecord[];
  /** The schedules its agent set (`turn.schedule`). */
  readonly agent: readonly AgentScheduleRecord[];
  /** The fires its agent's turns were handed, and when. */
  readonly handed: readonly AgentFireRecord[];
  readonly outages: readonly Outage[];
  /** Until when a client of the session was attached (its last connection's close); `undefined`: never. */
  readonly watchedUntil: number | undefined;
}

/** What the schedules did, over all sessions: the summary's figures. */
export interface ScheduleStats {
  /** `schedule` frames acked (`due_at`), and those answered by an error (not stored). */
  set: number;
  refused: number;
  /** Schedules the agent set (`turn.schedule`). */
  byAgent: number;
  /** `schedule_cancel` acks: found and cancelled, or nothing to cancel (fired already). */
  cancelled: number;
  cancelMissed: number;
  /** Distinct fires (schedule, due time), and how they showed: taken by a turn, cancelled, refused by the session. */
  fires: number;
  consumed: number;
  cancelledFires: number;
  refusedFires: number;
  /** Fires of recurring schedules. */
  recurringFires: number;
  /** Fires handed to the agent's turns (a re-run is handed its fire again). */
  handed: number;
  /** Acked one-shots whose fire the checker required (due long enough before the end). */
  owed: number;
}

export const emptyScheduleStats = (): ScheduleStats => ({ set: 0, refused: 0, byAgent: 0, cancelled: 0, cancelMissed: 0, fires: 0, consumed: 0, cancelledFires: 0, refusedFires: 0, recurringFires: 0, handed: 0, owed: 0 });

/** A `schedule` frame a client sent, and its answer. */
interface Version {
  readonly sent: SentRecord;
  readonly ack?: FrameRecord;
  readonly error?: FrameRecord;
}

type Report = (message: string, slice: readonly HistoryRecord[]) => void;

export function checkSchedules(input: SessionSchedules, stats: ScheduleStats): ScheduleViolation[] {
  const violations: ScheduleViolation[] = [];
  const report: Report = (message, slice) => violations.push({ contract: 'C20', session: input.session, message, slice });
  const { versions, cancels } = framesSent(input, stats);
  const byAgent = new Map<string, AgentScheduleRecord[]>();
  for (const record of input.agent) byAgent.set(record.id, [...(byAgent.get(record.id) ?? []), record]);
  stats.byAgent += input.agent.length;
  const fires = firesOf(input.events);
  const written = writeTimes(input.frames);
  for (const [inputId, shown] of fires) checkFire(inputId, shown, { versions, cancels, byAgent, written }, stats, report);
  checkCatchUp(input.outages, versions, fires, report);
  checkHanded(input.handed, stats, report);
  checkOwed(input, versions, cancels, fires, stats, report);
  return violations;
}

/** The `schedule` frames the session's clients sent, by schedule id, and the cancels, by the schedule each names; each with its answer. */
function framesSent(input: SessionSchedules, stats: ScheduleStats): { versions: Map<string, Version[]>; cancels: Map<string, Version[]> } {
  const answers = answersOf(input.frames);
  const versions = new Map<string, Version[]>();
  const cancels = new Map<string, Version[]>();
  for (const sent of input.sent) {
    const answered = { sent, ...answers.get(sent.id) };
    if (sent.schedule) {
      versions.set(sent.schedule.id, [...(versions.get(sent.schedule.id) ?? []), answered]);
      if (answered.ack) stats.set++;
      else if (answered.error) stats.refused++;
    } else if (sent.cancel !== undefined) {
      cancels.set(sent.cancel, [...(cancels.get(sent.cancel) ?? []), answered]);
      if (answered.ack) stats[answered.ack.data.cancelled === true ? 'cancelled' : 'cancelMissed']++;
    }
  }
  return { versions, cancels };
}

interface Known {
  readonly versions: ReadonlyMap<string, readonly Version[]>;
  readonly cancels: ReadonlyMap<string, readonly Version[]>;
  readonly byAgent: ReadonlyMap<string, readonly AgentScheduleRecord[]>;
  /** The earliest time the gateway wrote each seq. */
  readonly written: ReadonlyMap<number, number>;
}

/** One fire (every time it showed): once per due time, never before it, of a schedule someone set. */
function checkFire(inputId: string, shown: readonly Fire[], known: Known, stats: ScheduleStats, report: Report): void {
  const fire = shown[0]!;
  const { id, dueAt } = fire;
  stats.fires++;
  for (const { how } of shown) stats[how === 'consumed' ? 'consumed' : how === 'cancelled' ? 'cancelledFires' : 'refusedFires']++;
  // At most once per due time, across the kill, the restart and the store fault.
  if (shown.length > 1) report(`schedule ${id} fired ${shown.length} times for due time ${dueAt} (${shown.map(describe).join('; ')})`, shown.flatMap((f) => f.shown.map((e) => e.from)));
  // Never before it was due.
  for (const each of shown) {
    const at = earliest(each.shown, known.written);
    if (at !== undefined && at < dueAt - FIRE_CLOCK_SLACK_MS) {
      report(`${inputId} shows at seq ${each.shown[0]!.seq} written at ${at}, ${dueAt - at} ms before its due time ${dueAt}`, each.shown.map((e) => e.from));
    }
  }
  const client = known.versions.get(id);
  const agent = known.byAgent.get(id);
  if (client) {
    if (client.some((v) => v.sent.schedule!.everyMs !== undefined)) stats.recurringFires++;
    checkClientFire(fire, client, known.cancels.get(id) ?? [], report);
  } else if (agent) {
    if (!agent.some((r) => onPhase(dueAt, r.dueAt, r.everyMs))) report(`${inputId} fired, but the agent set ${id} due at ${agent.map((r) => r.dueAt).join(' or ')}`, [...agent, fire.shown.at(-1)!.from]);
  } else report(`${inputId} fired for a schedule no client and no agent set`, fire.shown.map((e) => e.from));
}

/**
 * A process that was down catches up by firing a recurring schedule once, for the oldest
 * due time it missed, not once per missed interval.
 */
function checkCatchUp(outages: readonly Outage[], versions: ReadonlyMap<string, readonly Version[]>, fires: ReadonlyMap<string, readonly Fire[]>, report: Report): void {
  for (const { from, to } of outages.filter((o) => o.down)) {
    for (const [id, set] of versions) {
      if (!set.some((v) => v.sent.schedule!.everyMs !== undefined)) continue;
      const missed = [...fires.values()].flat().filter((f) => f.id === id && f.dueAt > from + KILL_EDGE_MS && f.dueAt < to);
      if (new Set(missed.map((f) => f.dueAt)).size > 1) {
        report(`recurring ${id} fired ${missed.length} times for due times the gateway was down for (${missed.map((f) => f.dueAt).join(', ')}): a restart catches up once`, missed.map((f) => f.shown.at(-1)!.from));
      }
    }
  }
}

/** The agent's turn is handed a fire no earlier than its due time, on the gateway's own clock. */
function checkHanded(handed: readonly AgentFireRecord[], stats: ScheduleStats, report: Report): void {
  for (const record of handed) {
    stats.handed++;
    const timer = timerOf(record.input);
    if (timer && record.at < timer.dueAt - FIRE_CLOCK_SLACK_MS) report(`a turn in ${record.proc} was handed ${record.input} at ${record.at}, ${timer.dueAt - record.at} ms before its due time`, [record]);
  }
}

/**
 * Every acked one-shot not cancelled fired, once its due time had passed long enough before
 * the session's last client left. (The soak never deletes or terminates a session, which
 * would take its schedules with it.)
 */
function checkOwed(input: SessionSchedules, versions: ReadonlyMap<string, readonly Version[]>, cancels: ReadonlyMap<string, readonly Version[]>, fires: ReadonlyMap<string, readonly Fire[]>, stats: ScheduleStats, report: Report): void {
  const { complete, watchedUntil, outages } = input;
  if (!complete || watchedUntil === undefined) return;
  for (const [id, [version, ...others]] of versions) {
    const due = version?.ack?.data.due_at as number | undefined;
    if (!version || others.length > 0 || due === undefined || version.sent.schedule!.everyMs !== undefined) continue;
    // A cancel that found nothing, or was refused, changed nothing; one never answered may have cancelled it.
    const tried = cancels.get(id) ?? [];
    if (tried.some((c) => c.ack?.data.cancelled === true || (!c.ack && !c.error))) continue;
    if (afterOutages(due, outages) + FIRE_GRACE_MS > watchedUntil) continue;
    stats.owed++;
    if (!fires.has(`timer:${id}:${due}`)) {
      report(`one-shot ${id} acked due at ${due} never fired; its session was watched until ${Math.round(watchedUntil - due)} ms after`, [version.sent, version.ack!, ...tried.flatMap((c) => [c.sent, ...(c.ack ? [c.ack] : [])])]);
    }
  }
}

/**
 * A client's schedule fired: it was stored (some frame that set it was acked, or went
 * unanswered, never only refused), at one of its due times (the acked `due_at`, or for a
 * recurring one `due_at + k·every_ms`), and not after a cancel that found it.
 */
function checkClientFire(fire: Fire, versions: readonly Version[], cancels: readonly Version[], report: Report): void {
  const { input, id, dueAt } = fire;
  const last = fire.shown.at(-1)!.from;
  if (versions.every((v) => v.error && !v.ack)) {
    report(`${input} fired, yet every frame that set ${id} was refused (${versions.map((v) => v.error!.data.code).join(', ')}): it was never stored`, [...versions.flatMap((v) => [v.sent, v.error!]), last]);
    return;
  }
  if (!versions.some((v) => dueOf(v, dueAt))) {
    const said = versions.map((v) => (v.ack ? `acked due_at ${v.ack.data.due_at}` : v.error ? 'refused' : 'unanswered') + (v.sent.schedule!.everyMs ? ` every ${v.sent.schedule!.everyMs} ms` : '')).join('; ');
    report(`${input} fired for a due time ${id} never had (${said})`, [...versions.flatMap((v) => [v.sent, ...(v.ack ? [v.ack] : [])]), last]);
  }
  const oneShot = versions.every((v) => v.sent.schedule!.everyMs === undefined);
  for (const cancel of cancels) {
    const { ack } = cancel;
    if (ack?.data.cancelled !== true || ack.ts === undefined) continue;
    if (versions.some((v) => v.sent.t > cancel.sent.t)) continue; // set again after the cancel
    if (dueAt > ack.ts + FIRE_CLOCK_SLACK_MS) {
      report(`${input} fired for a due time after the cancel of ${id} was acked (cancelled: true, written at ${ack.ts})`, [cancel.sent, ack, last]);
    } else if (oneShot && versions.length === 1) {
      // A fire removes a one-shot in the step that fires it: a cancel that still found it came first.
      report(`one-shot ${id} fired, yet its cancel found it (cancelled: true, written at ${ack.ts})`, [cancel.sent, ack, last]);
    }
  }
}

/** Could `version` have been due at `dueAt`? Acked: its `due_at` (or on its phase); unanswered: not before what it asked. */
function dueOf({ sent, ack, error }: Version, dueAt: number): boolean {
  const asked = sent.schedule!;
  if (ack) return onPhase(dueAt, ack.data.due_at, asked.everyMs);
  if (error) return false;
  if (asked.at !== undefined) return dueAt === asked.at;
  return dueAt >= asked.wall + (asked.afterMs ?? asked.everyMs ?? 0) - FIRE_CLOCK_SLACK_MS;
}

const onPhase = (dueAt: number, first: number, everyMs: number | undefined) =>
  everyMs === undefined ? dueAt === first : dueAt >= first && (dueAt - first) % everyMs === 0;

/** The `schedule.ack` or error (seq 0) that answered each client frame, by frame id. */
function answersOf(frames: readonly FrameRecord[]): Map<string, { ack?: FrameRecord; error?: FrameRecord }> {
  const answers = new Map<string, { ack?: FrameRecord; error?: FrameRecord }>();
  for (const f of frames) {
    if (f.seq !== 0) continue;
    if (f.type === 'schedule.ack') answers.set(f.data.client_message_id, { ...answers.get(f.data.client_message_id), ack: f });
    else if (f.type === 'error' && typeof f.data.event_id === 'string') answers.set(f.data.event_id, { ...answers.get(f.data.event_id), error: f });
  }
  return answers;
}

/** A due time that fell in an outage counts from its end: nothing could fire before. */
function afterOutages(dueAt: number, outages: readonly Outage[]): number {
  let at = dueAt;
  for (const { from, to } of [...outages].sort((a, b) => a.from - b.from)) if (from <= at && at <= to) at = to;
  return at;
}

const describe = (fire: Fire) => `${fire.how} at seq ${fire.shown.at(-1)!.seq}`;

/**
 * When nothing could fire, from the history: from each planned kill to its gateway's restart
 * (on a cluster, plus `clusterTailMs`: the killed node's sessions move once its lease runs
 * out), and each store fault plus `retryMs` (a wake that could not commit a fire tries again
 * that much later).
 */
export function outagesOf(history: readonly HistoryRecord[], { retryMs, clusterTailMs }: { retryMs: number; clusterTailMs: number }): Outage[] {
  const outages: Outage[] = [];
  history.forEach((r, i) => {
    if (r.k === 'server' && r.event === 'kill') {
      const back = history.slice(i + 1).find((s) => s.k === 'server' && s.event === 'start' && s.node === r.node);
      if (back) outages.push(r.node === undefined ? { from: r.t, to: back.t, down: true } : { from: r.t, to: back.t + clusterTailMs });
    }
    if (r.k === 'store' && r.event === 'fault' && r.on) {
      const off = history.slice(i + 1).find((s) => s.k === 'store' && s.event === 'fault' && !s.on);
      outages.push({ from: r.t, to: (off?.t ?? Infinity) + retryMs });
    }
  });
  return outages;
}

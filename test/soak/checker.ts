/**
 * The soak's checker: invariants over the whole history, each named by its contract.
 * Pure: history in, violations (each with the shortest slice of history that shows it) out.
 */
import type { AgentFireRecord, AgentScheduleRecord, FrameRecord, HistoryRecord, SentRecord, ConnRecord, StoreRecord, ServerRecord, ToolRecord } from './history.ts';
import { checkEpochs, checkStored, commitsBySession, epochAt, type StoredEvents } from './cluster-checks.ts';
import { checkTools, emptyToolStats, refusalDones, type StreamEvent, type ToolStats } from './tool-checks.ts';
import { checkSchedules, emptyScheduleStats, outagesOf, type ScheduleStats } from './schedule-checks.ts';
export type { StoredEvents };

/** C17 and C8/C16 are a cluster's: checked when the history has commits, and the store's events are given. */
export type Contract = 'C1' | 'C2/C12' | 'C8/C9' | 'C13' | 'C15' | 'C16' | 'C19' | 'C20' | 'resources' | 'C17' | 'C8/C16';

export interface Violation {
  readonly contract: Contract;
  readonly session?: string;
  readonly message: string;
  readonly slice: readonly HistoryRecord[];
}

export interface CheckInput {
  readonly history: readonly HistoryRecord[];
  /** Per session, the last seq the killed process stored: events up to it are the old process's. */
  readonly boundaries?: ReadonlyMap<string, number>;
  /** Gateway heap (bytes) and handles after warm-up and at the end (on a cluster: each node's). */
  readonly resources?: Resources | readonly Resources[];
  /** The gateway's health at the end, after the store fault: every session it stopped is back (C16). On a cluster: each node's. */
  readonly health?: Health | readonly Health[];
  /** On a cluster: what the store holds of each session at the end, to compare with what clients saw (C8/C16). */
  readonly stored?: ReadonlyMap<string, StoredEvents>;
}

interface Resources {
  /** On a cluster: which node. */
  readonly node?: number;
  readonly start: { heap: number; handles: number };
  readonly end: { heap: number; handles: number };
}

interface Health {
  readonly node?: number;
  readonly ok: boolean;
  readonly failedSessions: number;
}

export interface CheckResult {
  readonly violations: Violation[];
  readonly stats: {
    sessions: number;
    inputs: number;
    turns: number;
    frames: number;
    /** Sessions with a seq no client saw that is not a dropped delta: their dones cannot all be counted. */
    unverified: number;
    /** Dones a connection saw with `dropped: true` (deltas dropped for a slow reader). */
    droppedDones: number;
    /** Resumes with `last_seq`; `incomplete`: events past what the store holds were missed (README: told by `resume.complete: false`). */
    resumes: { complete: number; incomplete: number };
    /** Onboarding `question_request`s seen (C13 had something to check). */
    questions: number;
    /** Dones by outcome: `success` or the reason. */
    outcomes: Record<string, number>;
    /** Inputs the store could not take: refused with INTERNAL_ERROR naming them (C16), never acknowledged. */
    refused: number;
    /**
     * Turns that ended without a done, then ran again: because their process was killed,
     * their session was stopped by a failed commit, or (a cluster) it moved to a newer epoch.
     */
    rerun: { kill: number; store: number; moved: number };
    /** A cluster: events clients saw that were compared with the store's (those it still keeps). */
    storedCompared: number;
    /** A cluster: committed steps recorded, and the most epochs one session went through. */
    commits: number;
    maxEpoch: number;
    /** Tool calls, results, approvals and executions (C19). */
    tools: ToolStats;
    /** Schedules set, cancelled and fired (C20). */
    schedules: ScheduleStats;
  };
}

/** The bound on the gateway's growth over a run: heap ≤ 1.5 × start + 32 MB, handles ≤ start + 20. */
export const RESOURCE_BOUND = { heapFactor: 1.5, heapSlackBytes: 32 * 1024 * 1024, handleSlack: 20 };

/** Why a turn did not succeed (PROTOCOL.md, `done.reason`). */
const REASONS = new Set(['stopped_by_user', 'interrupted', 'timeout', 'failed', 'shutdown']);

/** The soak gateway's `storeRetryMs` (the runtime's default) and, on a cluster, how long a killed node's sessions take to move (lease 5 s, sweep 2 s). */
const OUTAGE_TAILS = { retryMs: 1000, clusterTailMs: 7000 };

type Event = StreamEvent;

export function check({ history, boundaries = new Map(), resources, health, stored }: CheckInput): CheckResult {
  const violations: Violation[] = [];
  const frames = history.filter((r): r is FrameRecord => r.k === 'frame');
  const bySession = groupBy(frames, (f) => f.session);
  const byConn = groupBy(history.filter((r): r is FrameRecord | SentRecord | ConnRecord => r.k === 'frame' || r.k === 'sent' || r.k === 'open' || r.k === 'close'), (r) => r.conn);
  const kills = history.filter((r): r is ServerRecord => r.k === 'server' && r.event === 'kill');
  // A cluster's commits: which epoch wrote which seqs of each session.
  const commits = commitsBySession(history);
  // Per session, the last seq its store held each time a failed commit stopped it (C16).
  const storeFailures = groupBy(
    history.filter((r): r is StoreRecord => r.k === 'store' && r.event === 'failed'),
    (r) => r.session!,
  );
  const sentBySession = groupBy(history.filter((r): r is SentRecord => r.k === 'sent' && r.type === 'input'), (r) => r.session);
  // C19: what the clients decided, and what the tools ran.
  const decisionsBySession = groupBy(history.filter((r): r is SentRecord => r.k === 'sent' && r.decision !== undefined), (r) => r.session);
  const executionsBySession = groupBy(history.filter((r): r is ToolRecord => r.k === 'tool'), (r) => r.session);
  const tools = emptyToolStats();
  // C20: what the clients asked of schedules, what the agents set, and when nothing could fire.
  const scheduleFrames = groupBy(history.filter((r): r is SentRecord => r.k === 'sent' && (r.schedule !== undefined || r.cancel !== undefined)), (r) => r.session);
  const agentSchedules = groupBy(history.filter((r): r is AgentScheduleRecord => r.k === 'schedule'), (r) => r.session);
  const handedFires = groupBy(history.filter((r): r is AgentFireRecord => r.k === 'fire'), (r) => r.session);
  const outages = outagesOf(history, OUTAGE_TAILS);
  const schedules = emptyScheduleStats();
  let inputs = 0;
  let turns = 0;
  let unverified = 0;
  let droppedDones = 0;
  let questions = 0;
  const resumes = { complete: 0, incomplete: 0 };
  const outcomes: Record<string, number> = {};
  let refused = 0;
  const rerun = { kill: 0, store: 0, moved: 0 };

  for (const [session, seen] of bySession) {
    // The session's stream, from every connection that saw it (C8: one seq, one event).
    const stream = new Map<number, Event>();
    for (const f of seen) {
      if (f.seq <= 0) continue;
      const known = stream.get(f.seq);
      if (!known) stream.set(f.seq, { seq: f.seq, type: f.type, data: f.data, from: f });
      else if (!sameEvent(known, f)) {
        violations.push({ contract: 'C8/C9', session, message: `seq ${f.seq} is ${known.type} on ${known.from.conn} but ${f.type} on ${f.conn}`, slice: [known.from, f] });
      }
    }
    const events = [...stream.values()].sort((a, b) => a.seq - b.seq);
    const complete = gapsExplained(events, lostToResumes(seen));
    if (!complete) unverified++;

    // C1: a turn's message.start … done never contains another message.start — except that
    // a turn the planned kill interrupted ends with its process (the restart re-runs it), and
    // so does one a failed commit stopped (C16: its session is re-activated from what was
    // committed, and re-runs it). The old turn's start is at or below the last stored seq,
    // the new one above it. On a cluster, a session that moved to a newer epoch (another
    // node claimed it) ends its old owner's turn too (C17): the new owner re-runs it.
    const cuts = [...(boundaries.has(session) ? [boundaries.get(session)!] : []), ...(storeFailures.get(session) ?? []).map((r) => r.seq!)];
    const written = commits.get(session) ?? [];
    const moved = (from: number, to: number) => {
      const [before, after] = [epochAt(written, from), epochAt(written, to)];
      return before !== undefined && after !== undefined && after > before;
    };
    /** What cut short a turn started at `from` that another event at `to` ended: the kill, a move to a newer epoch, or a failed commit. */
    const cutBy = (from: number, to: number): keyof typeof rerun => {
      const killed = boundaries.get(session);
      return killed !== undefined && from <= killed && to > killed ? 'kill' : moved(from, to) ? 'moved' : 'store';
    };
    let open: Event | undefined;
    const refusedAgain = refusalDones(events);
    for (const e of events) {
      if (e.type === 'message.start') {
        if (open && !cuts.some((cut) => open!.seq <= cut && e.seq > cut) && !moved(open.seq, e.seq)) {
          violations.push({ contract: 'C1', session, message: `turn ${e.data.id} started at seq ${e.seq} while ${open.data.id} (seq ${open.seq}) had not ended`, slice: window(events, open.seq, e.seq) });
        } else if (open) rerun[cutBy(open.seq, e.seq)]++;
        open = e;
      } else if (e.type === 'done' && !refusedAgain.has(e.seq)) {
        // A turn a kill or a failed commit cut off is closed when its session comes back
        // (done{interrupted}, no inputs: they run again in the next turn).
        if (open && e.data.reason === 'interrupted' && (e.data.input_ids ?? []).length === 0) rerun[cutBy(open.seq, e.seq)]++;
        open = undefined;
        if ((e.data.input_ids ?? []).length > 0) turns++;
      }
    }

    // C2/C12: every durable-acked input in exactly one done (as consumed or as cancelled).
    const acked = new Map<string, FrameRecord>();
    for (const f of seen) {
      if (f.type === 'input.ack' && f.data.status === 'accepted' && f.data.durability === 'durable') acked.set(f.data.client_message_id, f);
    }
    inputs += acked.size;
    const dones = new Map<string, Event[]>();
    for (const e of events) {
      if (e.type !== 'done') continue;
      for (const id of [...(e.data.input_ids ?? []), ...(e.data.cancelled_input_ids ?? [])]) dones.set(id, [...(dones.get(id) ?? []), e]);
    }
    for (const [id, ds] of dones) {
      if (ds.length > 1) violations.push({ contract: 'C2/C12', session, message: `input ${id} is in ${ds.length} dones`, slice: ds.map((d) => d.from) });
    }
    // A done that did not succeed says why; one that did cancels nothing.
    for (const e of events) {
      if (e.type !== 'done') continue;
      const { success, reason, cancelled_input_ids: cancelled = [] } = e.data;
      const problem =
        success === true
          ? reason !== undefined || cancelled.length > 0 ? 'a successful done with a reason or cancelled inputs' : undefined
          : !REASONS.has(reason) ? `a done{success:false} whose reason is ${JSON.stringify(reason)}` : undefined;
      if (problem) violations.push({ contract: 'C2/C12', session, message: `${problem} at seq ${e.seq}`, slice: [e.from] });
      outcomes[success === true ? 'success' : String(reason)] = (outcomes[success === true ? 'success' : String(reason)] ?? 0) + 1;
    }
    if (complete) {
      for (const [id, ack] of acked) {
        if (!dones.has(id)) violations.push({ contract: 'C2/C12', session, message: `durable-acked input ${id} is in no done`, slice: [ack, ...events.slice(-3).map((e) => e.from)] });
      }
    }

    // C16: an input the store could not take is refused with INTERNAL_ERROR naming it and is
    // not owed a done (a client may send it again). One whose every send was refused never
    // runs: it is in no done.
    const refusals = new Map<string, FrameRecord[]>();
    for (const f of seen) {
      if (f.type === 'error' && f.seq === 0 && f.data.code === 'INTERNAL_ERROR' && typeof f.data.event_id === 'string') {
        refusals.set(f.data.event_id, [...(refusals.get(f.data.event_id) ?? []), f]);
      }
    }
    const sends = groupBy(sentBySession.get(session) ?? [], (r) => r.id);
    for (const [id, errors] of refusals) {
      if (!sends.has(id)) continue; // not an input (a malformed frame's error names it too)
      refused++;
      const ran = dones.get(id);
      if (ran && errors.length >= sends.get(id)!.length) {
        violations.push({ contract: 'C16', session, message: `input ${id} was refused (INTERNAL_ERROR) on every send, yet it is in the done at seq ${ran[0]!.seq}`, slice: [...sends.get(id)!, ...errors, ran[0]!.from] });
      }
    }

    // C13: onboarding asks q1, q2, q3, in that order, each once.
    const asked = events.filter((e) => e.type === 'question_request');
    questions += asked.length;
    asked.forEach((e, i) => {
      if (e.data.id !== `q${i + 1}`) violations.push({ contract: 'C13', session, message: `question ${e.data.id} asked at seq ${e.seq}, expected q${i + 1}`, slice: asked.slice(0, i + 1).map((q) => q.from) });
    });

    // C19: every call one result, inside its turn; approvals only while busy; tools run as decided.
    violations.push(
      ...checkTools(
        {
          session, events, complete, frames: seen,
          decisions: decisionsBySession.get(session) ?? [],
          executions: executionsBySession.get(session) ?? [],
          kills,
          storeFailures: storeFailures.get(session) ?? [],
          cluster: commits.size > 0,
        },
        tools,
      ),
    );

    // C20: every fire once, never early, for a schedule that was set; every acked one-shot fired.
    const conns = new Set(seen.map((f) => f.conn));
    const watchedUntil = Math.max(...[...conns].map((c) => (byConn.get(c) ?? []).at(-1)!.t));
    violations.push(
      ...checkSchedules(
        {
          session, events, complete, frames: seen,
          sent: scheduleFrames.get(session) ?? [],
          agent: agentSchedules.get(session) ?? [],
          handed: handedFires.get(session) ?? [],
          outages,
          watchedUntil,
        },
        schedules,
      ),
    );

    // C8/C9 on every connection: init_ack first; then seq increasing, gapless but for dropped deltas.
    for (const conn of conns) {
      const own = (byConn.get(conn) ?? []).filter((r): r is FrameRecord => r.k === 'frame');
      const opened = (byConn.get(conn) ?? []).find((r): r is ConnRecord => r.k === 'open');
      const first = own[0];
      if (first && first.type !== 'init_ack') {
        violations.push({ contract: 'C8/C9', session, message: `${conn}: first frame is ${first.type}, not init_ack`, slice: own.slice(0, 2) });
        continue;
      }
      if (!first || first.data.state === 'deleted') continue;
      const resumeIncomplete = first.data.resume?.complete === false;
      if (first.data.resume) resumes[resumeIncomplete ? 'incomplete' : 'complete']++;
      let expected = (opened?.lastSeq ?? first.data.seq) + 1;
      let afterAck = true;
      let previous: FrameRecord = first;
      // The first frame after a gap of dropped deltas: this connection's next done must say `dropped`.
      let owesDropped: FrameRecord | undefined;
      for (const f of own.slice(1)) {
        if (f.seq <= 0) continue;
        if (f.seq < expected) {
          violations.push({ contract: 'C8/C9', session, message: `${conn}: seq ${f.seq} after ${expected - 1}`, slice: [first, previous, f] });
        } else if (f.seq > expected && !(afterAck && resumeIncomplete)) {
          // README: deltas dropped for a slow reader are the one allowed gap, and its done says so.
          const missing = range(expected, f.seq).filter((s) => !deltaShaped(stream, s));
          if (missing.length > 0) violations.push({ contract: 'C8/C9', session, message: `${conn}: seq jumps from ${expected - 1} to ${f.seq}`, slice: [first, previous, f] });
          else owesDropped ??= f;
        }
        if (f.type === 'done') {
          if (owesDropped && f.data.dropped !== true) {
            violations.push({ contract: 'C8/C9', session, message: `${conn}: deltas before seq ${owesDropped.seq} are missing but the done at seq ${f.seq} does not say dropped`, slice: [first, owesDropped, f] });
          }
          if (f.data.dropped === true) droppedDones++;
          owesDropped = undefined;
        }
        expected = Math.max(expected, f.seq + 1);
        afterAck = false;
        previous = f;
      }
    }
  }

  // C15: every bad frame got its typed error or its close, unless the planned kill came first.
  // Errors that cannot name the frame (it had no readable id) are matched one to one, in order.
  const matched = new Set<HistoryRecord>();
  for (const sent of history.filter((r): r is SentRecord => r.k === 'sent' && r.bad !== undefined)) {
    const own = byConn.get(sent.conn) ?? [];
    const closed = own.find((r): r is ConnRecord => r.k === 'close' && r.t >= sent.t);
    // The connection belonged to the process the planned kill took down.
    const open = own.find((r): r is ConnRecord => r.k === 'open');
    const opened = open?.t ?? sent.t;
    // On a cluster, only the killed node's connections went down with it.
    const killed = kills.some((k) => (k.node === undefined || open?.node === undefined || k.node === open.node) && k.t >= opened && (!closed || k.t <= closed.t));
    const { code = 'INVALID_MESSAGE', byId = true } = sent.expect ?? {};
    const answer =
      sent.bad === 'malformed'
        ? own.find(
            (r): r is FrameRecord =>
              r.k === 'frame' && r.type === 'error' && r.seq === 0 && r.t >= sent.t && !matched.has(r) && r.data.code === code &&
              (byId ? r.data.event_id === sent.id : r.data.event_id === undefined),
          )
        : undefined;
    if (answer) matched.add(answer);
    const answered = sent.bad === 'malformed' ? answer !== undefined : closed?.code === 1009;
    // Unobservable: the planned kill; an oversized frame sent before it, which closes the
    // connection (1009) before this one is read; or a close for slowness (1013), a close
    // the protocol names, which may take the answer with it. A client's own close is no
    // excuse: the gateway answers a frame before it reads the next, the close included.
    const behindOversized = own.some((r) => r.k === 'sent' && r.bad === 'oversized' && r.t < sent.t);
    // The connection closed — by the client, or by the WebSocket for a later oversized frame
    // (1009) — while an input sent before this frame was still unanswered: the gateway
    // answers frames in their order, and an input's ack waits for its commit (C16), which on
    // a store across the network (PostgreSQL) takes a round trip or more; the WebSocket
    // answers the client's close, or closes on the oversized frame, at once, and nothing is
    // written after it.
    const behindOwed =
      closed !== undefined && (closed.byClient === true || closed.code === 1009) &&
      own.some(
        (r) =>
          r.k === 'sent' && r.type === 'input' && r.bad === undefined && r.t < sent.t &&
          !own.some((a) => a.k === 'frame' && a.seq === 0 && a.t <= closed.t && (a.type === 'input.ack' ? a.data.client_message_id : a.type === 'error' ? a.data.event_id : undefined) === r.id),
      );
    if (answered || killed || behindOversized || behindOwed || closed?.code === 1013) continue;
    violations.push({ contract: 'C15', session: sent.session, message: `${sent.bad} frame ${sent.id} on ${sent.conn} got neither its error (${code}) nor its close`, slice: [sent, ...(closed ? [closed] : [])] });
  }
  for (const exit of history.filter((r): r is ServerRecord => r.k === 'server' && r.event === 'exit' && !r.planned)) {
    violations.push({ contract: 'C15', message: `the gateway${gateway(exit.node)} exited on its own (code ${exit.code})`, slice: [exit] });
  }

  for (const { ok, failedSessions, node } of [health ?? []].flat()) {
    if (!ok) violations.push({ contract: 'C16', message: `at the end the store works but ${failedSessions} sessions a failed commit stopped are still out of service on the gateway${gateway(node)}`, slice: [] });
  }

  for (const { start, end, node } of [resources ?? []].flat()) {
    const heapBound = start.heap * RESOURCE_BOUND.heapFactor + RESOURCE_BOUND.heapSlackBytes;
    if (end.heap > heapBound) violations.push({ contract: 'resources', message: `heap of the gateway${gateway(node)} grew from ${mb(start.heap)} to ${mb(end.heap)} (bound ${mb(heapBound)})`, slice: [] });
    if (end.handles > start.handles + RESOURCE_BOUND.handleSlack) {
      violations.push({ contract: 'resources', message: `open handles of the gateway${gateway(node)} grew from ${start.handles} to ${end.handles}`, slice: [] });
    }
  }

  // A cluster: C17 along every session's seq, and what clients saw against the store.
  violations.push(...checkEpochs(commits));
  const compared = stored ? checkStored(bySession, stored) : { violations: [], compared: 0 };
  violations.push(...compared.violations);
  const commitCount = [...commits.values()].reduce((n, list) => n + list.length, 0);
  const maxEpoch = Math.max(0, ...[...commits.values()].map((list) => Math.max(...list.map((c) => c.epoch))));

  return {
    violations,
    stats: { sessions: bySession.size, inputs, turns, frames: frames.length, unverified, droppedDones, resumes, outcomes, questions, refused, rerun, storedCompared: compared.compared, commits: commitCount, maxEpoch, tools, schedules },
  };
}

const gateway = (node: number | undefined) => (node === undefined ? '' : ` of node ${node}`);

/** The same event seen twice: equal but for `done.dropped`, which is per connection. */
function sameEvent(a: Event, f: FrameRecord): boolean {
  if (a.type !== f.type) return false;
  if (a.type !== 'done') return JSON.stringify(a.data) === JSON.stringify(f.data);
  const { dropped: _a, ...x } = a.data;
  const { dropped: _b, ...y } = f.data;
  return JSON.stringify(x) === JSON.stringify(y);
}

/** What a turn emits between its message.start and message.end besides deltas (C19): deltas dropped next to them are still inside the message. */
const TOOL_EVENTS = new Set(['tool_call', 'permission_request', 'tool_result']);

/** A seq nobody saw is explained only if it lies inside a streaming message: a dropped delta. */
function deltaShaped(stream: ReadonlyMap<number, Event>, seq: number): boolean {
  const known = stream.get(seq);
  if (known) return known.type === 'message.delta';
  let before: Event | undefined;
  let after: Event | undefined;
  for (let s = seq - 1; s > 0 && !before; s--) before = stream.get(s);
  for (let s = seq + 1, max = seq + 10_000; s < max && !after; s++) after = stream.get(s);
  const inMessage = (e: Event | undefined, edge: string) => e !== undefined && (e.type === edge || e.type === 'message.delta' || TOOL_EVENTS.has(e.type));
  return inMessage(before, 'message.start') && inMessage(after, 'message.end');
}

/**
 * The union stream has no gap that is not a dropped delta: its dones can be counted. A seq a
 * resume told incomplete skipped (the store no longer held it) is missing for real, even
 * where it looks like a delta: between a `tool_call` and a `message.end` it may be whole
 * turns (of a session its schedules kept waking while no client watched).
 */
function gapsExplained(events: readonly Event[], lost: readonly (readonly [number, number])[]): boolean {
  const stream = new Map(events.map((e) => [e.seq, e]));
  const skipped = (seq: number) => lost.some(([after, before]) => seq > after && seq < before);
  let expected = 1;
  for (const e of events) {
    if (e.seq > expected && range(expected, e.seq).some((s) => skipped(s) || !deltaShaped(stream, s))) return false;
    expected = e.seq + 1;
  }
  return true;
}

/** The seqs each resume told incomplete skipped, as open ranges (from `resume.from` to the first seq that connection saw after it). */
function lostToResumes(frames: readonly FrameRecord[]): [number, number][] {
  const lost: [number, number][] = [];
  for (const own of groupBy(frames, (f) => f.conn).values()) {
    const resume = own.find((f) => f.type === 'init_ack')?.data.resume;
    if (resume?.complete !== false) continue;
    lost.push([resume.from, own.find((f) => f.seq > resume.from)?.seq ?? Infinity]);
  }
  return lost;
}

function window(events: readonly Event[], from: number, to: number): FrameRecord[] {
  return events.filter((e) => e.seq >= from && e.seq <= to && e.type !== 'message.delta').map((e) => e.from);
}

function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);
}

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const group = groups.get(k);
    if (group) group.push(item);
    else groups.set(k, [item]);
  }
  return groups;
}

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

/**
 * The soak checker's rules for tools and approvals (C19), over one session: its stream (the
 * union of what its clients saw, by seq), what its clients decided, and what its tools ran
 * (the gateways' execution logs). Pure, like the rest of the checker.
 */
import type { FrameRecord, HistoryRecord, SentRecord, ServerRecord, StoreRecord, ToolRecord } from './history.ts';

/** One event of a session's stream. */
export interface StreamEvent {
  readonly seq: number;
  readonly type: string;
  readonly data: Record<string, any>;
  readonly from: FrameRecord;
}

/**
 * The seqs of `done`s that only report inputs refused when they were offered again — after
 * a restart, or mailed on a cluster — each right after the `error` naming it: the host says
 * them in the middle of whatever turn runs (under busy policy `reject`, the turn that
 * refused them), which goes on after it.
 */
export function refusalDones(events: readonly StreamEvent[]): Set<number> {
  const seqs = new Set<number>();
  events.forEach((e, i) => {
    const before = events[i - 1];
    const cancelled: readonly string[] = e.data.cancelled_input_ids ?? [];
    if (e.type !== 'done' || e.data.reason !== 'failed' || (e.data.input_ids ?? []).length > 0 || cancelled.length !== 1) return;
    if (before?.type === 'error' && before.seq === e.seq - 1 && before.data.event_id === cancelled[0]) seqs.add(e.seq);
  });
  return seqs;
}

export interface ToolViolation {
  readonly contract: 'C19';
  readonly session: string;
  readonly message: string;
  readonly slice: readonly HistoryRecord[];
}

/** What the soak's tools did, over all sessions: the summary's figures. */
export interface ToolStats {
  /** `tool_call`s in the streams. */
  calls: number;
  /** `tool_result`s by outcome: `ok`, or the error code. */
  results: Record<string, number>;
  /** `permission_request`s in the streams. */
  requests: number;
  /** `permission_response`s clients sent, and those the gateway refused (an error naming the frame). */
  decisions: { allow: number; deny: number; refused: number };
  /** Tool runs the gateways logged, those of the tool that needs approval, and runs with attempt > 1. */
  executions: number;
  guardedExecutions: number;
  reruns: number;
}

export const emptyToolStats = (): ToolStats => ({ calls: 0, results: {}, requests: 0, decisions: { allow: 0, deny: 0, refused: 0 }, executions: 0, guardedExecutions: 0, reruns: 0 });

/** One session's stream as the soak's clients saw it: what each contract's checker starts from. */
export interface SessionStream {
  readonly session: string;
  /** The session's stream, in seq order. */
  readonly events: readonly StreamEvent[];
  /** Every seq of the stream was seen (but dropped deltas): a missing event is really missing. */
  readonly complete: boolean;
  /** The session's frames as every connection saw them: seq 0 answers (acks, errors) and each event's write times. */
  readonly frames: readonly FrameRecord[];
}

export interface SessionTools extends SessionStream {
  /** The `permission_response`s its clients sent. */
  readonly decisions: readonly SentRecord[];
  /** Its tools' runs, from every gateway process. */
  readonly executions: readonly ToolRecord[];
  /** The planned kills (each names the process it killed). */
  readonly kills: readonly ServerRecord[];
  /** The failed commits that stopped this session (C16): a re-activation re-runs its turn like a restart. */
  readonly storeFailures: readonly StoreRecord[];
  /** A cluster: a session moves between nodes (C17), and a tool cut off there runs again on the new owner. */
  readonly cluster: boolean;
}

/** A call as its stream shows it. */
interface Call {
  readonly call: StreamEvent;
  request?: StreamEvent;
  result?: StreamEvent;
}

export function checkTools(input: SessionTools, stats: ToolStats): ToolViolation[] {
  const violations: ToolViolation[] = [];
  const violation = (message: string, slice: readonly HistoryRecord[]) => violations.push({ contract: 'C19', session: input.session, message, slice });
  const calls = checkStream(input, stats, violation);
  checkExecutions(input, calls, stats, violation);
  return violations;
}

type Report = (message: string, slice: readonly HistoryRecord[]) => void;

/**
 * Along the stream: one `tool_call` per id; one `tool_result` per call, before the done of
 * its turn; a `permission_request` only for a call already made and not yet settled, and
 * only inside a turn. A turn a crash cut off (closed by `done{interrupted}` without inputs
 * when its session came back, or by nothing) is run again: its open calls are replayed
 * without a new `tool_call`, and their results are owed before the re-run's done. The
 * soak's agent makes the same calls when it runs a turn again, so a re-run that calls anew
 * what a cut-off call still open asked for (same tool, same input) lost the replay.
 * Turn-bound rules hold only on a complete stream: a gap may hide a start or a done.
 */
function checkStream({ events, complete }: SessionTools, stats: ToolStats, violation: Report): Map<string, Call> {
  const calls = new Map<string, Call>();
  let open: StreamEvent | undefined;
  let owed: string[] = [];
  /** Calls a cut-off turn left open: its re-run must replay them, not call them again. */
  let carried: string[] = [];
  const cutOff = () => (carried = owed.filter((c) => !calls.get(c)!.result));
  const refusals = refusalDones(events);
  const outsideTurn = (e: StreamEvent) => {
    if (complete && !open) violation(`${e.type} for ${e.data.id} at seq ${e.seq} is outside any turn (no message.start since the last done)`, [e.from]);
  };
  for (const e of events) {
    const id = e.data.id as string;
    switch (e.type) {
      case 'message.start':
        if (open) cutOff(); // a turn ended by nothing the stream shows: its session came back without a done
        open = e;
        break;
      case 'done': {
        if (refusals.has(e.seq)) break; // said inside the turn, which goes on
        const interrupted = e.data.reason === 'interrupted' && (e.data.input_ids ?? []).length === 0;
        open = undefined;
        if (interrupted) {
          cutOff(); // the re-run owes them
          break;
        }
        for (const unsettled of owed.filter((c) => !calls.get(c)!.result)) {
          if (complete) violation(`tool_call ${unsettled} (seq ${calls.get(unsettled)!.call.seq}) has no tool_result before its turn's done at seq ${e.seq}`, [calls.get(unsettled)!.call.from, e.from]);
        }
        owed = [];
        carried = [];
        break;
      }
      case 'tool_call': {
        stats.calls++;
        outsideTurn(e);
        const known = calls.get(id);
        if (known) violation(`tool_call ${id} at seq ${e.seq} was already called at seq ${known.call.seq}`, [known.call.from, e.from]);
        else {
          calls.set(id, { call: e });
          owed.push(id);
        }
        const twin = carried.map((c) => calls.get(c)!).find((c) => !c.result && sameCall(c.call, e));
        if (twin) violation(`the re-run called ${e.data.name} anew as ${id} at seq ${e.seq} instead of replaying ${twin.call.data.id} (seq ${twin.call.seq}), still open`, [twin.call.from, e.from]);
        break;
      }
      case 'tool_result': {
        const outcome = e.data.status === 'ok' ? 'ok' : String(e.data.error?.code);
        stats.results[outcome] = (stats.results[outcome] ?? 0) + 1;
        outsideTurn(e);
        const call = calls.get(id);
        if (!call) {
          if (complete) violation(`tool_result for ${id} at seq ${e.seq} answers no tool_call`, [e.from]);
        } else if (call.result) violation(`tool_result for ${id} at seq ${e.seq}: the call already had one at seq ${call.result.seq}`, [call.call.from, call.result.from, e.from]);
        else call.result = e;
        break;
      }
      case 'permission_request': {
        stats.requests++;
        outsideTurn(e);
        const call = calls.get(id);
        if (!call) {
          if (complete) violation(`permission_request for ${id} at seq ${e.seq} comes before any tool_call of that id`, [e.from]);
        } else if (call.result) violation(`permission_request for ${id} at seq ${e.seq} comes after its result (seq ${call.result.seq})`, [call.call.from, call.result.from, e.from]);
        else if (call.request) violation(`permission_request for ${id} at seq ${e.seq}: it was asked already at seq ${call.request.seq}`, [call.request.from, e.from]);
        else call.request = e;
        break;
      }
    }
  }
  return calls;
}

/**
 * Against the gateways' execution logs: a call's tool never runs twice with one attempt; a
 * later attempt runs only after the process that ran the earlier one was killed (or a
 * failed commit stopped the session, or on a cluster it moved); and a tool that needs
 * approval runs only after its client sent an allowing decision the gateway did not
 * refuse, and never for a call whose result is a denial or an expired request.
 */
function checkExecutions(input: SessionTools, calls: ReadonlyMap<string, Call>, stats: ToolStats, violation: Report): void {
  const { decisions, frames, executions, kills, storeFailures, cluster } = input;
  const refused = new Set(frames.filter((f) => f.type === 'error' && f.seq === 0 && typeof f.data.event_id === 'string').map((f) => f.data.event_id as string));
  for (const d of decisions) {
    stats.decisions[d.decision!.allowed ? 'allow' : 'deny']++;
    if (refused.has(d.id)) stats.decisions.refused++;
  }
  /** Something cut the run `before` off (or, with none logged, some earlier run) ahead of `run`. */
  const crashed = (before: ToolRecord | undefined, run: ToolRecord) =>
    kills.some((k) => k.t < run.t && (before ? k.proc === before.proc && k.t > before.t : k.proc !== run.proc)) ||
    storeFailures.some((f) => f.t < run.t && (!before || f.t > before.t)) ||
    (cluster && (!before || before.proc !== run.proc));
  const byCall = new Map<string, ToolRecord[]>();
  for (const run of executions) byCall.set(run.call, [...(byCall.get(run.call) ?? []), run]);
  for (const [id, runs] of byCall) {
    runs.sort((a, b) => a.t - b.t);
    stats.executions += runs.length;
    runs.forEach((run, i) => {
      if (run.needsApproval) stats.guardedExecutions++;
      if (run.attempt > 1) stats.reruns++;
      const before = runs[i - 1];
      if (before && run.attempt <= before.attempt) {
        violation(`${id} ran with attempt ${run.attempt} (${run.proc}) after attempt ${before.attempt} (${before.proc})`, [before, run]);
      } else if ((before || run.attempt > 1) && !crashed(before, run)) {
        violation(`${id} ran again with attempt ${run.attempt} in ${run.proc}, but nothing cut off ${before ? `attempt ${before.attempt} in ${before.proc}` : 'an earlier attempt'}`, before ? [before, run] : [run]);
      }
    });
    if (!runs[0]!.needsApproval) continue;
    const result = calls.get(id)?.result;
    const allowed = decisions.find((d) => d.decision!.call === id && d.decision!.allowed && !refused.has(d.id));
    if (result?.data.status === 'denied') {
      violation(`${id} needs approval and ran (${runs[0]!.proc}, attempt ${runs[0]!.attempt}), yet its result is ${result.data.error?.code}`, [...(allowed ? [allowed] : []), runs[0]!, result.from]);
    } else if (!allowed || allowed.t > runs[0]!.t) {
      violation(`${id} needs approval and ran (${runs[0]!.proc}, attempt ${runs[0]!.attempt}) ${allowed ? 'before' : 'without'} an allowing decision`, [...(allowed ? [allowed] : []), runs[0]!]);
    }
  }
}

/** The same tool with the same input: what a re-run's replay matches. */
const sameCall = (a: StreamEvent, b: StreamEvent) => a.data.name === b.data.name && JSON.stringify(a.data.input) === JSON.stringify(b.data.input);

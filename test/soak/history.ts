/**
 * The soak's history: everything every client saw and did, one JSON object per line.
 * The checker reads nothing else (plus the seq boundary of the planned kill and, on a
 * cluster, the events the store holds at the end). The gateways' own records (started,
 * killed, store faults, a cluster node's commits) are written by the orchestrator; the
 * tools' executions by the gateway process that ran them, one file per process.
 */
import { createWriteStream, readFileSync } from 'node:fs';

/** A server frame a client received. `conn` is unique per connection over the whole run. */
export interface FrameRecord {
  readonly k: 'frame';
  readonly t: number;
  readonly conn: string;
  readonly session: string;
  readonly seq: number;
  readonly type: string;
  readonly data: Record<string, any>;
  /** The envelope's `timestamp`: the gateway's `Date.now()` when it wrote the frame (C20 compares it with due times). */
  readonly ts?: number;
}

/** A frame a client sent. `bad`: a fault it injected, and so expects a typed error or close for. */
export interface SentRecord {
  readonly k: 'sent';
  readonly t: number;
  readonly conn: string;
  readonly session: string;
  readonly id: string;
  readonly type: string;
  readonly bad?: 'malformed' | 'oversized';
  /** For a malformed frame: the error code it must get, and whether the error names its id (`event_id`). */
  readonly expect?: { readonly code: string; readonly byId: boolean };
  /** A `permission_response`: the call it decides and how (C19). */
  readonly decision?: { readonly call: string; readonly allowed: boolean };
  /** A `schedule` frame (C20): the schedule it asks for, and the client's `Date.now()` when it sent it. */
  readonly schedule?: ScheduleSent;
  /** A `schedule_cancel` frame (C20): the schedule it cancels. */
  readonly cancel?: string;
}

/** What a client asked of a schedule (C20): exactly one of `at`, `afterMs`, `everyMs`. */
export interface ScheduleSent {
  readonly id: string;
  readonly at?: number;
  readonly afterMs?: number;
  readonly everyMs?: number;
  /** `Date.now()` in the client when it sent the frame: the runtime's `now` for `afterMs` is later. */
  readonly wall: number;
}

/** What a sent frame may carry for the checker beyond its type and id. */
export type SentExtra = Pick<SentRecord, 'decision' | 'schedule' | 'cancel'>;

/** A connection was opened (`init` sent) or closed. */
export interface ConnRecord {
  readonly k: 'open' | 'close';
  readonly t: number;
  readonly conn: string;
  readonly session: string;
  readonly lastSeq?: number;
  readonly code?: number;
  /** The driver closed it on purpose (a fault or the end of the run). */
  readonly byClient?: boolean;
  /** Why it failed, when it failed (a connection refused while the gateway restarts). */
  readonly error?: string;
  /** On a cluster: the node (its index) the connection went to. */
  readonly node?: number;
}

/** The gateway process: started, killed on plan, or exited on its own. */
export interface ServerRecord {
  readonly k: 'server';
  readonly t: number;
  readonly event: 'start' | 'kill' | 'exit';
  readonly planned?: boolean;
  readonly code?: number | null;
  /** On a cluster: which node (its index). */
  readonly node?: number;
  /** Which gateway process (one per start): what its tools' executions name. */
  readonly proc?: string;
}

/**
 * A soak tool began to run (C19), written by the gateway process `proc` before the tool does
 * anything, synchronously (the process may be SIGKILLed a moment later). `needsApproval`:
 * what the tool is meant to need, as the soak defines it (a planted bug may run it without).
 */
export interface ToolRecord {
  readonly k: 'tool';
  readonly t: number;
  readonly proc: string;
  readonly session: string;
  readonly call: string;
  readonly attempt: number;
  readonly name: string;
  readonly needsApproval: boolean;
}

/**
 * A cluster node committed a step of a session: its events `from`..`to`, written under
 * `epoch` (the store checked it in the same transaction, C17), by `node` in incarnation `inc`.
 */
export interface CommitRecord {
  readonly k: 'commit';
  readonly t: number;
  readonly node: number;
  readonly inc: number;
  readonly session: string;
  readonly from: number;
  readonly to: number;
  readonly epoch: number;
}

/**
 * The soak's store fault (C16): the window in which every write of the gateway's store
 * fails like a full disk (`fault` on/off), and each session a failed commit stopped, with the
 * last seq its store held then (`failed`): the re-activation numbers after it.
 */
export interface StoreRecord {
  readonly k: 'store';
  readonly t: number;
  readonly event: 'fault' | 'failed';
  /** `fault`: the window opens (`true`) or closes. */
  readonly on?: boolean;
  /** `failed`: the session and the last seq its store held when its commit failed. */
  readonly session?: string;
  readonly seq?: number;
}

/**
 * The chaos agent set a schedule from inside a turn (`turn.schedule`, C20), written by the
 * gateway process `proc` as soon as the call returned: `dueAt` as the runtime computed it.
 * It exists only if the turn's step was committed (a kill or a store fault may lose it).
 */
export interface AgentScheduleRecord {
  readonly k: 'schedule';
  readonly t: number;
  readonly proc: string;
  readonly session: string;
  readonly id: string;
  readonly dueAt: number;
  readonly everyMs?: number;
}

/** The schedule id and due time of a fire's input id `timer:<schedule id>:<due time>` (C20), or `undefined` for any other input. */
export function timerOf(inputId: string): { id: string; dueAt: number } | undefined {
  if (!inputId.startsWith('timer:')) return undefined;
  const colon = inputId.lastIndexOf(':');
  return { id: inputId.slice('timer:'.length, colon), dueAt: Number(inputId.slice(colon + 1)) };
}

/**
 * A turn of the chaos agent was handed a schedule's fire (C20), written by the gateway process
 * `proc` as the turn began: `at` is that process's `Date.now()`, the clock of due times. A
 * re-run (after a kill or a failed commit) is handed it again.
 */
export interface AgentFireRecord {
  readonly k: 'fire';
  readonly t: number;
  readonly proc: string;
  readonly session: string;
  readonly input: string;
  readonly at: number;
}

export type HistoryRecord = FrameRecord | SentRecord | ConnRecord | ServerRecord | StoreRecord | CommitRecord | ToolRecord | AgentScheduleRecord | AgentFireRecord;

export type HistoryWriter = ReturnType<typeof historyWriter>;

export function historyWriter(path: string) {
  const out = createWriteStream(path);
  return {
    write: (record: HistoryRecord) => out.write(`${JSON.stringify(record)}\n`),
    close: () => new Promise<void>((resolve) => out.end(() => resolve())),
  };
}

export function readHistory(paths: readonly string[]): HistoryRecord[] {
  const records: HistoryRecord[] = [];
  for (const path of paths) {
    for (const line of readFileSync(path, 'utf8').split('\n')) if (line) records.push(JSON.parse(line) as HistoryRecord);
  }
  return records.sort((a, b) => a.t - b.t);
}

/**
 * A frame's data as the history keeps it: a long delta's text is cut to its length (a flood
 * is megabytes per connection, and the checker compares, never reads, delta text).
 */
export function recorded(type: string, data: Record<string, any>): Record<string, any> {
  if (type !== 'message.delta' || typeof data.content !== 'string' || data.content.length <= 64) return data;
  return { ...data, content: `${data.content.slice(0, 8)}…(${data.content.length} chars)` };
}

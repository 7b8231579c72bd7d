/**
 * The soak checker's rules for a cluster: which epoch wrote which events (C17), and whether
 * what clients saw is what the store holds (C8/C16). Pure, like the rest of the checker.
 */
import type { CommitRecord, FrameRecord, HistoryRecord } from './history.ts';
import { recorded } from './history.ts';

/** A violation of a cluster rule (the checker adds nothing to it). */
export interface ClusterViolation {
  readonly contract: 'C17' | 'C8/C16';
  readonly session: string;
  readonly message: string;
  readonly slice: readonly HistoryRecord[];
}

/** What the store holds of one session at the end: its last seq, and the events it still keeps (trimmed to the newest). */
export interface StoredEvents {
  readonly lastSeq: number;
  readonly events: ReadonlyMap<number, { readonly type: string; readonly data: unknown }>;
}

/** A session's commits, in seq order (a seq written twice: in the order they were written). */
export function commitsBySession(history: readonly HistoryRecord[]): Map<string, CommitRecord[]> {
  const bySession = new Map<string, CommitRecord[]>();
  for (const r of history) {
    if (r.k !== 'commit') continue;
    const list = bySession.get(r.session);
    if (list) list.push(r);
    else bySession.set(r.session, [r]);
  }
  for (const list of bySession.values()) list.sort((a, b) => a.from - b.from || a.t - b.t);
  return bySession;
}

/**
 * The epoch that wrote `seq`: the epoch of the last commit that starts at or before it. A
 * seq no printed commit covers (its node was killed between the commit and the line) was
 * written by the epoch of the commit before it, since a later one would have had to claim
 * the session first and print its own. `undefined` before the first printed commit.
 */
export function epochAt(commits: readonly CommitRecord[], seq: number): number | undefined {
  let epoch: number | undefined;
  for (const c of commits) {
    if (c.from > seq) break;
    epoch = c.epoch;
  }
  return epoch;
}

/**
 * C17 along each session's seq: every seq is written once (no seq is reused by a later
 * owner or a recovery), epochs never decrease as the seq grows (no stale-epoch event
 * follows a newer one), and each epoch is one owner's — one node, one incarnation.
 */
export function checkEpochs(commits: ReadonlyMap<string, readonly CommitRecord[]>): ClusterViolation[] {
  const violations: ClusterViolation[] = [];
  for (const [session, list] of commits) {
    const owners = new Map<number, CommitRecord>();
    list.forEach((c, i) => {
      const previous = list[i - 1];
      if (previous && c.from <= previous.to) {
        const span = `${c.from}..${Math.min(c.to, previous.to)}`;
        violations.push({ contract: 'C17', session, message: `seqs ${span} were written twice: by epoch ${previous.epoch} (${owner(previous)}) and by epoch ${c.epoch} (${owner(c)})`, slice: [previous, c] });
      } else if (previous && c.epoch < previous.epoch) {
        violations.push({
          contract: 'C17',
          session,
          message: `the epoch decreases along the seq: seqs ${previous.from}..${previous.to} by epoch ${previous.epoch}, then ${c.from}..${c.to} by epoch ${c.epoch} (${owner(c)})`,
          slice: [previous, c],
        });
      }
      const first = owners.get(c.epoch);
      if (!first) owners.set(c.epoch, c);
      else if (first.node !== c.node || first.inc !== c.inc) {
        violations.push({ contract: 'C17', session, message: `epoch ${c.epoch} has two owners: ${owner(first)} and ${owner(c)}`, slice: [first, c] });
      }
    });
  }
  return violations;
}

/**
 * C8/C16 against the store: no client saw a seq past the last one the store holds (an event
 * that was never committed), and every event a client saw that the store still keeps is
 * that stored event — on every connection, through every node. `done.dropped` is per
 * connection, and a long delta's text is kept cut in the history: both are compared as such.
 */
export function checkStored(
  bySession: ReadonlyMap<string, readonly FrameRecord[]>,
  stored: ReadonlyMap<string, StoredEvents>,
): { violations: ClusterViolation[]; compared: number } {
  const violations: ClusterViolation[] = [];
  let compared = 0;
  for (const [session, seen] of bySession) {
    const held = stored.get(session) ?? { lastSeq: 0, events: new Map() };
    const reported = new Set<number>();
    for (const f of seen) {
      if (f.seq <= 0 || reported.has(f.seq)) continue;
      if (f.seq > held.lastSeq) {
        reported.add(f.seq);
        violations.push({ contract: 'C8/C16', session, message: `${f.conn} saw seq ${f.seq} (${f.type}), but the store holds the session only up to seq ${held.lastSeq}: it was never committed`, slice: [f] });
        continue;
      }
      const event = held.events.get(f.seq);
      if (!event) continue; // trimmed (the store keeps the newest events of a session)
      compared++;
      if (event.type === f.type && canonical(comparable(f.type, recorded(event.type, asRecord(event.data)))) === canonical(comparable(f.type, f.data))) continue;
      reported.add(f.seq);
      violations.push({
        contract: 'C8/C16',
        session,
        message: `${f.conn} saw seq ${f.seq} as ${f.type} ${JSON.stringify(f.data)}, but the store holds ${event.type} ${JSON.stringify(event.data)}`,
        slice: [f],
      });
    }
  }
  return { violations, compared };
}

function owner(c: CommitRecord): string {
  return `node ${c.node}, incarnation ${c.inc}`;
}

function asRecord(data: unknown): Record<string, any> {
  return typeof data === 'object' && data !== null ? (data as Record<string, any>) : { value: data };
}

/** A done's `dropped` is the connection's, not the event's. */
function comparable(type: string, data: Record<string, any>): Record<string, any> {
  if (type !== 'done') return data;
  const { dropped: _, ...rest } = data;
  return rest;
}

/** JSON with object keys sorted: equal values, equal text. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_, v: unknown) =>
    typeof v === 'object' && v !== null && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );
}

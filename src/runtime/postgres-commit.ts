import type { TransactionSql } from 'postgres';
import { fits, hint } from './postgres-hints.ts';
import { key, run, WaveRows, writeWave, type Insert } from './postgres-wave.ts';
import { StaleEpochError, type StepRecord } from './store.ts';

/** A session this node claimed: the epoch it claimed it at, under which incarnation. */
export interface Claim {
  readonly epoch: number;
  readonly incarnation: number;
}

export interface CommitContext {
  readonly node: string;
  readonly incarnation: number;
  readonly keepEvents: number;
  readonly channel: string;
  readonly claims: ReadonlyMap<string, Claim>;
  /** Whether this step's consumption should also trim the session's consumed inbox entries. */
  readonly trimInbox: (sessionId: string) => boolean;
}

/** What a committed group changes in the node's claims. */
export interface ClaimChanges {
  readonly claimed: ReadonlyMap<string, Claim>;
  readonly forgotten: readonly string[];
}

/**
 * Writes a group of steps inside `tx` (one transaction, C16) and checks ownership in it
 * (C17): the session rows are locked `FOR UPDATE` first, so a claim by another node waits
 * for this transaction, or this one sees the claim and fails. Every statement is sent at
 * once (pipelined) and the answers are checked at the end; a failed check throws
 * {@link StaleEpochError}, which rolls the whole group back.
 */
export async function writeSteps(tx: TransactionSql, steps: readonly StepRecord[], ctx: CommitContext): Promise<ClaimChanges> {
  const state = new Map<string, 'claimed' | 'new'>();
  for (const { sessionId } of steps) {
    const id = key(sessionId);
    const claim = ctx.claims.get(id);
    // A claim of an earlier incarnation died with its lease: refused before anything is sent.
    if (claim && claim.incarnation !== ctx.incarnation) {
      throw new StaleEpochError(`session "${id}" was claimed under incarnation ${claim.incarnation}, whose lease is lost: its write is refused`, undefined, id);
    }
    state.set(id, claim ? 'claimed' : 'new');
  }
  // The first seq each session writes in this group: its trim keeps everything from there,
  // so nodes tailing the session read every event, even of a group larger than keepEvents.
  const firstSeq = new Map<string, number>();
  for (const { sessionId, events } of steps) {
    const id = key(sessionId);
    if (events.length > 0 && !firstSeq.has(id)) firstSeq.set(id, events[0]!.seq);
  }
  const ids = [...state.keys()].sort();
  const locked = run(tx<OwnerRow[]>`SELECT id, epoch, owner_node, owner_incarnation FROM sessions WHERE id = ANY(${ids}::text[]) ORDER BY id FOR UPDATE`);
  const writes: Promise<unknown>[] = [];
  const inserts: Insert[] = [];
  const inserted = new Set<string>();
  const released = new Set<string>();
  for (const wave of waves(steps)) {
    const rows = new WaveRows();
    for (const step of wave) {
      const id = key(step.sessionId);
      const fresh = state.get(id) === 'new';
      rows.add(step, id, fresh, { keepEvents: ctx.keepEvents, from: firstSeq.get(id) }, step.consumed.length > 0 && ctx.trimInbox(id));
      // After this wave, a later step of the same session finds the row as this one leaves it.
      if (step.deleted) state.set(id, 'new');
      else if (fresh && step.session) state.set(id, 'claimed');
      if (fresh && step.session && !step.deleted) inserted.add(id);
      if (step.deleted) inserted.delete(id);
      if (step.release || step.deleted) released.add(id);
    }
    const { queries, insert } = writeWave(tx, rows, ctx);
    writes.push(...queries);
    if (insert) inserts.push(insert);
  }
  const hints = steps.flatMap((s) => (s.events.length > 0 ? [hint.events(key(s.sessionId), s.events.at(-1)!.seq)] : [])).filter(fits);
  // NOTIFY is transactional: the hints go out when (and only if) the group commits.
  if (hints.length > 0) writes.push(run(tx`SELECT pg_notify(${ctx.channel}, p) FROM unnest(${hints}::text[]) AS p`));
  const [owners] = await Promise.all([locked, ...writes]);
  const refused = await refusal(owners, state, inserts, ctx);
  if (refused) throw refused;
  const claimed = new Map<string, Claim>();
  for (const id of inserted) if (!released.has(id)) claimed.set(id, { epoch: 1, incarnation: ctx.incarnation });
  return { claimed, forgotten: [...released] };
}

/**
 * The group in waves of distinct sessions: a session's second step in one group goes in the
 * second wave. Each wave is written with one statement per kind of write, whatever its size.
 */
function waves(steps: readonly StepRecord[]): StepRecord[][] {
  const result: StepRecord[][] = [];
  const seen = new Map<string, number>();
  for (const step of steps) {
    const id = key(step.sessionId);
    const n = seen.get(id) ?? 0;
    seen.set(id, n + 1);
    (result[n] ??= []).push(step);
  }
  return result;
}

interface OwnerRow {
  id: string;
  epoch: number;
  owner_node: string | null;
  owner_incarnation: number | null;
}

/** The first session of the group this node may not write, as the error to throw. */
async function refusal(
  owners: readonly OwnerRow[],
  state: ReadonlyMap<string, 'claimed' | 'new'>,
  inserts: readonly Insert[],
  ctx: CommitContext,
): Promise<StaleEpochError | undefined> {
  const byId = new Map(owners.map((r) => [r.id, r]));
  for (const id of state.keys()) {
    const row = byId.get(id);
    const claim = ctx.claims.get(id);
    if (claim) {
      if (row && row.epoch === claim.epoch && row.owner_node === ctx.node && row.owner_incarnation === claim.incarnation) continue;
    } else if (!row) continue;
    return stale(id, row, claim);
  }
  for (const insert of inserts) {
    const got = new Set((await insert.rows).map((r) => r.id));
    const lost = insert.ids.find((id) => !got.has(id));
    if (lost !== undefined) return stale(lost, undefined, undefined);
  }
  return undefined;
}

/** A refused write (C17), naming the session (only it stops) and its current owner. */
function stale(id: string, row: OwnerRow | undefined, claim: Claim | undefined): StaleEpochError {
  const holder = row?.owner_node ? `node ${row.owner_node} (incarnation ${row.owner_incarnation})` : undefined;
  const now = row ? `is now at epoch ${row.epoch}, owned by ${holder ?? 'no node'}` : claim ? 'is gone' : 'was created by another node meanwhile';
  const mine = claim ? `this node's claim (epoch ${claim.epoch}, incarnation ${claim.incarnation})` : 'this node never claimed it';
  return new StaleEpochError(`session "${id}" ${now}; ${mine} is stale: its write is refused`, holder, id);
}

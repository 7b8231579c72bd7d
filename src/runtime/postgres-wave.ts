import type { PendingQuery, Row, TransactionSql } from 'postgres';
import { INBOX_KEEP, type InboxEntry, type ScheduleRecord, type StepRecord, type TranscriptEntry } from './store.ts';

/*
 * The writes of a group commit, set-based: the steps of a wave (distinct sessions) become
 * one statement per kind of write — events, inbox, transcript, snapshots — so a group of 20
 * sessions costs about what one session does in statements (see postgres-commit.ts).
 */

/**
 * A key column's value: `text` refuses NUL and cannot hold a lone surrogate, so both become
 * U+FFFD (what UTF-8 on the wire would make of a lone surrogate anyway). Payloads keep the
 * exact string; only ids used for lookups pass through here.
 */
export function key(id: string): string {
  return /[\0\uD800-\uDFFF]/.test(id) ? Buffer.from(id).toString().replaceAll('\0', '\uFFFD') : id;
}

interface SnapshotRow {
  sid: string;
  kind: string;
  snapshot: unknown;
  seq: number;
  version: number;
  at: number;
}

/** One wave's rows, by kind of write, in the order of {@link StepRecord}. */
export class WaveRows {
  readonly fresh: string[] = [];
  readonly events: { sid: string; seq: number; type: string; data: unknown }[] = [];
  readonly trims: { sid: string; cutoff: number }[] = [];
  readonly deleted: string[] = [];
  readonly accepted: { sid: string; key: string; entry: InboxEntry }[] = [];
  readonly transcript: { sid: string; entry: TranscriptEntry }[] = [];
  readonly consumed: { sid: string; key: string }[] = [];
  readonly taken: { sid: string; key: string }[] = [];
  readonly trimmed: string[] = [];
  /** Inputs of this wave by session and key: an id accepted twice is written once. */
  readonly #acceptedKeys = new Set<string>();
  readonly updates: SnapshotRow[] = [];
  readonly inserts: SnapshotRow[] = [];
  readonly released: string[] = [];
  readonly schedules: { sid: string; record: ScheduleRecord }[] = [];
  readonly unscheduled: { sid: string; key: string }[] = [];

  /**
   * `keep`: the session keeps its newest `keepEvents` events — and every event of this
   * group, from `from` on: a group larger than keepEvents would otherwise delete events it
   * writes itself, before any other node could read them.
   */
  add(step: StepRecord, sid: string, fresh: boolean, keep: { keepEvents: number; from: number | undefined }, trim: boolean): void {
    // A session id used again after a deletion starts without the old session's events.
    if (fresh && !step.deleted) this.fresh.push(sid);
    for (const e of step.events) this.events.push({ sid, seq: e.seq, type: e.type, data: e.data });
    if (step.events.length > 0) this.trims.push({ sid, cutoff: Math.min(step.events.at(-1)!.seq - keep.keepEvents, (keep.from ?? Number.POSITIVE_INFINITY) - 1) });
    if (step.deleted) return void this.deleted.push(sid);
    for (const input of step.accepted ?? []) {
      const k = key(input.id);
      if (this.#acceptedKeys.has(`${sid}\0${k}`)) continue;
      this.#acceptedKeys.add(`${sid}\0${k}`);
      this.accepted.push({ sid, key: k, entry: entryOf(input) });
    }
    for (const mail of step.taken ?? []) this.taken.push({ sid, key: key(mail) });
    for (const entry of step.transcript ?? []) this.transcript.push({ sid, entry: said(entry) });
    for (const input of step.consumed) this.consumed.push({ sid, key: key(input) });
    for (const record of step.schedules?.set ?? []) this.schedules.push({ sid, record });
    for (const id of step.schedules?.cancel ?? []) this.unscheduled.push({ sid, key: key(id) });
    if (trim) this.trimmed.push(sid);
    const s = step.session;
    if (s) (fresh ? this.inserts : this.updates).push({ sid, kind: s.kind, snapshot: s.snapshot, seq: s.seq, version: s.version ?? 1, at: Math.floor(s.at ?? Date.now()) });
    if (step.release) this.released.push(sid);
  }
}

/**
 * The statements of one wave; each starts at once. Rows travel as parallel arrays zipped by
 * `ROWS FROM`: ids and numbers as arrays, payloads as one JSON array split by
 * `json_array_elements`, which hands each element over verbatim. (Reading a field of a JSON
 * object instead would unescape the whole object, and PostgreSQL refuses to unescape
 * `\u0000`.) JSON goes in as text cast `::text::json`: typed `json`, the client would encode
 * it a second time.
 */
export function writeWave(tx: TransactionSql, w: WaveRows, owner: { readonly node: string; readonly incarnation: number }): { queries: Promise<unknown>[]; insert?: Insert } {
  const q: Promise<unknown>[] = [];
  const json = (rows: readonly unknown[]) => JSON.stringify(rows);
  const col = <R, K extends keyof R>(rows: readonly R[], k: K) => rows.map((r) => r[k]);
  if (w.fresh.length > 0) {
    q.push(run(tx`WITH t AS (DELETE FROM tombstones WHERE session_id = ANY(${w.fresh}::text[]) RETURNING session_id)
                  DELETE FROM events e USING t WHERE e.session_id = t.session_id`));
  }
  if (w.events.length > 0) {
    const e = w.events;
    q.push(run(tx`INSERT INTO events (session_id, seq, type, data)
                  SELECT t.sid, t.seq, t.type, coalesce(t.data, 'null'::json)
                  FROM ROWS FROM (unnest(${col(e, 'sid')}::text[]), unnest(${col(e, 'seq')}::int[]), unnest(${col(e, 'type')}::text[]),
                                  json_array_elements(${json(col(e, 'data'))}::text::json)) AS t(sid, seq, type, data)
                  ON CONFLICT (session_id, seq) DO UPDATE SET type = excluded.type, data = excluded.data`));
    // Each session keeps its newest keepEvents, and this group's own (an indexed range delete per session).
    q.push(run(tx`DELETE FROM events e USING ROWS FROM (unnest(${col(w.trims, 'sid')}::text[]), unnest(${col(w.trims, 'cutoff')}::int[])) AS t(sid, cutoff)
                  WHERE e.session_id = t.sid AND e.seq <= t.cutoff`));
  }
  if (w.deleted.length > 0) {
    // Their events stay (tombstoned) until retention: nodes tailing them still read the last ones.
    q.push(run(tx`WITH d AS (SELECT unnest(${w.deleted}::text[]) AS id),
                       s AS (DELETE FROM sessions WHERE id IN (SELECT id FROM d) RETURNING id, updated_at),
                       i AS (DELETE FROM inbox WHERE session_id IN (SELECT id FROM d)),
                       t AS (DELETE FROM transcript WHERE session_id IN (SELECT id FROM d)),
                       c AS (DELETE FROM schedules WHERE session_id IN (SELECT id FROM d))
                  INSERT INTO tombstones (session_id, deleted_at) SELECT d.id, coalesce(s.updated_at, ${Date.now()}) FROM d LEFT JOIN s ON s.id = d.id
                  ON CONFLICT (session_id) DO UPDATE SET deleted_at = excluded.deleted_at`));
  }
  if (w.accepted.length > 0) {
    const a = w.accepted;
    // Taken as it is written: the owner accepted it. Mail of the same id it had not taken yet is taken now.
    q.push(run(tx`INSERT INTO inbox (session_id, input_id, kind, entry, taken)
                  SELECT t.sid, t.key, 'input', t.entry, true
                  FROM ROWS FROM (unnest(${col(a, 'sid')}::text[]), unnest(${col(a, 'key')}::text[]), json_array_elements(${json(col(a, 'entry'))}::text::json))
                       WITH ORDINALITY AS t(sid, key, entry, i)
                  ORDER BY t.i
                  ON CONFLICT (session_id, input_id) DO UPDATE SET taken = true WHERE NOT inbox.taken`));
  }
  if (w.taken.length > 0) {
    const t = w.taken;
    q.push(run(tx`UPDATE inbox i SET taken = true FROM ROWS FROM (unnest(${col(t, 'sid')}::text[]), unnest(${col(t, 'key')}::text[])) AS t(sid, key)
                  WHERE i.session_id = t.sid AND i.input_id = t.key AND NOT i.taken`));
  }
  if (w.transcript.length > 0) {
    const t = w.transcript;
    q.push(run(tx`INSERT INTO transcript (session_id, entry)
                  SELECT t.sid, t.entry FROM ROWS FROM (unnest(${col(t, 'sid')}::text[]), json_array_elements(${json(col(t, 'entry'))}::text::json))
                       WITH ORDINALITY AS t(sid, entry, i)
                  ORDER BY t.i`));
  }
  if (w.consumed.length > 0) {
    const c = w.consumed;
    q.push(run(tx`UPDATE inbox i SET consumed = true FROM ROWS FROM (unnest(${col(c, 'sid')}::text[]), unnest(${col(c, 'key')}::text[])) AS c(sid, key)
                  WHERE i.session_id = c.sid AND i.input_id = c.key AND NOT i.consumed`));
  }
  if (w.unscheduled.length > 0) {
    const u = w.unscheduled;
    q.push(run(tx`DELETE FROM schedules c USING ROWS FROM (unnest(${col(u, 'sid')}::text[]), unnest(${col(u, 'key')}::text[])) AS t(sid, key)
                  WHERE c.session_id = t.sid AND c.id = t.key`));
  }
  if (w.schedules.length > 0) {
    // The payload as JSON text, SQL NULL when there is none: a JSON `null` payload is kept as one.
    const s = w.schedules.map(({ sid, record }) => ({
      sid,
      key: key(record.id),
      due: record.dueAt,
      every: record.everyMs ?? null,
      cron: record.cron ?? null,
      payload: record.payload === undefined ? null : JSON.stringify(record.payload),
    }));
    q.push(run(tx`INSERT INTO schedules (session_id, id, due_at, every_ms, cron, payload)
                  SELECT t.sid, t.key, t.due, t.every, t.cron, t.payload::json
                  FROM ROWS FROM (unnest(${col(s, 'sid')}::text[]), unnest(${col(s, 'key')}::text[]), unnest(${col(s, 'due')}::bigint[]),
                                  unnest(${col(s, 'every')}::bigint[]), unnest(${col(s, 'cron')}::text[]), unnest(${col(s, 'payload')}::text[]))
                       AS t(sid, key, due, every, cron, payload)
                  ON CONFLICT (session_id, id) DO UPDATE SET due_at = excluded.due_at, every_ms = excluded.every_ms, cron = excluded.cron, payload = excluded.payload`));
  }
  if (w.trimmed.length > 0) {
    // Consumed entries are kept for duplicate detection (C10): the newest INBOX_KEEP of each
    // session. Finding that floor walks INBOX_KEEP index entries, so it runs now and then.
    q.push(run(tx`DELETE FROM inbox i USING (
                    SELECT sid, (SELECT n FROM inbox WHERE session_id = sid ORDER BY n DESC OFFSET ${INBOX_KEEP - 1} LIMIT 1) AS floor
                    FROM unnest(${w.trimmed}::text[]) AS sid) f
                  WHERE i.session_id = f.sid AND i.consumed AND i.n < f.floor`));
  }
  if (w.updates.length > 0) {
    const u = w.updates;
    q.push(run(tx`UPDATE sessions s SET kind = x.kind, snapshot = x.snapshot, seq = x.seq, version = x.version, updated_at = x.at
                  FROM ${snapshotRows(tx, u)} WHERE s.id = x.sid`));
  }
  let insert: Insert | undefined;
  if (w.inserts.length > 0) {
    // DO NOTHING, then checked: a row another node created meanwhile is never overwritten.
    const rows = run<{ id: string }[]>(tx`INSERT INTO sessions (id, kind, snapshot, seq, version, updated_at, epoch, owner_node, owner_incarnation)
                  SELECT x.sid, x.kind, x.snapshot, x.seq, x.version, x.at, 1, ${owner.node}, ${owner.incarnation} FROM ${snapshotRows(tx, w.inserts)}
                  ON CONFLICT (id) DO NOTHING RETURNING id`);
    insert = { ids: w.inserts.map((r) => r.sid), rows };
    q.push(rows);
  }
  if (w.released.length > 0) {
    q.push(run(tx`UPDATE sessions SET owner_node = NULL, owner_incarnation = NULL, epoch = epoch + 1 WHERE id = ANY(${w.released}::text[])`));
  }
  return insert ? { queries: q, insert } : { queries: q };
}

/** Snapshot rows as a relation `x`. */
function snapshotRows(tx: TransactionSql, rows: readonly SnapshotRow[]): PendingQuery<Row[]> {
  const col = <K extends keyof SnapshotRow>(k: K) => rows.map((r) => r[k]);
  return tx`ROWS FROM (unnest(${col('sid')}::text[]), unnest(${col('kind')}::text[]), json_array_elements(${JSON.stringify(col('snapshot'))}::text::json),
                       unnest(${col('seq')}::int[]), unnest(${col('version')}::int[]), unnest(${col('at')}::bigint[]))
            AS x(sid, kind, snapshot, seq, version, at)`;
}

/** A wave's new sessions, and the ids its INSERT came back with. */
export interface Insert {
  readonly ids: readonly string[];
  readonly rows: Promise<readonly { id: string }[]>;
}

/** An inbox entry as stored: exactly its fields, whatever else the object carries. */
export function entryOf({ id, content, metadata }: InboxEntry): InboxEntry {
  return metadata === undefined ? { id, content } : { id, content, metadata };
}

function said({ role, content, inputId, status }: TranscriptEntry): TranscriptEntry {
  return { role, content, ...(inputId !== undefined && { inputId }), ...(status !== undefined && { status }) };
}

/** Starts a query now, so the statements go out in order (the `postgres` package sends one once it is awaited or executed). */
export function run<T extends readonly unknown[]>(query: PendingQuery<T & Row[]>): Promise<T> {
  return query.execute();
}

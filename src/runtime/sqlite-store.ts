import { mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { requirePeer } from '../peer.ts';
import { migrate } from './sqlite-migrations.ts';
import { StaleEpochError } from './store.ts';
export { StaleEpochError };
import type { SessionEvent } from './types.ts';
import { DEFAULT_KEEP_EVENTS, INBOX_KEEP, type InboxEntry, type ScheduleRecord, type LoadedSession, type LoadOptions, type Store, type StoredSession, type TranscriptEntry, type StepRecord } from './store.ts';
/** Options of {@link SqliteStore}. */
export interface SqliteStoreOptions {
  /** Events held per session for resume. @default 256 */
  keepEvents?: number;
  /** Who this process is, as the next owner of the store will name it. @default `pid <pid> on <hostname>` */
  holder?: string;
  /**
   * A size quota for the database file (SQLite's `max_page_count`). Past it every write fails
   * with "database or disk is full", exactly as a full disk does: nothing of the failing step
   * is published (C16) and the runtime retries until there is room again.
   * @default no limit but the disk's
   */
  maxBytes?: number;
}

/**
 * The embedded store: one SQLite file (WAL), through better-sqlite3's synchronous API.
 *
 * One owner at a time (C17): opening the store takes it over with a new epoch, and every
 * write checks that epoch in its transaction. A second process that opens the same file
 * fences the first: the first's next write throws {@link StaleEpochError} naming the new
 * holder, its runtime stops every session, and no input runs in both.
 *
 * @example
 * const runtime = createRuntime({ agent, store: new SqliteStore('./.baton/baton.db') });
 */
export class SqliteStore implements Store {
  readonly durable = true;
  readonly #db: BetterSqlite3.Database;
  readonly #keep: number;
  /** This process's ownership epoch of the whole store (C17). */
  readonly epoch: number;
  readonly #path: string;
  readonly #q;

  constructor(path: string, { keepEvents = DEFAULT_KEEP_EVENTS, holder = `pid ${process.pid} on ${hostname()}`, maxBytes }: SqliteStoreOptions = {}) {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    const Database = requirePeer<typeof BetterSqlite3>('better-sqlite3', 'baton-runtime/sqlite');
    this.#db = new Database(path);
    this.#db.pragma('journal_mode = WAL');
    // NORMAL under WAL: a commit survives a process crash (what C12 promises); only an OS
    // crash or power loss can lose the last transactions.
    this.#db.pragma('synchronous = NORMAL');
    // A writer of another process holds the lock for a few ms at most; wait, do not fail.
    this.#db.pragma('busy_timeout = 5000');
    checkFile(this.#db, path);
    migrate(this.#db);
    if (maxBytes !== undefined) {
      const pageSize = this.#db.pragma('page_size', { simple: true }) as number;
      this.#db.pragma(`max_page_count = ${Math.max(1, Math.floor(maxBytes / pageSize))}`);
    }
    this.#keep = keepEvents;
    this.#path = path;
    const claim = this.#db.prepare<[string, number], { epoch: number }>(
      `INSERT INTO owner (id, epoch, holder, since) VALUES (1, 1, ?, ?)
       ON CONFLICT (id) DO UPDATE SET epoch = epoch + 1, holder = excluded.holder, since = excluded.since
       RETURNING epoch`,
    );
    // In an explicit transaction: a claim that cannot be committed (a full disk) must throw,
    // not leave this process believing in an epoch nobody stored.
    this.epoch = this.#db.transaction(() => claim.get(holder, Date.now())!.epoch).immediate();
    const db = this.#db;
    this.#q = {
      load: db.prepare<[string], { kind: string; snapshot: string; seq: number; version: number }>('SELECT kind, snapshot, seq, version FROM sessions WHERE id = ?'),
      upsert: db.prepare(
        `INSERT INTO sessions (id, kind, snapshot, seq, epoch, updated_at, version) VALUES (?, ?, ?, ?, 1, ?, ?)
         ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, snapshot = excluded.snapshot, seq = excluded.seq,
           updated_at = excluded.updated_at, version = excluded.version`,
      ),
      consume: db.prepare('UPDATE inbox SET consumed = 1 WHERE session_id = ? AND input_id = ?'),
      accept: db.prepare('INSERT OR IGNORE INTO inbox (session_id, input_id, content, metadata) VALUES (?, ?, ?, ?)'),
      pending: db.prepare<[string], Row>('SELECT input_id, content, metadata FROM inbox WHERE session_id = ? AND consumed = 0 ORDER BY n'),
      withPending: db.prepare<[], { session_id: string }>('SELECT DISTINCT session_id FROM inbox WHERE consumed = 0'),
      // A range on the primary key, not LIKE (whose wildcards a prefix may hold).
      countPrefix: db.prepare<[string, string], { n: number }>('SELECT count(*) AS n FROM sessions WHERE id >= ? AND id < ?'),
      recent: db.prepare<[string, number], Row>(
        'SELECT input_id, content, metadata FROM (SELECT * FROM inbox WHERE session_id = ? ORDER BY n DESC LIMIT ?) ORDER BY n',
      ),
      prune: db.prepare(
        'DELETE FROM inbox WHERE session_id = ? AND consumed = 1 AND n < (SELECT MIN(n) FROM (SELECT n FROM inbox WHERE session_id = ? ORDER BY n DESC LIMIT ?))',
      ),
      events: db.prepare('INSERT OR REPLACE INTO event_steps (session_id, first_seq, last_seq, events) VALUES (?, ?, ?, ?)'),
      trim: db.prepare('DELETE FROM event_steps WHERE session_id = ? AND last_seq <= ?'),
      after: db.prepare<[string, number], { seq: number; events: string }>(
        'SELECT first_seq AS seq, events FROM event_steps WHERE session_id = ? AND last_seq > ? ORDER BY last_seq',
      ),
      lastSeq: db.prepare<[string], { seq: number | null }>('SELECT MAX(last_seq) AS seq FROM event_steps WHERE session_id = ?'),
      say: db.prepare('INSERT INTO transcript (session_id, role, content, input_id, status) VALUES (?, ?, ?, ?, ?)'),
      transcript: db.prepare<[string, number], { role: 'user' | 'assistant'; content: string; input_id: string | null; status: string | null }>(
        'SELECT role, content, input_id, status FROM (SELECT * FROM transcript WHERE session_id = ? ORDER BY n DESC LIMIT ?) ORDER BY n',
      ),
      deleteTranscript: db.prepare('DELETE FROM transcript WHERE session_id = ?'),
      deleteSession: db.prepare('DELETE FROM sessions WHERE id = ?'),
      deleteInbox: db.prepare('DELETE FROM inbox WHERE session_id = ?'),
      deleteEvents: db.prepare('DELETE FROM event_steps WHERE session_id = ?'),
      owner: db.prepare<[], { epoch: number; holder: string }>('SELECT epoch, holder FROM owner WHERE id = 1'),
      // A session with schedules is not idle: it wakes when they are due (C20).
      stale: db.prepare<[number], { id: string }>(
        `SELECT id FROM sessions s WHERE updated_at < ? AND NOT EXISTS (SELECT 1 FROM inbox i WHERE i.session_id = s.id AND i.consumed = 0)
           AND NOT EXISTS (SELECT 1 FROM schedules c WHERE c.session_id = s.id)`,
      ),
      setSchedule: db.prepare(
        `INSERT INTO schedules (session_id, id, due_at, every_ms, cron, payload) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (session_id, id) DO UPDATE SET due_at = excluded.due_at, every_ms = excluded.every_ms, cron = excluded.cron, payload = excluded.payload`,
      ),
      cancelSchedule: db.prepare('DELETE FROM schedules WHERE session_id = ? AND id = ?'),
      schedules: db.prepare<[string], ScheduleRow>('SELECT id, due_at, every_ms, cron, payload FROM schedules WHERE session_id = ? ORDER BY due_at, id'),
      deleteSchedules: db.prepare('DELETE FROM schedules WHERE session_id = ?'),
      nextDue: db.prepare<[number], { due: number | null }>('SELECT MIN(due_at) AS due FROM schedules WHERE due_at > ?'),
      dueSessions: db.prepare<[number, number], { session_id: string }>(
        'SELECT session_id, MIN(due_at) AS due FROM schedules WHERE due_at <= ? GROUP BY session_id ORDER BY due LIMIT ?',
      ),
    };
  }

  load(sessionId: string, { recent, history }: LoadOptions): LoadedSession | undefined {
    // One read transaction: the snapshot, the inbox and the events agree with each other.
    return this.#db.transaction(() => {
      const row = this.#q.load.get(sessionId);
      if (!row) return undefined;
      const session: StoredSession = { sessionId, kind: row.kind, snapshot: JSON.parse(row.snapshot), seq: row.seq, version: row.version };
      return {
        session,
        lastSeq: Math.max(row.seq, this.#q.lastSeq.get(sessionId)?.seq ?? 0),
        pending: this.#q.pending.all(sessionId).map(entry),
        recent: recent > 0 ? this.#q.recent.all(sessionId, recent).map(entry) : [],
        history: history > 0 ? this.#transcript(sessionId, history) : [],
        schedules: this.#q.schedules.all(sessionId).map(schedule),
      };
    })();
  }

  nextDue(after = Number.MIN_SAFE_INTEGER): number | undefined {
    return this.#q.nextDue.get(after)?.due ?? undefined;
  }

  dueSessions(before: number, limit: number): string[] {
    return this.#q.dueSessions.all(before, limit).map((r) => r.session_id);
  }

  /** A write transaction of this owner: refused once a newer owner took the store (C17). */
  #write(fn: () => void): void {
    try {
      this.#db.transaction(() => {
        this.checkOwner();
        fn();
      }).immediate();
    } catch (error) {
      // A full disk: give back what the write-ahead log holds, or a freed disk can fill up
      // again with the log of the retries before anything is checkpointed.
      if ((error as { code?: string }).code === 'SQLITE_FULL') this.#checkpoint();
      throw error;
    }
  }

  #checkpoint(): void {
    try {
      this.#db.pragma('wal_checkpoint(TRUNCATE)');
    } catch {
      // Best effort: the disk may still be full.
    }
  }

  checkOwner(): void {
    const owner = this.#q.owner.get();
    if (owner?.epoch === this.epoch) return;
    throw new StaleEpochError(
      `the store ${this.#path} was taken over by ${owner?.holder ?? 'another process'} (epoch ${owner?.epoch}); this process (epoch ${this.epoch}) must stop`,
      owner?.holder,
    );
  }

  commit(steps: readonly StepRecord[]): void {
    // One transaction for every step of the group.
    this.#write(() => {
      for (const step of steps) this.#step(step);
    });
  }

  #step(step: StepRecord): void {
    const id = step.sessionId;
    if (step.deleted) return this.#delete(id);
    const q = this.#q;
    let trimInbox = false;
    for (const input of step.accepted ?? []) {
      const { lastInsertRowid } = q.accept.run(id, input.id, input.content, input.metadata ? JSON.stringify(input.metadata) : null);
      // The consumed inputs kept for duplicate detection are trimmed to INBOX_KEEP now and
      // then (about every INBOX_TRIM_EVERY inputs), not at every step: the trim reads them.
      if (Number(lastInsertRowid) % INBOX_TRIM_EVERY === 0) trimInbox = true;
    }
    for (const cancelled of step.schedules?.cancel ?? []) q.cancelSchedule.run(id, cancelled);
    for (const s of step.schedules?.set ?? []) {
      q.setSchedule.run(id, s.id, s.dueAt, s.everyMs ?? null, s.cron ?? null, s.payload === undefined ? null : JSON.stringify(s.payload));
    }
    const events = step.events;
    if (events.length > 0) {
      const first = events[0]!.seq;
      const last = events.at(-1)!.seq;
      q.events.run(id, first, last, JSON.stringify(events.map((e) => [e.type, e.data])));
      // The session keeps the steps holding its newest keepEvents: one indexed range delete
      // whenever the seq crosses a multiple of TRIM_EVERY (so at most that many more are held).
      if (Math.floor(last / TRIM_EVERY) !== Math.floor((first - 1) / TRIM_EVERY)) q.trim.run(id, last - this.#keep);
    }
    for (const e of step.transcript ?? []) q.say.run(id, e.role, e.content, e.inputId ?? null, e.status ?? null);
    for (const input of step.consumed) q.consume.run(id, input);
    if (trimInbox) q.prune.run(id, id, INBOX_KEEP);
    const session = step.session;
    if (!session) return;
    const now = session.at ?? Date.now();
    const snapshot = JSON.stringify(session.snapshot);
    const version = session.version ?? 1;
    q.upsert.run(id, session.kind, snapshot, session.seq, now, version);
  }

  sessionsWithPending(): string[] {
    return this.#q.withPending.all().map((r) => r.session_id);
  }

  countSessions(prefix: string): number {
    return this.#q.countPrefix.get(prefix, `${prefix}\u{10FFFF}`)?.n ?? 0;
  }

  eventsAfter(sessionId: string, seq: number): SessionEvent[] {
    const events: SessionEvent[] = [];
    for (const row of this.#q.after.all(sessionId, seq)) {
      (JSON.parse(row.events) as [string, unknown][]).forEach(([type, data], i) => {
        if (row.seq + i > seq) events.push({ sessionId, seq: row.seq + i, type, data } as SessionEvent);
      });
    }
    // Rows are trimmed now and then: what is held beyond the newest keepEvents is not offered.
    return events.length > this.#keep ? events.slice(-this.#keep) : events;
  }

  #transcript(sessionId: string, limit: number): TranscriptEntry[] {
    return this.#q.transcript.all(sessionId, limit).map((r) => ({
      role: r.role,
      content: r.content,
      ...(r.input_id !== null && { inputId: r.input_id }),
      ...(r.status !== null && { status: r.status as 'interrupted' | 'failed' }),
    }));
  }

  prune(before: number, isLive: (sessionId: string) => boolean): number {
    const ids = this.#q.stale.all(before).map((r) => r.id).filter((id) => !isLive(id));
    this.#write(() => ids.forEach((id) => this.#delete(id)));
    return ids.length;
  }

  #delete(sessionId: string): void {
    this.#q.deleteTranscript.run(sessionId);
    this.#q.deleteSession.run(sessionId);
    this.#q.deleteInbox.run(sessionId);
    this.#q.deleteEvents.run(sessionId);
    this.#q.deleteSchedules.run(sessionId);
  }

  close(): void {
    if (this.#db.open) this.#db.close();
  }
}

/** How often (in seqs) a session's held events are trimmed to keepEvents. */
const TRIM_EVERY = 16;

/** How often (in inbox rows) a session's consumed inputs are trimmed to INBOX_KEEP. */
const INBOX_TRIM_EVERY = 64;

/**
 * Refuses a file Baton must not write: a damaged database (`PRAGMA quick_check`) or one of
 * another application (tables, but no Baton schema version). One line, naming the file.
 */
function checkFile(db: BetterSqlite3.Database, path: string): void {
  const check = db.pragma('quick_check', { simple: true });
  if (check !== 'ok') throw new Error(`${path} is damaged (SQLite quick_check: ${String(check).split('\n')[0]})`);
  const version = db.pragma('user_version', { simple: true }) as number;
  const tables = db.prepare<[], { n: number }>("SELECT COUNT(*) AS n FROM sqlite_schema WHERE type = 'table'").get()!.n;
  if (version === 0 && tables > 0) throw new Error(`${path} is a SQLite database of another application, not Baton's`);
}

interface ScheduleRow {
  id: string;
  due_at: number;
  every_ms: number | null;
  cron: string | null;
  payload: string | null;
}

function schedule(row: ScheduleRow): ScheduleRecord {
  return {
    id: row.id,
    dueAt: row.due_at,
    ...(row.every_ms !== null && { everyMs: row.every_ms }),
    ...(row.cron !== null && { cron: row.cron }),
    ...(row.payload !== null && { payload: JSON.parse(row.payload) }),
  };
}

interface Row {
  input_id: string;
  content: string;
  metadata: string | null;
}

function entry(row: Row): InboxEntry {
  return row.metadata ? { id: row.input_id, content: row.content, metadata: JSON.parse(row.metadata) } : { id: row.input_id, content: row.content };
}

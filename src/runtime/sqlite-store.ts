import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import { requirePeer } from '../peer.ts';
import { migrate } from './sqlite-migrations.ts';
import { StaleEpochError } from './store.ts';
export { StaleEpochError };
import type { SessionEvent } from './types.ts';
import { DEFAULT_KEEP_EVENTS, INBOX_KEEP, type InboxEntry, type Store, type StoredSession, type TranscriptEntry, type StepRecord } from './store.ts';


/**
 * The embedded store: one SQLite file (WAL), through better-sqlite3's synchronous API.
 *
 * @example
 * const runtime = createRuntime({ agent, store: new SqliteStore('./.baton/baton.db') });
 */
export class SqliteStore implements Store {
  readonly durable = true;
  readonly #db: BetterSqlite3.Database;
  readonly #keep: number;
  readonly #epoch = 1;
  readonly #q;
  #writes = 0;

  constructor(path: string, { keepEvents = DEFAULT_KEEP_EVENTS }: { keepEvents?: number } = {}) {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    const Database = requirePeer<typeof BetterSqlite3>('better-sqlite3', 'baton-runtime/sqlite');
    this.#db = new Database(path);
    this.#db.pragma('journal_mode = WAL');
    // NORMAL under WAL: a commit survives a process crash (what C12 promises); only an OS
    // crash or power loss can lose the last transactions.
    this.#db.pragma('synchronous = NORMAL');
    migrate(this.#db);
    this.#keep = keepEvents;
    const db = this.#db;
    this.#q = {
      load: db.prepare<[string], { kind: string; snapshot: string; seq: number }>('SELECT kind, snapshot, seq FROM sessions WHERE id = ?'),
      insert: db.prepare('INSERT INTO sessions (id, kind, snapshot, seq, epoch, updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING'),
      update: db.prepare('UPDATE sessions SET kind = ?, snapshot = ?, seq = ?, updated_at = ? WHERE id = ? AND epoch = ?'),
      consume: db.prepare('UPDATE inbox SET consumed = 1 WHERE session_id = ? AND input_id = ?'),
      accept: db.prepare('INSERT OR IGNORE INTO inbox (session_id, input_id, content, metadata) VALUES (?, ?, ?, ?)'),
      forget: db.prepare('DELETE FROM inbox WHERE session_id = ? AND input_id = ? AND consumed = 0'),
      pending: db.prepare<[string], Row>('SELECT input_id, content, metadata FROM inbox WHERE session_id = ? AND consumed = 0 ORDER BY n'),
      withPending: db.prepare<[], { session_id: string }>('SELECT DISTINCT session_id FROM inbox WHERE consumed = 0'),
      recent: db.prepare<[string, number], Row>(
        'SELECT input_id, content, metadata FROM (SELECT * FROM inbox WHERE session_id = ? ORDER BY n DESC LIMIT ?) ORDER BY n',
      ),
      prune: db.prepare(
        'DELETE FROM inbox WHERE session_id = ? AND consumed = 1 AND n < (SELECT MIN(n) FROM (SELECT n FROM inbox WHERE session_id = ? ORDER BY n DESC LIMIT ?))',
      ),
      event: db.prepare('INSERT OR REPLACE INTO events (session_id, seq, type, data) VALUES (?, ?, ?, ?)'),
      trim: db.prepare('DELETE FROM events WHERE session_id = ? AND seq <= ?'),
      after: db.prepare<[string, number], { seq: number; type: string; data: string }>(
        'SELECT seq, type, data FROM events WHERE session_id = ? AND seq > ? ORDER BY seq',
      ),
      lastSeq: db.prepare<[string], { seq: number | null }>('SELECT MAX(seq) AS seq FROM events WHERE session_id = ?'),
      say: db.prepare('INSERT INTO transcript (session_id, role, content, input_id, status) VALUES (?, ?, ?, ?, ?)'),
      transcript: db.prepare<[string, number], { role: 'user' | 'assistant'; content: string; input_id: string | null; status: string | null }>(
        'SELECT role, content, input_id, status FROM (SELECT * FROM transcript WHERE session_id = ? ORDER BY n DESC LIMIT ?) ORDER BY n',
      ),
      deleteTranscript: db.prepare('DELETE FROM transcript WHERE session_id = ?'),
      deleteSession: db.prepare('DELETE FROM sessions WHERE id = ?'),
      deleteInbox: db.prepare('DELETE FROM inbox WHERE session_id = ?'),
      deleteEvents: db.prepare('DELETE FROM events WHERE session_id = ?'),
    };
  }

  load(sessionId: string): StoredSession | undefined {
    const row = this.#q.load.get(sessionId);
    return row && { sessionId, kind: row.kind, snapshot: JSON.parse(row.snapshot), seq: row.seq };
  }

  save(session: StoredSession, consumed: readonly string[] = []): void {
    this.#db.transaction(() => {
      const now = Date.now();
      const snapshot = JSON.stringify(session.snapshot);
      this.#q.insert.run(session.sessionId, session.kind, snapshot, session.seq, this.#epoch, now);
      const { changes } = this.#q.update.run(session.kind, snapshot, session.seq, now, session.sessionId, this.#epoch);
      if (changes === 0) throw new StaleEpochError(`session "${session.sessionId}" is owned by another epoch; this process must not write it`);
      for (const id of consumed) this.#q.consume.run(session.sessionId, id);
      if (consumed.length > 0) this.#q.prune.run(session.sessionId, session.sessionId, INBOX_KEEP);
    })();
  }

  commit(step: StepRecord): void {
    // Nested transactions become savepoints: the step commits whole or not at all.
    this.#db.transaction(() => {
      this.appendEvents(step.events);
      if (step.transcript) this.appendTranscript(step.sessionId, step.transcript);
      if (step.session) this.save(step.session, step.consumed);
      else if (step.consumed.length > 0) this.consume(step.sessionId, step.consumed);
    })();
  }

  consume(sessionId: string, consumed: readonly string[]): void {
    this.#db.transaction(() => {
      for (const id of consumed) this.#q.consume.run(sessionId, id);
    })();
  }

  accept(sessionId: string, input: InboxEntry): void {
    this.#q.accept.run(sessionId, input.id, input.content, input.metadata ? JSON.stringify(input.metadata) : null);
  }

  forget(sessionId: string, inputId: string): void {
    this.#q.forget.run(sessionId, inputId);
  }

  pending(sessionId: string): InboxEntry[] {
    return this.#q.pending.all(sessionId).map(entry);
  }

  sessionsWithPending(): string[] {
    return this.#q.withPending.all().map((r) => r.session_id);
  }

  recentInputs(sessionId: string, limit: number): InboxEntry[] {
    return this.#q.recent.all(sessionId, limit).map(entry);
  }

  appendEvents(events: readonly SessionEvent[]): void {
    if (events.length === 0) return;
    this.#db.transaction(() => {
      for (const e of events) this.#q.event.run(e.sessionId, e.seq, e.type, JSON.stringify(e.data));
      // Trim now and then, not on every write: a session holds at most 2 × keepEvents.
      if ((this.#writes += events.length) >= this.#keep) {
        this.#writes = 0;
        for (const id of new Set(events.map((e) => e.sessionId))) this.#q.trim.run(id, this.lastSeq(id) - this.#keep);
      }
    })();
  }

  eventsAfter(sessionId: string, seq: number): SessionEvent[] {
    return this.#q
      .after.all(sessionId, seq)
      .map((r) => ({ sessionId, seq: r.seq, type: r.type, data: JSON.parse(r.data) }) as SessionEvent);
  }

  lastSeq(sessionId: string): number {
    return this.#q.lastSeq.get(sessionId)?.seq ?? 0;
  }

  appendTranscript(sessionId: string, entries: readonly TranscriptEntry[]): void {
    this.#db.transaction(() => {
      for (const e of entries) this.#q.say.run(sessionId, e.role, e.content, e.inputId ?? null, e.status ?? null);
    })();
  }

  transcript(sessionId: string, limit: number): TranscriptEntry[] {
    if (limit <= 0) return [];
    return this.#q.transcript.all(sessionId, limit).map((r) => ({
      role: r.role,
      content: r.content,
      ...(r.input_id !== null && { inputId: r.input_id }),
      ...(r.status !== null && { status: r.status as 'interrupted' | 'failed' }),
    }));
  }

  delete(sessionId: string): void {
    this.#db.transaction(() => {
      this.#q.deleteTranscript.run(sessionId);
      this.#q.deleteSession.run(sessionId);
      this.#q.deleteInbox.run(sessionId);
      this.#q.deleteEvents.run(sessionId);
    })();
  }

  close(): void {
    if (this.#db.open) this.#db.close();
  }
}

interface Row {
  input_id: string;
  content: string;
  metadata: string | null;
}

function entry(row: Row): InboxEntry {
  return row.metadata ? { id: row.input_id, content: row.content, metadata: JSON.parse(row.metadata) } : { id: row.input_id, content: row.content };
}

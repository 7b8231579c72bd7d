import type BetterSqlite3 from 'better-sqlite3';

/**
 * Schema migrations, in order; `PRAGMA user_version` says how many have run. Never edit
 * one that has shipped: add the next.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: sessions and the durable inbox.
  `CREATE TABLE sessions (
     id TEXT PRIMARY KEY,
     kind TEXT NOT NULL,
     snapshot TEXT NOT NULL,
     seq INTEGER NOT NULL,
     epoch INTEGER NOT NULL DEFAULT 1,
     updated_at INTEGER NOT NULL
   );
   CREATE TABLE inbox (
     n INTEGER PRIMARY KEY AUTOINCREMENT,
     session_id TEXT NOT NULL,
     input_id TEXT NOT NULL,
     content TEXT NOT NULL,
     metadata TEXT,
     consumed INTEGER NOT NULL DEFAULT 0,
     UNIQUE (session_id, input_id)
   );
   CREATE INDEX inbox_pending ON inbox (session_id, consumed, n);`,
  // 2: outbound events, for resume after a dropped connection.
  `CREATE TABLE events (
     session_id TEXT NOT NULL,
     seq INTEGER NOT NULL,
     type TEXT NOT NULL,
     data TEXT NOT NULL,
     PRIMARY KEY (session_id, seq)
   ) WITHOUT ROWID;`,
  // 3: the transcript, the session's conversation in turn order.
  `CREATE TABLE transcript (
     n INTEGER PRIMARY KEY AUTOINCREMENT,
     session_id TEXT NOT NULL,
     role TEXT NOT NULL,
     content TEXT NOT NULL,
     input_id TEXT,
     status TEXT
   );
   CREATE INDEX transcript_session ON transcript (session_id, n);`,
  // 4: the store's owner (C17): opening the store takes it with epoch + 1, and every write
  // checks that the epoch is still its own.
  `CREATE TABLE owner (
     id INTEGER PRIMARY KEY CHECK (id = 1),
     epoch INTEGER NOT NULL,
     holder TEXT NOT NULL,
     since INTEGER NOT NULL
   );`,
  // 5: the kind's version of each stored snapshot, so a changed machine never meets an old
  // snapshot unprepared.
  `ALTER TABLE sessions ADD COLUMN version INTEGER NOT NULL DEFAULT 1;`,
  // 6: a step's events in one row (its seqs are consecutive): one insert per step, not per
  // event, which was most of what a durable turn cost.
  `CREATE TABLE event_steps (
     session_id TEXT NOT NULL,
     first_seq INTEGER NOT NULL,
     last_seq INTEGER NOT NULL,
     events TEXT NOT NULL,
     PRIMARY KEY (session_id, last_seq)
   ) WITHOUT ROWID;
   INSERT INTO event_steps (session_id, first_seq, last_seq, events)
     SELECT session_id, seq, seq, json_array(json_array(type, json(data))) FROM events;
   DROP TABLE events;`,
  // 7: schedules (C20), one row per schedule, found by due time across sessions.
  `CREATE TABLE schedules (
     session_id TEXT NOT NULL,
     id TEXT NOT NULL,
     due_at INTEGER NOT NULL,
     every_ms INTEGER,
     cron TEXT,
     payload TEXT,
     PRIMARY KEY (session_id, id)
   ) WITHOUT ROWID;
   CREATE INDEX schedules_due ON schedules (due_at);`,
];

/** Runs the migrations a database has not seen yet, each in its own transaction. */
export function migrate(db: BetterSqlite3.Database, upTo = MIGRATIONS.length): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(`the database has schema version ${current}, newer than this Baton (${MIGRATIONS.length}); upgrade Baton`);
  }
  for (let v = current; v < upTo; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}

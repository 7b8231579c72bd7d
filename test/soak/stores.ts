/**
 * The soak gateway's stores: a SQLite store that can fail every write as a full disk does
 * (the store fault), and a PostgreSQL store (a cluster node) that says which epoch wrote
 * which events. Both report on stdout, one line each, for the orchestrator's history.
 */
import Database from 'better-sqlite3';
import { SqliteStore } from '../../src/sqlite.ts';
import { PostgresStore, type PostgresStoreOptions } from '../../src/postgres.ts';
import type { StepRecord } from '../../src/runtime/store.ts';

/**
 * The store fault: while `failing`, every write (a commit, a retention prune) throws what
 * better-sqlite3 throws on a full disk (SQLITE_FULL, "database or disk is full") before
 * touching the file; reads still work, as they do on a full disk.
 */
export class FaultyStore extends SqliteStore {
  failing = false;
  /** Writes refused while failing. */
  refused = 0;
  /** Sessions a failed commit stopped. */
  failedSessions = 0;
  #check(): void {
    if (!this.failing) return;
    this.refused++;
    throw new Database.SqliteError('database or disk is full', 'SQLITE_FULL');
  }
  override commit(steps: readonly StepRecord[]): void {
    if (this.failing) for (const sessionId of new Set(steps.map((step) => step.sessionId))) this.#stopped(sessionId);
    this.#check();
    super.commit(steps);
  }
  override prune(before: number, isLive: (sessionId: string) => boolean): number {
    this.#check();
    return super.prune(before, isLive);
  }
  /**
   * A session whose commit fails is stopped (C16): the orchestrator records it with the last
   * seq the store holds for it, where the re-activation goes on numbering.
   */
  #stopped(session: string): void {
    this.failedSessions++;
    const loaded = this.load(session, { recent: 0, history: 0 });
    const seq = loaded ? Math.max(loaded.session.seq, loaded.lastSeq) : 0;
    process.stdout.write(`FAILED ${JSON.stringify({ session, seq })}\n`);
  }
}

/**
 * A cluster node's store that prints, for every committed step with events, the seqs it
 * wrote and the epoch it wrote them under: `COMMIT {"session","from","to","epoch","inc"}`.
 * The epoch is this node's claim, read before the commit; the commit checks that very epoch
 * in its transaction (C17), so a printed line is what the database accepted. (A session
 * this node holds no claim on can only be created by the commit, at epoch 1.) The line is
 * printed before the commit returns, so before anything of it is published on this node.
 */
export class RecordingPostgresStore extends PostgresStore {
  override async load(sessionId: string, options: Parameters<PostgresStore['load']>[1]) {
    const answer = await super.load(sessionId, options);
    if (process.env.SOAK_DEBUG) process.stderr.write(`DEBUG ${Date.now()} ${this.node.id} load ${sessionId} claim=${options.claim !== false} -> ${answer === undefined ? 'none' : 'ownedBy' in answer ? 'ownedBy ' + answer.ownedBy.id : 'claimed epoch ' + this.claimedEpoch(sessionId) + ' seq ' + answer.lastSeq}\n`);
    return answer;
  }
  constructor(options: PostgresStoreOptions) {
    super(options);
  }

  override async commit(steps: readonly StepRecord[]): Promise<void> {
    const epochs = new Map<string, number>();
    for (const { sessionId } of steps) if (!epochs.has(sessionId)) epochs.set(sessionId, this.claimedEpoch(sessionId) ?? 1);
    const { incarnation } = this.node;
    if (process.env.SOAK_DEBUG) for (const st of steps) process.stderr.write(`DEBUG ${Date.now()} ${this.node.id} commit ${st.sessionId} epoch=${epochs.get(st.sessionId)} release=${!!st.release} events=${st.events.map((e) => e.seq + ':' + e.type).join(',')} accepted=${(st.accepted ?? []).map((a) => a.id)} consumed=${st.consumed} taken=${st.taken ?? ''} snap=${!!st.session}\n`);
    try {
      await super.commit(steps);
    } catch (error) {
      if (process.env.SOAK_DEBUG) process.stderr.write(`DEBUG ${Date.now()} ${this.node.id} FAILED ${steps.map((s) => s.sessionId)} ${(error as Error).message}\n`);
      throw error;
    }
    let lines = '';
    for (const step of steps) {
      if (step.events.length === 0) continue;
      const record = { session: step.sessionId, from: step.events[0]!.seq, to: step.events.at(-1)!.seq, epoch: epochs.get(step.sessionId), inc: incarnation };
      lines += `COMMIT ${JSON.stringify(record)}\n`;
    }
    if (lines) process.stdout.write(lines);
  }
}

import net from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { StepRecord } from '../src/index.ts';
import { PgFixture, pgUrl } from './postgres-helpers.ts';

/**
 * A node stopped (SIGSTOP, a VM pause) inside a group commit, between the two round trips
 * postgres.js makes for a statement it has not prepared on that connection: Parse/Describe/
 * Flush went out, Bind/Execute/Sync never does. The backend waits for the rest of the
 * command (`active`, `ClientRead`) with the sessions' rows locked, and neither
 * `idle_in_transaction_session_timeout` nor `statement_timeout` ends that wait. Found by
 * test/cluster/schedules-stop.test.ts hunting for such a stop: the stopped owner's sessions
 * stayed its own for as long as it was stopped. Here the stalled client is a raw protocol
 * connection that stops at exactly that point.
 */

const step = (sessionId: string, seq: number): StepRecord => ({
  sessionId,
  events: [{ sessionId, seq, type: 'state', data: { state: 'idle' } }],
  consumed: [],
  session: { sessionId, kind: 'agent', snapshot: { seq }, seq },
});

let pg: PgFixture;
let schema: string;
let raw: net.Socket | undefined;
beforeEach(() => {
  pg = new PgFixture();
  schema = pg.schema();
});
afterEach(async () => {
  raw?.destroy();
  raw = undefined;
  await pg.cleanup();
});

/** A PostgreSQL protocol message: type byte (none for the startup message), length, body. */
const message = (type: string | null, body: Buffer): Buffer => {
  const length = Buffer.alloc(4);
  length.writeInt32BE(body.length + 4);
  return Buffer.concat([type === null ? Buffer.alloc(0) : Buffer.from(type), length, body]);
};
const cstring = (s: string): Buffer => Buffer.from(`${s}\0`);

/**
 * A raw connection (trust auth) that locks the session's row in a transaction and then
 * stalls mid-command, as a node stopped inside a commit does. Resolves once the server
 * has answered the Describe: the backend now waits for the rest of the command.
 */
async function stallHoldingRow(sessionId: string): Promise<{ socket: net.Socket; closed: Promise<void> }> {
  const url = new URL(pgUrl());
  const socket = net.connect(Number(url.port || 5432), url.hostname);
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  let received = Buffer.alloc(0);
  const waiters: (() => void)[] = [];
  socket.on('data', (chunk: Buffer) => {
    received = Buffer.concat([received, chunk]);
    waiters.splice(0).forEach((wake) => wake());
  });
  /** Waits for a message of `type` from the server (fails on an ErrorResponse). */
  const until = async (type: string): Promise<void> => {
    for (;;) {
      let at = 0;
      while (at + 5 <= received.length) {
        const t = String.fromCharCode(received[at]!);
        const length = received.readInt32BE(at + 1);
        if (at + 1 + length > received.length) break;
        const body = received.subarray(at + 5, at + 1 + length);
        at += 1 + length;
        if (t === 'E') throw new Error(`the server refused: ${body.toString('latin1')}`);
        if (t === type) {
          received = received.subarray(at);
          return;
        }
      }
      received = received.subarray(at);
      await new Promise<void>((resolve) => waiters.push(resolve));
    }
  };
  const version = Buffer.alloc(4);
  version.writeInt32BE(196608);
  const params = { user: decodeURIComponent(url.username || 'postgres'), database: url.pathname.slice(1), application_name: 'stalled node' };
  socket.write(message(null, Buffer.concat([version, ...Object.entries(params).flatMap(([k, v]) => [cstring(k), cstring(v)]), Buffer.from('\0')])));
  await until('Z');
  socket.write(message('Q', cstring(`BEGIN; SELECT id FROM "${schema}".sessions WHERE id = '${sessionId}' FOR UPDATE`)));
  await until('Z');
  // What postgres.js sends first for a statement it has not prepared on this connection.
  socket.write(Buffer.concat([message('P', Buffer.concat([cstring(''), cstring('SELECT $1::int'), Buffer.from([0, 0])])), message('D', Buffer.concat([Buffer.from('S'), cstring('')])), message('H', Buffer.alloc(0))]));
  await until('t');
  return { socket, closed };
}

describe('C17: a node stopped in the middle of a command of its commit', () => {
  it('C17: a node stalled mid-command inside a transaction that locks a session (PostgreSQL waits on it with no timeout) is ended by the live nodes after a lease TTL — the session is claimed elsewhere instead of waiting for the stalled node forever', async () => {
    const ttl = 1000;
    const a = await pg.node(schema, { nodeId: 'a', leaseTtlMs: 60_000, renewMs: 30_000 });
    await a.store.commit([step('s', 1)]);
    await a.store.leave(); // a leaves: s has no owner now
    await a.store.close();
    const stalled = await stallHoldingRow('s');
    raw = stalled.socket;
    const [held] = await pg.admin<{ state: string; wait_event: string }[]>`SELECT state, wait_event FROM pg_stat_activity WHERE application_name = 'stalled node'`;
    expect(held).toEqual({ state: 'active', wait_event: 'ClientRead' });

    const b = await pg.node(schema, { nodeId: 'b', leaseTtlMs: ttl, renewMs: ttl / 4 });
    const started = Date.now();
    const claim = b.store.load('s', { recent: 0, history: 0, claim: true });
    const outcome = await Promise.race([
      claim.then((loaded) => ({ loaded })),
      new Promise<'stuck'>((resolve) => setTimeout(() => resolve('stuck'), ttl + 5000).unref()),
    ]);
    // Without the fix the claim waits behind the stalled node's row lock for as long as it is stalled.
    expect(outcome, 'b claims s').not.toBe('stuck');
    const { loaded } = outcome as { loaded: Awaited<typeof claim> };
    expect(loaded && 'session' in loaded ? loaded.session.seq : loaded).toBe(1);
    expect(b.store.claimedEpoch('s')).toBeGreaterThan(1);
    // Not before a lease TTL: a client that merely paused for a moment keeps its transaction.
    expect(Date.now() - started).toBeGreaterThanOrEqual(ttl - 200);
    // The stalled backend was ended (its transaction rolled back), not merely waited out.
    await stalled.closed;
    expect(await pg.admin`SELECT pid FROM pg_stat_activity WHERE application_name = 'stalled node'`).toEqual([]);
  });
});

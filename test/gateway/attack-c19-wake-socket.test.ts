/**
 * Attack on C19's approval wake (commit 41cf121) over a real socket, with the real CLI and
 * a SQLite file: a permission_request left unanswered on a session that passivates for
 * idleness must end in `tool_result` denied (approval_timeout) and the turn's `done` at
 * about `expires_at`, though the client sends nothing — also across a kill -9.
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Client, type Frame } from './client.ts';
import { serve } from './process.ts';

const dir = mkdtempSync(join(tmpdir(), 'baton-wake-socket-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Long enough that the session passivates (idle 300 ms) well before the deadline on a loaded box.
const APPROVAL_MS = 4000;
const args = (db: string) => ['--store', `sqlite:${db}`, '--demo-delay-ms', '1', '--debounce-ms', '0', '--idle-timeout-ms', '300', '--approval-timeout-ms', String(APPROVAL_MS)];

/** Live sessions of the gateway, from /metrics. */
async function liveSessions(url: string): Promise<number> {
  const text = await (await fetch(url.replace('ws://', 'http://').replace(/\/ws$/, '/metrics'))).text();
  return text.split('\n').filter((l) => l.startsWith('baton_sessions{')).reduce((n, l) => n + Number(l.split(' ').at(-1)), 0);
}

async function waitFor(check: () => Promise<boolean>, label: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${label}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const stop = async (child: import('node:child_process').ChildProcess, signal: NodeJS.Signals = 'SIGTERM') => {
  if (child.exitCode !== null) return;
  const exited = once(child, 'exit');
  child.kill(signal);
  await exited;
};

function outcome(frames: readonly Frame[]) {
  const result = frames.find((f) => f.event.type === 'tool_result');
  const done = frames.find((f) => f.event.type === 'done' && f.event.data.success === true);
  return { result, done };
}

/** Session `w` on the gateway at `url`: it asked for approval and then passivated, well before the deadline. */
async function parkedSession(url: string): Promise<{ client: Client; expiresAt: number }> {
  const { client } = await Client.attach(url, { session_id: 'w' });
  client.send('input', { content: 'tool wake me' });
  const request = await client.type('permission_request');
  const expiresAt = request.event.data.expires_at as number;
  await waitFor(async () => (await liveSessions(url)) === 0, 'the session to passivate');
  expect(Date.now()).toBeLessThan(expiresAt - 500);
  return { client, expiresAt };
}

// Each test has its own gateway process and database, and mostly waits out a deadline: they run side by side.
describe.concurrent('C19 the approval wake over a socket', () => {
  it('C19: a passivated session waiting for a decision is denied at expires_at (approval_timeout) and its turn ends, with nothing sent', async () => {
    const g = await serve(args(join(dir, 'a.db')));
    try {
      const { client, expiresAt } = await parkedSession(g.url);
      const result = await client.type('tool_result');
      const arrived = Date.now();
      expect(result.event.data).toMatchObject({ id: 'call_1_1', status: 'denied', error: { code: 'approval_timeout' } });
      expect(arrived).toBeGreaterThanOrEqual(expiresAt);
      expect(arrived).toBeLessThan(expiresAt + 4000);
      await client.until((f) => f.event.type === 'done' && f.event.data.success === true);
      expect(client.frames.filter((f) => f.event.type === 'error')).toEqual([]);
      await client.close();
    } finally {
      await stop(g.child);
    }
  });

  it('C19: a client can neither set, see nor cancel the wake: schedule baton:wake / baton:x are refused, schedule_cancel baton:wake finds nothing, and the denial still comes at expires_at', async () => {
    const g = await serve(args(join(dir, 'spoof.db')));
    try {
      const { client, expiresAt } = await parkedSession(g.url);
      for (const id of ['baton:wake', 'baton:x']) {
        const frame = client.send('schedule', { id, at: expiresAt + 60_000 });
        const error = await client.seen((f) => f.event.type === 'error' && f.event.data.event_id === frame);
        expect(error.event.data.code).toBe('INVALID_MESSAGE');
      }
      const cancel = client.send('schedule_cancel', { id: 'baton:wake' });
      const ack = await client.seen((f) => f.event.type === 'schedule.ack' && f.event.data.client_message_id === cancel);
      expect(ack.event.data).toEqual({ client_message_id: cancel, id: 'baton:wake', cancelled: false });
      await waitFor(async () => (await liveSessions(g.url)) === 0, 'the session to passivate again');
      expect(Date.now()).toBeLessThan(expiresAt - 500);
      const result = await client.seen((f) => f.event.type === 'tool_result');
      expect(result.event.data).toMatchObject({ id: 'call_1_1', status: 'denied', error: { code: 'approval_timeout' } });
      expect(Date.now()).toBeGreaterThanOrEqual(expiresAt);
      expect(Date.now()).toBeLessThan(expiresAt + 4000);
      await client.close();
    } finally {
      await stop(g.child);
    }
  });

  it('C19: passivated, then kill -9, restarted before the deadline: denied at expires_at to a client that only reattached', async () => {
    const db = join(dir, 'b.db');
    const first = await serve(args(db));
    const { client, expiresAt } = await parkedSession(first.url);
    await stop(first.child, 'SIGKILL');
    await client.closed;
    const second = await serve(args(db));
    try {
      const lastSeen = Math.max(...client.frames.map((f) => f.seq));
      const later = await Client.attach(second.url, { session_id: 'w', last_seq: lastSeen });
      await waitFor(async () => (await liveSessions(second.url)) === 0, 'the session to be passivated again');
      expect(Date.now()).toBeLessThan(expiresAt - 500);
      const result = await later.client.type('tool_result');
      const arrived = Date.now();
      expect(result.event.data).toMatchObject({ id: 'call_1_1', status: 'denied', error: { code: 'approval_timeout' } });
      expect(arrived).toBeGreaterThanOrEqual(expiresAt);
      expect(arrived).toBeLessThan(expiresAt + 4000);
      await later.client.until((f) => f.event.type === 'done' && f.event.data.success === true);
      const frames = [...client.frames, ...later.client.frames].filter((f) => f.seq > 0);
      const seqs = frames.map((f) => f.seq);
      expect(seqs).toEqual(seqs.map((_, i) => i + 1));
      await later.client.close();
    } finally {
      await stop(second.child);
    }
  });

  it('C19: passivated, kill -9, restarted after the deadline: denied at once, the turn ends', async () => {
    const db = join(dir, 'c.db');
    const first = await serve(args(db));
    const { client, expiresAt } = await parkedSession(first.url);
    await stop(first.child, 'SIGKILL');
    await client.closed;
    await new Promise((r) => setTimeout(r, expiresAt + 200 - Date.now()));
    const second = await serve(args(db));
    try {
      const started = Date.now();
      const later = await Client.attach(second.url, { session_id: 'w', last_seq: 0 });
      await later.client.until((f) => f.event.type === 'done' && f.event.data.success === true);
      const { result } = outcome(later.client.frames);
      expect(result?.event.data).toMatchObject({ id: 'call_1_1', status: 'denied', error: { code: 'approval_timeout' } });
      expect(result!.timestamp).toBeLessThan(started + 1000);
      await later.client.close();
    } finally {
      await stop(second.child);
    }
  });
});

import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Client } from './client.ts';
import { serve } from './process.ts';

const dir = mkdtempSync(join(tmpdir(), 'baton-approval-crash-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('C19 a pending approval survives SIGKILL of the gateway process', () => {
  it('C19: after kill -9 and a restart, the decision completes the turn: one result for the call, none asked twice', async () => {
    const db = join(dir, `approval-${process.pid}-${Date.now()}.db`);
    const args = ['--store', `sqlite:${db}`, '--demo-delay-ms', '1', '--debounce-ms', '0'];
    const first = await serve(args);
    const a = await Client.attach(first.url, { session_id: 'approval' });
    const inputId = a.client.send('input', { content: 'tool survive this' });
    const request = await a.client.type('permission_request');
    expect(request.event.data).toMatchObject({ id: 'call_1_1', tool_name: 'echo_upper' });
    const killed = once(first.child, 'exit');
    first.child.kill('SIGKILL');
    await killed;
    await a.client.closed;

    const second = await serve(args);
    try {
      const lastSeen = Math.max(...a.client.frames.map((f) => f.seq));
      const b = await Client.attach(second.url, { session_id: 'approval', last_seq: lastSeen });
      b.client.send('permission_response', { id: 'call_1_1', allowed: true });
      const result = await b.client.type('tool_result');
      expect(result.event.data).toEqual({ id: 'call_1_1', status: 'ok', output: 'SURVIVE THIS' });
      const done = await b.client.until((f) => f.event.type === 'done' && f.event.data.success === true);
      expect(done.event.data.input_ids).toEqual([inputId]);
      await b.client.sync();
      const frames = [...a.client.frames, ...b.client.frames].filter((f) => f.seq > 0);
      const of = (type: string) => frames.filter((f) => f.event.type === type && f.event.data.id === 'call_1_1');
      expect(of('tool_call')).toHaveLength(1);
      expect(of('permission_request')).toHaveLength(1); // asked once, answered after the restart
      expect(of('tool_result')).toHaveLength(1);
      expect(b.client.frames.filter((f) => f.event.type === 'error')).toEqual([]);
      const seqs = frames.map((f) => f.seq);
      expect(seqs).toEqual(seqs.map((_, i) => i + 1));
      await b.client.close();
    } finally {
      const exited = once(second.child, 'exit');
      second.child.kill('SIGTERM');
      expect((await exited)[0]).toBe(0);
    }
  });
});

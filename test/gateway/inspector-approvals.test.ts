/**
 * The inspector lists the tool calls a session waits on (C19): id, tool and deadline, live
 * or passivated, gone once decided; and the page escapes what the agent chose to call them.
 */
import { get, type IncomingMessage } from 'node:http';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { demoAgent } from '../../src/index.ts';
import { pendingApprovals } from '../../src/gateway/inspector/approvals.ts';
import type { SessionEntry } from '../../src/gateway/inspector/inspector.ts';
import { INSPECTOR_PAGE } from '../../src/gateway/inspector/page.ts';
import { settle, testRuntime } from '../helpers.ts';
import { Client, gatewayPerTest } from './client.ts';

const gateway = gatewayPerTest();

/** `/inspect/events` read as it comes: `row` resolves with the next row of a session that matches. */
async function inspectorStream(http: string) {
  // node:http rather than fetch: destroying the request closes its socket at once, so the
  // gateway's close does not wait for a pooled connection.
  const res = await new Promise<IncomingMessage>((resolve, reject) => get(`${http}/inspect/events`, resolve).on('error', reject));
  res.setEncoding('utf8');
  const chunks = res[Symbol.asyncIterator]() as AsyncIterator<string>;
  let buffer = '';
  return {
    async row(id: string, match: (row: SessionEntry) => boolean = () => true): Promise<SessionEntry> {
      for (;;) {
        for (let end = buffer.indexOf('\n\n'); end !== -1; end = buffer.indexOf('\n\n')) {
          const message = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (!message.startsWith('event: sessions\n')) continue;
          const rows = JSON.parse(message.slice(message.indexOf('data: ') + 'data: '.length)) as SessionEntry[];
          const found = rows.find((row) => row.id === id && match(row));
          if (found) return found;
        }
        const { value, done } = await chunks.next();
        if (done) throw new Error(`the stream ended before a row of ${id}`);
        buffer += value;
      }
    },
    close: () => res.destroy(),
  };
}

describe('inspector: next schedule (C20)', () => {
  it('C20: a session with schedules shows when the earliest is due; none once cancelled', async () => {
    const { url, http, runtime } = await gateway();
    const { client } = await Client.attach(url, { session_id: 'sched' });
    const { dueAt } = await runtime.schedule('sched', { id: 'later', afterMs: 3_600_000 });
    await runtime.schedule('sched', { id: 'much-later', afterMs: 7_200_000 });
    const stream = await inspectorStream(http);
    try {
      expect((await stream.row('sched')).nextDue).toBe(dueAt);
      await runtime.cancelSchedule('sched', 'later');
      await runtime.cancelSchedule('sched', 'much-later');
      client.send('input', { content: 'poke' }); // a change of the session: its row is sent again
      expect((await stream.row('sched', (row) => row.nextDue === null)).nextDue).toBeNull();
    } finally {
      stream.close();
      await client.close();
    }
  });
});

describe('inspector: pending approvals (C19)', () => {
  it('C19: a session waiting for the user lists the call with its tool and deadline; once decided it lists none', async () => {
    const { url, http } = await gateway();
    const { client } = await Client.attach(url, { session_id: 'waits' });
    client.send('input', { content: 'tool hi' });
    const request = await client.type('permission_request');
    const stream = await inspectorStream(http);
    try {
      const waiting = await stream.row('waits'); // the listing a new reader starts with
      expect(waiting.approvals).toEqual([{ id: 'call_1_1', tool: 'echo_upper', expiresAt: request.event.data.expires_at }]);
      client.send('permission_response', { id: 'call_1_1', allowed: true });
      await client.type('done');
      const done = await stream.row('waits', (row) => row.state === 'idle');
      expect(done.approvals).toEqual([]);
    } finally {
      stream.close();
      await client.close();
    }
  });

  it('C19: a passivated session waiting for the user still lists the call (read from its stored events)', async () => {
    const t = testRuntime({ agent: demoAgent({ delayMs: 0 }), debounceMs: 0, idleTimeoutMs: 60_000 });
    await t.runtime.send('s', { id: 'm1', content: 'tool hi' });
    await settle();
    const request = t.of('s').find((e) => e.type === 'permission_request')!.data as { expires_at: number };
    await t.advance(60_000);
    await t.advance(30_000);
    expect(t.runtime.sessionIds()).toEqual([]);
    expect(await pendingApprovals(t.runtime, 's')).toEqual([{ id: 'call_1_1', tool: 'echo_upper', expiresAt: request.expires_at }]);
    expect(await t.runtime.decide('s', { id: 'call_1_1', allowed: false })).toEqual({ status: 'accepted' });
    await settle();
    expect(await pendingApprovals(t.runtime, 's')).toEqual([]);
    await t.runtime.shutdown({ drainMs: 0 });
  });

  it('the page escapes the call id and tool name it shows (they are the agent’s text)', () => {
    // The page's own functions, run as the browser runs them: esc() and approval().
    const script = /<script>([\s\S]*?)<\/script>/.exec(INSPECTOR_PAGE)![1]!;
    const esc = /^const esc = .*$/m.exec(script)![0];
    const approval = /^function approval\(a\) \{[\s\S]*?\n\}$/m.exec(script)![0];
    const source = `${esc}\n${approval}`;
    const html = runInNewContext(`${source}; approval({ id: 'c"1<x>', tool: '<img src=x onerror=alert(1)>', expiresAt: 0 })`) as string;
    expect(html).not.toMatch(/<img|<x>/);
    expect(html).toContain('data-call="c&quot;1&lt;x&gt;"');
    expect(html).toContain('&lt;img src=x onerror=alert(1)&gt;');
    expect(runInNewContext(`${source}; approval({ id: 'a', tool: null, expiresAt: null })`)).toContain('<b>?</b> <span class="muted">until ?</span>');
  });
});

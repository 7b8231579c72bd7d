/**
 * "A resume never claims `complete` over a gap" (C16, issue 15). A client that resumes with a
 * `last_seq` above anything the session now has — its session was deleted and the id used
 * again (PROTOCOL: allowed), or retention pruned it — is answered `resume.complete: true`
 * (`attach.ts`: `lastSeq >= attachedAt` counts as complete) and then gets events numbered
 * from 1 again, all at or below the `last_seq` it just said it had seen: exactly the issue's
 * "had seen seq 57, got init_ack.seq = 11, resume {complete: true}" symptom. The server knows
 * better (its latest seq is below `last_seq`) and could say `complete: false`.
 */
import { describe, expect, it } from 'vitest';
import { SqliteStore } from '../src/sqlite.ts';
import { Client, gatewayPerTest } from './gateway/client.ts';

const gateway = gatewayPerTest();

describe('resume over a real socket when last_seq is ahead of the session', () => {
  it('does not claim complete when the client has seen seqs the session does not have', async () => {
    const { url } = await gateway({ runtime: { store: new SqliteStore(':memory:') } });
    const a = await Client.attach(url, { session_id: 'z' });
    a.client.send('input', { content: 'hello there' }, 'm1');
    await a.client.until((f) => f.event.type === 'done');
    const seen = Math.max(...a.client.frames.map((f) => f.seq));
    a.client.send('control', { action: 'delete' });
    await a.client.closed;

    const b = await Client.attach(url, { session_id: 'z', last_seq: seen });
    const { seq, resume } = b.ack.event.data as { seq: number; resume: { from: number; complete: boolean } };
    expect(seq).toBeLessThan(seen); // the session (a new one) is behind what the client saw…
    expect(resume.complete).not.toBe(true); // …so the resume is not complete
    await b.client.close();
  });
});

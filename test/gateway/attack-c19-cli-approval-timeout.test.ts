/**
 * Attack on C19 from a newcomer's seat: `approvalTimeoutMs` is a runtime option (default
 * 5 minutes) documented with the approvals, but `baton serve` has no flag for it —
 * `--approval-timeout-ms` is "Unknown option" (exit 2). Whoever runs the ready gateway
 * (`npx baton-runtime serve`) cannot shorten or lengthen the deadline, nor try the
 * documented timeout path, without writing their own server.
 */
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { Client } from './client.ts';
import { serve } from './process.ts';

describe('C19 attack: the CLI and the approval deadline', () => {
  it('C19: baton serve --approval-timeout-ms sets the deadline of a permission_request', async () => {
    const server = await serve(['--store', 'memory', '--demo-delay-ms', '0', '--debounce-ms', '0', '--approval-timeout-ms', '200']);
    try {
      const { client } = await Client.attach(server.url, { session_id: 'deadline' });
      client.send('input', { content: 'tool wait' });
      const request = await client.type('permission_request');
      expect(request.event.data.expires_at).toBeLessThan(Date.now() + 1000);
      const result = await client.type('tool_result');
      expect(result.event.data).toMatchObject({ status: 'denied', error: { code: 'approval_timeout' } });
      await client.close();
    } finally {
      server.child.kill('SIGTERM');
      await once(server.child, 'exit');
    }
  });
});

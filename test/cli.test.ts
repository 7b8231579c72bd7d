/**
 * The CLI's exits, over the real bin: a usage error prints the usage and exits 2; a runtime
 * failure prints one line (what failed, what to do) and exits 1, with no usage and no stack.
 */
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Client } from './gateway/client.ts';
import { serve } from './gateway/process.ts';

const bin = fileURLToPath(new URL('../bin/baton.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'baton-cli-'));

function baton(...args: string[]) {
  const env = { ...process.env, OPENAI_API_KEY: '', OPENAI_BASE_URL: '', BATON_STORE: '', PORT: '' };
  const result = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', cwd: dir, env, timeout: 20_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** One line on stderr, nothing else: no usage, no stack. */
function expectOneLine(stderr: string, pattern: RegExp): void {
  const lines = stderr.trimEnd().split('\n');
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^baton: /);
  expect(lines[0]).toMatch(pattern);
}

describe('CLI usage errors exit 2 with the usage (C15)', () => {
  it.each([
    [['bogus'], /unknown command "bogus"/],
    [['serve', '--nope'], /Unknown option '--nope'/],
    [['serve', '--port', 'abc'], /--port must be an integer from 0 to 65535, got "abc"/],
    [['serve', '--busy-policy', 'sometimes'], /--busy-policy must be one of collect/],
    [['serve', '--store', 'postgres'], /--store must be "memory", "sqlite:PATH" or "postgres:\/\/…"/],
    [['serve', '--store', 'memory', '--node-id', 'a'], /--node-id names a cluster node: it needs --store postgres/],
    [['serve', '--store', 'memory', '--lease-ttl-ms', '1000'], /--lease-ttl-ms is a cluster option: it needs --store postgres/],
    [['serve', '--store', 'postgres://u@127.0.0.1/db', '--lease-ttl-ms', '50'], /--lease-ttl-ms must be an integer from 100 to 600000, got "50"/],
    [['serve', '--store', 'sqlite:x.db', '--cluster-sweep-ms', '100'], /--cluster-sweep-ms is a cluster option/],
    [['serve', '--store', 'postgres://u@127.0.0.1/db?schema=No-Way'], /the schema parameter of --store must be a lower-case identifier/],
    [['serve', '--agent', 'openai'], /--agent openai needs --model/],
    [['serve', '--store', 'memory', '--port', '99999'], /--port must be an integer from 0 to 65535, got "99999"/],
    [['serve', '--store', 'memory', '--idle-timeout-ms', '0'], /--idle-timeout-ms must be an integer of at least 1/],
    // C18: an empty token is an error, never "no authentication".
    [['serve', '--store', 'memory', '--token', ''], /--token is empty/],
    [['serve', '--store', 'memory', '--jwt-secret', 'short'], /--jwt-secret must be at least 32 characters/],
    [['serve', '--store', 'memory', '--jwt-public-key', 'missing.pem'], /--jwt-public-key missing.pem: not a readable PEM/],
    // Safe defaults: a non-loopback address without authentication is refused unless --insecure says so.
    [['serve', '--store', 'memory', '--host', '0.0.0.0'], /--host 0\.0\.0\.0 is reachable from other machines: set --token, --jwt-secret or --jwt-public-key, or pass --insecure/],
    [['serve', '--store', 'memory', '--host', '::'], /--host :: is reachable from other machines/],
    [['serve', '--store', 'memory', '--handshake-timeout-ms', '60000'], /--handshake-timeout-ms must be an integer from 1 to 30000, got "60000"/],
    // C19: a zero deadline would deny every call before the user could see it.
    [['serve', '--store', 'memory', '--approval-timeout-ms', '0'], /--approval-timeout-ms must be an integer of at least 1, got "0"/],
    [['serve', '--store', 'memory', '--approval-timeout-ms', '5s'], /--approval-timeout-ms must be an integer of at least 1, got "5s"/],
  ])('baton %j', (args, pattern) => {
    const { code, stderr, stdout } = baton(...args);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr.split('\n')[0]).toMatch(pattern);
    expect(stderr).toContain('Usage: baton-runtime <command> [options]');
  });
});

describe('CLI runtime failures: one line, exit 1', () => {
  it('a port in use', async () => {
    const server = createServer();
    const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
    try {
      const { code, stderr } = baton('serve', '--store', 'memory', '--port', String(port));
      expect(code).toBe(1);
      expectOneLine(stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: the port is in use.*--port`));
    } finally {
      server.close();
    }
  });

  it('an address this machine does not have', () => {
    const { code, stderr } = baton('serve', '--store', 'memory', '--port', '0', '--host', '192.0.2.1', '--token', 't');
    expect(code).toBe(1);
    expectOneLine(stderr, /no such address on this machine; check --host/);
  });

  it('a file that is not a database', () => {
    writeFileSync(join(dir, 'garbage.db'), 'this is not SQLite, just text long enough to be read as a header'.repeat(20));
    const { code, stderr } = baton('serve', '--port', '0', '--store', 'sqlite:garbage.db');
    expect(code).toBe(1);
    expectOneLine(stderr, /cannot open the store sqlite:garbage\.db: file is not a database/);
  });

  it('a store path that cannot be created', () => {
    writeFileSync(join(dir, 'a-file'), '');
    const { code, stderr } = baton('serve', '--port', '0', '--store', 'sqlite:a-file/inside/baton.db');
    expect(code).toBe(1);
    expectOneLine(stderr, /cannot open the store sqlite:a-file\/inside\/baton\.db: .*check that the directory exists and is writable/);
  });

  it('a missing API key', () => {
    const { code, stderr } = baton('serve', '--port', '0', '--store', 'memory', '--agent', 'openai', '--model', 'm');
    expect(code).toBe(1);
    expectOneLine(stderr, /needs an API key: set OPENAI_API_KEY/);
  });
});

describe('safe defaults', () => {
  // Nothing is bound beyond loopback: 192.0.2.1 (TEST-NET-1) is no address of this machine, so
  // getting as far as listening on it shows that --insecure lifted the refusal.
  it('--insecure lets a non-loopback --host go without authentication, and warns that it does', () => {
    const { code, stderr } = baton('serve', '--store', 'memory', '--port', '0', '--host', '192.0.2.1', '--insecure');
    expect(code).toBe(1);
    expect(stderr).toMatch(/warning: --insecure: 192\.0\.2\.1 is served without authentication/);
    expect(stderr).toMatch(/no such address on this machine; check --host/);
  });
});

describe('CLI serve options', () => {
  it('C19: --approval-timeout-ms sets how long a tool call waits for the user: unanswered, it is denied with approval_timeout', async () => {
    const { child, url } = await serve(['--store', 'memory', '--demo-delay-ms', '0', '--debounce-ms', '0', '--approval-timeout-ms', '200']);
    try {
      const { client } = await Client.attach(url);
      client.send('input', { content: 'tool x' });
      const request = await client.type('permission_request');
      // The deadline is the flag's, not the 5-minute default (the frame is stamped after the deadline is set).
      expect(request.event.data.expires_at - request.timestamp).toBeLessThanOrEqual(200);
      const result = await client.type('tool_result');
      expect(result.event.data).toMatchObject({ id: request.event.data.id, status: 'denied', error: { code: 'approval_timeout' } });
      await client.close();
    } finally {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    }
  });
});

describe('CLI', () => {
  it('--version prints the package version', () => {
    const { code, stdout } = baton('--version');
    expect(code).toBe(0);
    expect(stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it.each([['serve', '--help'], ['chat', '-h']])('%s %s prints the usage and exits 0', (...args) => {
    const { code, stdout, stderr } = baton(...args);
    expect(code).toBe(0);
    expect(stderr).toBe('');
    expect(stdout).toContain('Usage: baton-runtime <command> [options]');
  });

  it('help prints the usage and exits 0', () => {
    const { code, stdout } = baton('help');
    expect(code).toBe(0);
    expect(stdout).toContain('npx baton-runtime');
    expect(stdout).not.toMatch(/npx baton </);
  });
});

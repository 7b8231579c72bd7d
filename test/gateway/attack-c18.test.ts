/**
 * Attacks on C18 (principals) and the admission control of issue 17, over real sockets on
 * loopback. Every test here failed when it was written (a helper's attack on the change):
 * each is a finding, fixed since.
 */
import { connect, type Socket } from 'node:net';
import { request } from 'node:http';
import WebSocket from 'ws';
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { SECRET, tokenFor } from './jwt.ts';
import { Client, gatewayPerTest, type Frame } from './client.ts';

const gateway = gatewayPerTest();

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function tcp(port: number, localAddress: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', localAddress }, () => resolve(socket));
    socket.on('error', reject);
  });
}

/** One HTTP request with the headers a browser page on another site (or a DNS-rebound one) sends. */
function httpRequest(port: number, method: string, path: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      let body = '';
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('C18 attacks: principals', () => {
  it('C18: a principal whose id needs escaping (a non-ASCII sub) can open a session with a 512-character id', async () => {
    // The runtime's maxSessionIdLength (1024) is documented to fit "a principal's key (its id,
    // /, a 512-character session id)"; an id is up to 256 characters, but escaped it is up to 9x longer.
    const { url } = await gateway({ gateway: { jwt: { secret: SECRET } } });
    const { client, ack } = await Client.attach(url, { auth: { token: await tokenFor('é'.repeat(100)) }, session_id: 'x'.repeat(512) });
    expect(ack.event.data.code).toBeUndefined();
    await client.close();
    // A 200-character CJK sub cannot open even a short session id.
    const cjk = await Client.attach(url, { auth: { token: await tokenFor('日'.repeat(200)) }, session_id: 'chat' });
    expect(cjk.ack.event.data.code).toBeUndefined();
    await cjk.client.close();
  });

  it('C18: two principals never share a namespace: a principal id holding a lone surrogate (no UTF-8 form; escaped it would be U+FFFD\'s) is refused by name', async () => {
    // A JWT cannot carry one (its JSON is UTF-8: jose signs '\uD800' as U+FFFD, the same
    // principal as '\uFFFD'), but an embedder's authenticate hook can return any string.
    const authenticate = async (token: string) => ({ id: token === 'lone' ? '\uD800' : '\uFFFD', scopes: [] });
    const logged: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void logged.push(line) });
    const { url } = await gateway({ gateway: { authenticate, logger } });
    const replacement = await Client.attach(url, { auth: { token: 'replacement' }, session_id: 'chat' });
    expect(replacement.ack.event.data.code).toBeUndefined();
    const surrogate = await Client.attach(url, { auth: { token: 'lone' }, session_id: 'chat' });
    expect(surrogate.ack.event.data).toMatchObject({ code: 'UNAUTHORIZED' });
    // Refused as a principal, not later by an ownership check that decoded its namespace to another id.
    expect(logged.some((line) => line.includes('handshake refused') && line.includes('lone surrogate'))).toBe(true);
    await replacement.client.close();
    await surrogate.client.close();
  });

  it('C18: an inspector event stream opened with a token is closed when that token expires', async () => {
    const { http } = await gateway({ gateway: { jwt: { secret: SECRET } } });
    // Valid for 2–3 s (exp is in whole seconds): time to open the stream on a loaded machine.
    const token = await tokenFor('root', { ttl: 3, scope: 'admin' });
    const expiresAt = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).exp * 1000;
    const abort = new AbortController();
    const res = await fetch(`${http}/inspect/events`, { headers: { authorization: `Bearer ${token}` }, signal: abort.signal });
    expect(res.status).toBe(200);
    let ended = false;
    const reader = res.body!.getReader();
    void (async () => {
      for (;;) if ((await reader.read()).done) return;
    })()
      .catch(() => {})
      .finally(() => (ended = true));
    // A WebSocket of this principal is closed at exp (UNAUTHORIZED, 1008); the stream of every session is not.
    await sleep(expiresAt - Date.now() + 1500);
    const stillStreaming = !ended;
    abort.abort();
    expect(stillStreaming).toBe(false);
  });
});

describe('C18 attacks: a web page in the local user’s browser, gateway without authentication (the default)', () => {
  it('C18: a WebSocket from another web origin cannot attach to and replay a session (cross-site WebSocket hijacking)', async () => {
    const { url } = await gateway();
    const { client } = await Client.attach(url, { session_id: 'chat' });
    client.send('input', { content: 'my bank pin is 1234' });
    await client.type('done');
    // What a page on https://evil.example runs: new WebSocket('ws://127.0.0.1:<port>/ws').
    const ws = new WebSocket(url, { origin: 'https://evil.example' });
    const frames: Frame[] = [];
    await new Promise<void>((resolve) => {
      ws.once('unexpected-response', () => resolve());
      ws.once('error', () => resolve());
      ws.once('close', () => resolve());
      ws.once('open', () => ws.send(JSON.stringify({ version: 'aep/v1', id: 'i1', event: { type: 'init', data: { version: 'aep/v1', session_id: 'chat', last_seq: 0 } } })));
      ws.on('message', (raw) => {
        frames.push(JSON.parse(raw.toString()) as Frame);
        if (frames.some((f) => f.event.type === 'done')) resolve();
      });
      setTimeout(resolve, 2000);
    });
    ws.terminate();
    const leaked = frames.filter((f) => f.event.type === 'message.delta').map((f) => String(f.event.data.content)).join('');
    expect(leaked).not.toContain('1234');
    expect(frames.some((f) => f.event.type === 'init_ack' && f.event.data.code === undefined)).toBe(false);
    await client.close();
  });

  it('C18: another web origin cannot terminate a session with a simple cross-site POST to the admin API (CSRF)', async () => {
    const { url, port, runtime } = await gateway();
    const { client } = await Client.attach(url, { session_id: 'chat' });
    // fetch('http://127.0.0.1:<port>/admin/sessions/chat/terminate', { method: 'POST', mode: 'no-cors' }):
    // a "simple" request, sent without a preflight; no credential is needed without authentication.
    const res = await httpRequest(port, 'POST', '/admin/sessions/chat/terminate', { origin: 'https://evil.example', 'content-type': 'text/plain' });
    expect(res.status).not.toBe(200);
    expect((await runtime.status('chat'))?.state).not.toBe('terminated');
    await client.close();
  });

  it('C18: a DNS-rebound request (Host: evil.example) does not reach the admin API', async () => {
    const { url, port } = await gateway();
    const { client } = await Client.attach(url, { session_id: 'chat' });
    // evil.example rebinds to 127.0.0.1: the page's own origin, so it reads the answer.
    const res = await httpRequest(port, 'GET', '/admin/sessions', { host: `evil.example:${port}`, origin: `http://evil.example:${port}` });
    expect(res.status).not.toBe(200);
    expect(res.body).not.toContain('"chat"');
    await client.close();
  });
});

describe('C15 attacks: admission', () => {
  it('C15: sockets of one address that hold a plain HTTP request open (a slow body) still count against maxConnectionsPerAddress', async () => {
    const cap = 4;
    const { port } = await gateway({ gateway: { maxConnectionsPerAddress: cap, maxHandshakesPerAddress: cap, handshakeTimeoutMs: 500 } });
    const sockets: Socket[] = [];
    try {
      for (let i = 0; i < 10 * cap; i++) {
        const socket = await tcp(port, '127.0.0.2').catch(() => undefined);
        if (!socket) continue;
        socket.on('error', () => {});
        socket.resume();
        // Headers complete (the request is "plain HTTP" and stops counting), then a body that never ends.
        socket.write('POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000\r\n\r\nabc');
        sockets.push(socket);
      }
      // Well past the handshake deadline: whatever is still open is held by this one address.
      await sleep(2000);
      const open = sockets.filter((s) => !s.destroyed && !s.readableEnded).length;
      expect(open).toBeLessThanOrEqual(cap);
    } finally {
      sockets.forEach((s) => s.destroy());
    }
  });
});

import { describe, expect, it } from 'vitest';
import { Client, gatewayPerTest } from './client.ts';

const gateway = gatewayPerTest();

/** A handshake that must fail: init_ack{state:'deleted', code} first, then close 1008. */
async function refused(client: Client, code: string) {
  const ack = await client.type('init_ack');
  expect(client.frames[0]).toBe(ack);
  expect(ack.event.data).toMatchObject({ state: 'deleted', code, error: expect.any(String) });
  expect(ack.seq).toBe(0);
  expect(await client.closed).toEqual({ code: 1008, reason: code });
}

describe('handshake (PROTOCOL.md §Handshake, C9)', () => {
  it('answers init with init_ack first, carrying every envelope field and the server caps', async () => {
    const { url } = await gateway();
    const { client, ack } = await Client.attach(url);
    expect(client.frames[0]).toBe(ack);
    expect(ack).toMatchObject({ version: 'aep/v1', seq: 0, priority: 'control', session_id: expect.stringMatching(/^sess_/) });
    expect(ack.id).toEqual(expect.any(String));
    expect(ack.timestamp).toEqual(expect.any(Number));
    expect(ack.event.data).toEqual({
      session_id: ack.session_id,
      state: expect.any(String),
      server_caps: { protocol_version: 'aep/v1', supports_resume: true, supports_delta: true, max_frame_size: 32768 },
      seq: 0,
    });
    // The new session's own first event follows, numbered 1.
    const created = await client.type('state');
    expect(created).toMatchObject({ seq: 1, event: { data: { state: 'created' } } });
    await client.close();
  });

  it('attaches to a named session, creating it if it does not exist', async () => {
    const { url } = await gateway();
    const first = await Client.attach(url, { session_id: 'team-7' });
    expect(first.ack.event.data.session_id).toBe('team-7');
    const second = await Client.attach(url, { session_id: 'team-7' });
    expect(second.ack.event.data).toMatchObject({ session_id: 'team-7', seq: 2, state: 'idle' });
    await first.client.close();
    await second.client.close();
  });

  it('refuses a first frame that is not init with PROTOCOL_VIOLATION', async () => {
    const { url } = await gateway();
    const client = await Client.connect(url);
    client.send('input', { content: 'hello' });
    await refused(client, 'PROTOCOL_VIOLATION');
  });

  it('refuses bad JSON and bad fields with INVALID_MESSAGE', async () => {
    const { url } = await gateway();
    const notJson = await Client.connect(url);
    notJson.raw('{not json');
    await refused(notJson, 'INVALID_MESSAGE');
    const noId = await Client.connect(url);
    noId.raw(JSON.stringify({ version: 'aep/v1', event: { type: 'init', data: { version: 'aep/v1' } } }));
    await refused(noId, 'INVALID_MESSAGE');
    const badSession = await Client.connect(url);
    badSession.send('init', { version: 'aep/v1', session_id: 'spaces are not allowed' });
    await refused(badSession, 'INVALID_MESSAGE');
    const unknownKind = await Client.connect(url);
    unknownKind.send('init', { version: 'aep/v1', worker_type: 'wizard' });
    await refused(unknownKind, 'INVALID_MESSAGE');
  });

  it('refuses another protocol version with VERSION_MISMATCH', async () => {
    const { url } = await gateway();
    const client = await Client.connect(url);
    client.send('init', { version: 'aep/v2' });
    await refused(client, 'VERSION_MISMATCH');
  });

  it('requires the token when one is configured: AUTH_REQUIRED, UNAUTHORIZED, then success', async () => {
    const { url } = await gateway({ gateway: { token: 's3cret' } });
    const missing = await Client.connect(url);
    missing.send('init', { version: 'aep/v1' });
    await refused(missing, 'AUTH_REQUIRED');
    const wrong = await Client.connect(url);
    wrong.send('init', { version: 'aep/v1', auth: { token: 'guess' } });
    await refused(wrong, 'UNAUTHORIZED');
    const { client, ack } = await Client.attach(url, { auth: { token: 's3cret' } });
    expect(ack.event.data.code).toBeUndefined();
    await client.close();
  });

  it('refuses a connection that sends no init within initTimeoutMs', async () => {
    const { url } = await gateway({ gateway: { initTimeoutMs: 50 } });
    const client = await Client.connect(url);
    await refused(client, 'PROTOCOL_VIOLATION');
  });

  it('refuses a socket past maxConnections with HTTP 503 before the WebSocket handshake, and serves again once one leaves', async () => {
    const { url, gateway: server } = await gateway({ gateway: { maxConnections: 2 } });
    const first = await Client.attach(url);
    const second = await Client.attach(url);
    await expect(Client.connect(url)).rejects.toThrow(/Unexpected server response: 503/);
    await first.client.close();
    while (server.connections() > 1) await new Promise((resolve) => setImmediate(resolve)); // the server saw it leave
    const again = await Client.attach(url);
    expect(again.ack.event.data.code).toBeUndefined();
    await second.client.close();
    await again.client.close();
  });

  it('answers a second init on an open connection with an error and stays open', async () => {
    const { url } = await gateway();
    const { client } = await Client.attach(url);
    const id = client.send('init', { version: 'aep/v1' });
    expect((await client.type('error')).event.data).toEqual({ code: 'PROTOCOL_VIOLATION', message: 'already initialized', event_id: id });
    await client.sync();
    await client.close();
  });

  it('never lets one connection see another session', async () => {
    const { url } = await gateway();
    const a = await Client.attach(url, { session_id: 'a' });
    const b = await Client.attach(url, { session_id: 'b' });
    a.client.send('input', { content: 'for a only' });
    await a.client.type('done');
    await b.client.sync();
    expect(b.client.frames.every((f) => f.session_id === 'b')).toBe(true);
    expect(b.client.frames.some((f) => f.event.type === 'message.delta')).toBe(false);
    await a.client.close();
    await b.client.close();
  });
});

describe('inspector endpoints', () => {
  it('C18: refuse a request without an admin credential, never take one from the URL, and serve it with Bearer or the login cookie', async () => {
    const { http } = await gateway({ gateway: { token: 's3cret' } });
    const login = await fetch(`${http}/inspect`);
    expect(login.status).toBe(401);
    expect(await login.text()).toContain('action="/inspect/login"');
    expect((await fetch(`${http}/inspect/events`)).status).toBe(401);
    // A credential in a URL ends up in access logs: it is not one.
    expect((await fetch(`${http}/inspect?token=s3cret`)).status).toBe(401);
    const page = await fetch(`${http}/inspect`, { headers: { authorization: 'Bearer s3cret' } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<title>Baton inspector</title>');
    const svg = await fetch(`${http}/inspect/machine/agent.svg`, { headers: { authorization: 'Bearer s3cret' } });
    expect(await svg.text()).toContain('session.running.busy');

    const refused = await fetch(`${http}/inspect/login`, { method: 'POST', body: new URLSearchParams({ token: 'guess' }), redirect: 'manual' });
    expect(refused.status).toBe(401);
    const loggedIn = await fetch(`${http}/inspect/login`, { method: 'POST', body: new URLSearchParams({ token: 's3cret' }), redirect: 'manual' });
    expect(loggedIn.status).toBe(303);
    const cookie = loggedIn.headers.get('set-cookie')!;
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).not.toContain('s3cret');
    const withCookie = await fetch(`${http}/inspect`, { headers: { cookie: cookie.split(';')[0]! } });
    expect(withCookie.status).toBe(200);
  });
});

/**
 * C18 principals over real sockets: a principal reaches only its own sessions; nobody can
 * read, write, delete or block another's session, including by creating its id first.
 */
import { describe, expect, it } from 'vitest';
import { SignJWT, exportSPKI, generateKeyPair } from 'jose';
import { SECRET, tokenFor } from './jwt.ts';
import { Client, gatewayPerTest } from './client.ts';
import { ownerOrAdmin, type Authorize } from '../../src/gateway/index.ts';

const gateway = gatewayPerTest();

async function as(url: string, sub: string, init: Record<string, unknown> = {}, scope?: string) {
  return Client.attach(url, { auth: { token: await tokenFor(sub, scope ? { scope } : {}) }, ...init });
}

/** A handshake that must fail: init_ack{state:'deleted', code} first, then close 1008. */
async function refused(attempt: Promise<{ client: Client; ack: { event: { data: Record<string, unknown> } } }>, code: string) {
  const { client, ack } = await attempt;
  expect(ack.event.data).toMatchObject({ state: 'deleted', code });
  expect(await client.closed).toEqual({ code: 1008, reason: code });
  // Nothing of any session reached it.
  expect(client.frames.map((f) => f.event.type)).toEqual(['init_ack']);
}

/** Every reply text a client received, replayed or live. */
const replyText = (client: Client) => client.frames.filter((f) => f.event.type === 'message.delta').map((f) => f.event.data.content as string).join('');

/** One turn: input, then its done; returns the reply text. */
async function turn(client: Client, content: string): Promise<string> {
  client.send('input', { content });
  const deltas: string[] = [];
  for (;;) {
    const frame = await client.until((f) => f.event.type === 'message.delta' || f.event.type === 'done');
    if (frame.event.type === 'done') return deltas.join('');
    deltas.push(frame.event.data.content as string);
  }
}

describe('C18 principals: authentication', () => {
  it('C18: refuses a missing credential (AUTH_REQUIRED), an expired or badly signed token (UNAUTHORIZED)', async () => {
    const { url } = await gateway({ gateway: { jwt: { secret: SECRET } } });
    await refused(Client.attach(url, { session_id: 'chat' }), 'AUTH_REQUIRED');
    await refused(Client.attach(url, { auth: { token: await tokenFor('alice', { ttl: -60 }) } }), 'UNAUTHORIZED');
    const forged = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').sign(new TextEncoder().encode('another-secret-of-at-least-32-characters'));
    await refused(Client.attach(url, { auth: { token: forged } }), 'UNAUTHORIZED');
    // alg "none": unsigned.
    const unsigned = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from('{"sub":"alice"}').toString('base64url')}.`;
    await refused(Client.attach(url, { auth: { token: unsigned } }), 'UNAUTHORIZED');
    const { client, ack } = await as(url, 'alice', { session_id: 'chat' });
    expect(ack.event.data).toMatchObject({ session_id: 'chat' });
    expect(ack.event.data.code).toBeUndefined();
    await client.close();
  });

  it('C18: accepts RS256 tokens with a public key, and refuses an HS256 token signed with that public key (algorithm confusion)', async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256');
    const pem = await exportSPKI(publicKey);
    const { url } = await gateway({ gateway: { jwt: { publicKey: pem } } });
    const good = await new SignJWT({}).setProtectedHeader({ alg: 'RS256' }).setSubject('alice').setExpirationTime('1h').sign(privateKey);
    const { client, ack } = await Client.attach(url, { auth: { token: good } });
    expect(ack.event.data.code).toBeUndefined();
    await client.close();
    const confused = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').sign(new TextEncoder().encode(pem));
    await refused(Client.attach(url, { auth: { token: confused } }), 'UNAUTHORIZED');
  });

  it('C18: closes an open connection with UNAUTHORIZED when its token expires', async () => {
    const { url } = await gateway({ gateway: { jwt: { secret: SECRET } } });
    const { client } = await Client.attach(url, { auth: { token: await tokenFor('alice', { ttl: 1 }) } });
    const error = await client.type('error');
    expect(error.event.data).toMatchObject({ code: 'UNAUTHORIZED' });
    expect(await client.closed).toEqual({ code: 1008, reason: 'UNAUTHORIZED' });
  });

  it('C18: the embedder’s authenticate hook names the principal', async () => {
    const { url } = await gateway({
      gateway: { authenticate: (token) => (token === 'alice-api-key' ? { id: 'alice', scopes: [] } : undefined) },
    });
    await refused(Client.attach(url, { auth: { token: 'guess' } }), 'UNAUTHORIZED');
    const { client, ack } = await Client.attach(url, { auth: { token: 'alice-api-key' }, session_id: 'chat' });
    expect(ack.event.data.session_id).toBe('chat');
    await client.close();
  });
});

describe('C18 principals: one principal cannot reach another’s session', () => {
  it('C18: A cannot attach to or replay B’s session, by its id or its full key', async () => {
    const { url, runtime } = await gateway({ gateway: { jwt: { secret: SECRET } } });
    const bob = await as(url, 'bob', { session_id: 'bob-chat' });
    const secret = await turn(bob.client, 'my bank pin is 1234');
    expect(secret).toContain('1234');
    // By the same id A gets a session of its own, empty: no history of Bob's.
    const mallory = await as(url, 'mallory', { session_id: 'bob-chat', last_seq: 0 });
    expect(mallory.ack.event.data).toMatchObject({ session_id: 'bob-chat', seq: 0 });
    await mallory.client.sync();
    expect(replyText(mallory.client)).not.toContain('1234');
    // Live turns of Bob's do not reach it either.
    await turn(bob.client, 'second secret 5678');
    await mallory.client.sync();
    expect(replyText(mallory.client)).not.toContain('5678');
    expect(mallory.client.frames.some((f) => f.event.type === 'message.delta')).toBe(false);
    await mallory.client.close();
    // By Bob's full key: refused, with or without a replay.
    await refused(as(url, 'mallory', { session_id: 'bob/bob-chat', last_seq: 0 }), 'UNAUTHORIZED');
    await refused(as(url, 'mallory', { session_id: 'bob/bob-chat' }), 'UNAUTHORIZED');
    expect((await runtime.status('bob/bob-chat'))?.turns).toBe(2);
    await bob.client.close();
  });

  it('C18: A cannot send to, stop, terminate or delete B’s session, even where a hook lets it read', async () => {
    // Support staff may read anyone's session; nothing more.
    const authorize: Authorize = (r) => ownerOrAdmin(r) || (r.principal.scopes.includes('support') && (r.action === 'attach' || r.action === 'replay'));
    const { url, runtime } = await gateway({ gateway: { jwt: { secret: SECRET }, authorize } });
    const bob = await as(url, 'bob', { session_id: 'chat' });
    await turn(bob.client, 'hello');
    const support = await as(url, 'sam', { session_id: 'bob/chat', last_seq: 0 }, 'support');
    expect(support.ack.event.data).toMatchObject({ session_id: 'bob/chat', seq: expect.any(Number) });
    for (const [type, data] of [
      ['input', { content: 'injected' }],
      ['input', { content: '/stop' }],
      ['control', { action: 'stop' }],
      ['control', { action: 'terminate' }],
      ['control', { action: 'delete' }],
    ] as const) {
      const id = support.client.send(type, data);
      const error = await support.client.until((f) => f.event.type === 'error' && f.event.data.event_id === id);
      expect(error.event.data.code).toBe('UNAUTHORIZED');
    }
    const status = await runtime.status('bob/chat');
    expect(status).toMatchObject({ turns: 1 });
    expect(status?.state).not.toBe('terminated');
    expect(await turn(bob.client, 'still mine')).toContain('still mine');
    // Reading another's namespace never creates a session there.
    await refused(as(url, 'sam', { session_id: 'bob/not-yet' }, 'support'), 'SESSION_NOT_FOUND');
    expect(await runtime.status('bob/not-yet')).toBeUndefined();
    await support.client.close();
    await bob.client.close();
  });

  it('C18: creating B’s id first squats nothing: B’s session of another kind works, and terminating A’s copy leaves B’s alone', async () => {
    const { url, runtime } = await gateway({ gateway: { jwt: { secret: SECRET } } });
    const squatter = await as(url, 'mallory', { session_id: 'bob-chat', worker_type: 'onboarding' });
    await squatter.client.type('question_request');
    const bob = await as(url, 'bob', { session_id: 'bob-chat', worker_type: 'agent' });
    expect(bob.ack.event.data.code).toBeUndefined();
    expect(await turn(bob.client, 'hi')).toContain('hi');
    squatter.client.send('control', { action: 'terminate' });
    await squatter.client.until((f) => f.event.type === 'state' && f.event.data.state === 'terminated');
    squatter.client.send('control', { action: 'delete' });
    await squatter.client.closed;
    expect(await turn(bob.client, 'still here')).toContain('still here');
    expect((await runtime.status('bob/bob-chat'))?.kind).toBe('agent');
    await bob.client.close();
  });

  it('C18: the static token is an admin that addresses any session by its full key', async () => {
    const { url } = await gateway({ gateway: { jwt: { secret: SECRET }, token: 'dev-token' } });
    const alice = await as(url, 'alice', { session_id: 'chat' });
    await turn(alice.client, 'note for the admin');
    const admin = await Client.attach(url, { auth: { token: 'dev-token' }, session_id: 'alice/chat', last_seq: 0 });
    await admin.client.until((f) => f.event.type === 'done');
    expect(replyText(admin.client)).toContain('note for the admin');
    await admin.client.close();
    await alice.client.close();
  });
});

describe('C18 principals: admin API, inspector and metrics over HTTP', () => {
  it('C18: an admin lists sessions with their owners, reads stats, terminates and deletes; others are refused', async () => {
    const { url, http, runtime } = await gateway({ gateway: { jwt: { secret: SECRET } } });
    const alice = await as(url, 'alice', { session_id: 'chat' });
    await turn(alice.client, 'hello');
    const adminToken = await tokenFor('root', { scope: 'admin' });
    const asAdmin = { authorization: `Bearer ${adminToken}` };

    expect((await fetch(`${http}/admin/sessions`)).status).toBe(401);
    const plain = { authorization: `Bearer ${await tokenFor('alice')}` };
    expect((await fetch(`${http}/admin/sessions`, { headers: plain })).status).toBe(403);
    expect((await fetch(`${http}/admin/sessions/alice%2Fchat/terminate`, { method: 'POST', headers: plain })).status).toBe(403);

    const list = (await (await fetch(`${http}/admin/sessions`, { headers: asAdmin })).json()) as { sessions: { id: string; owner: string; clients: number }[] };
    expect(list.sessions).toContainEqual(expect.objectContaining({ id: 'alice/chat', owner: 'alice', clients: 1 }));
    const stats = (await (await fetch(`${http}/admin/stats`, { headers: asAdmin })).json()) as Record<string, unknown>;
    expect(stats).toMatchObject({ connections: 1, turns: 1 });

    const terminated = await fetch(`${http}/admin/sessions/alice%2Fchat/terminate`, { method: 'POST', headers: asAdmin });
    expect(terminated.status).toBe(200);
    await alice.client.until((f) => f.event.type === 'state' && f.event.data.state === 'terminated');
    expect((await runtime.status('alice/chat'))?.state).toBe('terminated');

    expect((await fetch(`${http}/admin/sessions/alice%2Fchat`, { method: 'DELETE', headers: asAdmin })).status).toBe(200);
    await alice.client.closed;
    expect(await runtime.status('alice/chat')).toBeUndefined();
    expect((await fetch(`${http}/admin/sessions/nobody%2Fchat/terminate`, { method: 'POST', headers: asAdmin })).status).toBe(404);
  });

  it('C18: the inspector and /metrics need a credential when authentication is on', async () => {
    const { http } = await gateway({ gateway: { jwt: { secret: SECRET } } });
    const plain = { authorization: `Bearer ${await tokenFor('alice')}` };
    expect((await fetch(`${http}/inspect/events`, { headers: plain })).status).toBe(403);
    expect((await fetch(`${http}/metrics`)).status).toBe(401);
    expect((await fetch(`${http}/metrics`, { headers: plain })).status).toBe(403);
    const scraper = { authorization: `Bearer ${await tokenFor('prometheus', { scope: 'metrics' })}` };
    const metrics = await fetch(`${http}/metrics`, { headers: scraper });
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain('baton_');
    expect((await fetch(`${http}/healthz`)).status).toBe(200);
  });
});

describe('C18 principals: options', () => {
  it('C18: createGateway refuses an empty token, a short HS256 secret and a jwt with two keys, quoting the option', async () => {
    const { createRuntime, demoAgent } = await import('../../src/index.ts');
    const { createGateway } = await import('../../src/gateway/index.ts');
    const runtime = createRuntime({ agent: demoAgent() });
    expect(() => createGateway({ runtime, token: '' })).toThrow(/option "token" .*must not be empty/);
    expect(() => createGateway({ runtime, jwt: { secret: 'short' } })).toThrow(/option "jwt.secret" .*at least 32 characters/);
    expect(() => createGateway({ runtime, jwt: { secret: SECRET, jwksUrl: 'https://id.example.com/jwks' } })).toThrow(/exactly one of secret, publickey, jwks, jwksurl/i);
    expect(() => createGateway({ runtime, jwt: { publicKey: 'not a pem' } })).toThrow();
    await runtime.shutdown({ drainMs: 0 });
  });
});

describe('C18 quotas', () => {
  it('C18: a principal holds at most maxSessionsPerPrincipal sessions: one more is refused by name (RATE_LIMITED), others and existing sessions are not affected, a deletion frees a place', async () => {
    const { url } = await gateway({ gateway: { jwt: { secret: SECRET }, maxSessionsPerPrincipal: 2 } });
    for (const id of ['a', 'b']) {
      const { client, ack } = await as(url, 'alice', { session_id: id });
      expect(ack.event.data.code).toBeUndefined();
      await client.close();
    }
    await refused(as(url, 'alice', { session_id: 'c' }), 'RATE_LIMITED');
    // Its own sessions still open; another principal's quota is its own.
    const again = await as(url, 'alice', { session_id: 'a' });
    expect(again.ack.event.data.code).toBeUndefined();
    const bob = await as(url, 'bob', { session_id: 'c' });
    expect(bob.ack.event.data.code).toBeUndefined();
    await bob.client.close();
    // Deleting one frees its place.
    again.client.send('control', { action: 'delete' });
    await again.client.closed;
    const third = await as(url, 'alice', { session_id: 'c' });
    expect(third.ack.event.data.code).toBeUndefined();
    await third.client.close();
  });
});

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SignJWT } from 'jose';
import { Client, gatewayPerTest } from './client.ts';
import { ownerOrAdmin } from '../../src/gateway/index.ts';

const gateway = gatewayPerTest();

const KNOWN_CODES = ['INVALID_MESSAGE', 'PROTOCOL_VIOLATION', 'VERSION_MISMATCH', 'SESSION_BUSY', 'RATE_LIMITED', 'SESSION_TERMINATED', 'UNAUTHORIZED'];
const SECRET = 'the-fuzzer-secret-of-at-least-32-characters';
const tokenFor = (sub: string) => new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setExpirationTime('1h').sign(new TextEncoder().encode(SECRET));

describe('C15 bad input over the wire', () => {
  it.each([
    ['non-JSON', 'hello there', 'INVALID_MESSAGE', /not valid JSON/],
    ['a JSON array', '[1,2,3]', 'INVALID_MESSAGE', /bad envelope/],
    ['a missing version', JSON.stringify({ id: 'x', event: { type: 'ping', data: {} } }), 'INVALID_MESSAGE', /version/],
    ['a missing id', JSON.stringify({ version: 'aep/v1', event: { type: 'ping', data: {} } }), 'INVALID_MESSAGE', /id/],
    ['missing data', JSON.stringify({ version: 'aep/v1', id: 'x', event: { type: 'ping' } }), 'INVALID_MESSAGE', /event.data/],
    ['an unknown type', JSON.stringify({ version: 'aep/v1', id: 'x', event: { type: 'teleport', data: {} } }), 'INVALID_MESSAGE', /unknown event type "teleport"/],
    ['input without content', JSON.stringify({ version: 'aep/v1', id: 'x', event: { type: 'input', data: {} } }), 'INVALID_MESSAGE', /content/],
    ['an unknown control', JSON.stringify({ version: 'aep/v1', id: 'x', event: { type: 'control', data: { action: 'explode' } } }), 'INVALID_MESSAGE', /action/],
    ['another version', JSON.stringify({ version: 'aep/v0', id: 'x', event: { type: 'ping', data: {} } }), 'VERSION_MISMATCH', /aep\/v1/],
    ['an unknown command', JSON.stringify({ version: 'aep/v1', id: 'x', event: { type: 'input', data: { content: '/fly' } } }), 'INVALID_MESSAGE', /unknown command/],
  ])('answers %s with a typed error and keeps the connection open', async (_name, text, code, message) => {
    const { url } = await gateway();
    const { client } = await Client.attach(url);
    client.raw(text);
    const error = await client.type('error');
    expect(error.seq).toBe(0);
    expect(error.priority).toBe('control');
    expect(error.event.data.code).toBe(code);
    expect(error.event.data.message).toMatch(message);
    await client.sync();
    await client.close();
  });

  it('answers a binary frame with INVALID_MESSAGE', async () => {
    const { url } = await gateway();
    const { client } = await Client.attach(url);
    client.raw(Buffer.from([1, 2, 3]));
    expect((await client.type('error')).event.data.code).toBe('INVALID_MESSAGE');
    await client.close();
  });

  it('closes a connection that sends a frame over maxFrameBytes with 1009, and serves others', async () => {
    const { url } = await gateway({ gateway: { maxFrameBytes: 1024 } });
    const other = await Client.attach(url);
    const { client } = await Client.attach(url);
    client.send('input', { content: 'x'.repeat(2000) });
    expect((await client.closed).code).toBe(1009);
    other.client.send('input', { content: 'still here' });
    expect((await other.client.type('done')).event.data.success).toBe(true);
    await other.client.close();
  });

  it('closes with 1009 an oversized first frame, before any init', async () => {
    const { url } = await gateway({ gateway: { maxFrameBytes: 1024 } });
    const client = await Client.connect(url);
    client.send('init', { version: 'aep/v1', padding: 'x'.repeat(2000) });
    expect((await client.closed).code).toBe(1009);
    expect(client.frames).toEqual([]); // no init_ack for a frame that was never read
  });

  it('answers a bad frame before closing for an oversized one right behind it (1009)', async () => {
    const { url } = await gateway();
    const { client } = await Client.attach(url);
    // Both in one burst: the server reads them in one go and ws closes on the second at once.
    client.raw(JSON.stringify({ version: 'aep/v1', id: 'bad-1', event: { type: 'input', data: { content: 42 } } }));
    client.raw(JSON.stringify({ version: 'aep/v1', id: 'big-1', event: { type: 'input', data: { content: 'x'.repeat(40_000) } } }));
    expect(await client.closed).toMatchObject({ code: 1009 });
    expect(client.frames.find((f) => f.event.type === 'error')?.event.data).toMatchObject({ code: 'INVALID_MESSAGE', event_id: 'bad-1' });
  });

  it('survives 10,000 random frames from a fuzzer while serving another client, with authentication on (C18)', async () => {
    // Principals authenticated by JWT; terminating is refused, so the fuzz reaches the UNAUTHORIZED path too.
    const authorize = (r: Parameters<typeof ownerOrAdmin>[0]) => ownerOrAdmin(r) && r.action !== 'terminate';
    const { url, gateway: gw } = await gateway({ gateway: { rateLimit: { perSecond: 1e6, burst: 1e6 }, frameBudget: { perSecond: 1e6, burst: 1e6 }, jwt: { secret: SECRET }, authorize } });
    const bystander = await Client.attach(url, { auth: { token: await tokenFor('bystander') } });
    const fuzzer = await Client.attach(url, { auth: { token: await tokenFor('fuzzer') } });
    const field = fc.oneof(fc.string(), fc.integer(), fc.constant(null), fc.boolean(), fc.object({ maxDepth: 1 }));
    const frame = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.json({ maxDepth: 3 }),
      fc.record({
        version: fc.constantFrom('aep/v1', 'aep/v1', 'aep/v0', 7),
        id: fc.oneof(fc.uuid(), fc.constant(''), fc.integer()),
        event: fc.record({
          type: fc.constantFrom('input', 'control', 'ping', 'init', 'question_response', 'teleport', ''),
          data: fc.oneof(
            fc.record({ content: fc.oneof(fc.string({ maxLength: 30 }), fc.constantFrom('/status', '/help', '/nope'), field) }, { requiredKeys: [] }),
            fc.record({ action: fc.oneof(fc.constantFrom('stop', 'terminate'), field) }),
            fc.record({ id: field, answers: field }),
            field,
          ),
        }),
      }).map((envelope) => JSON.stringify(envelope)),
    );
    const frames = fc.sample(frame, { numRuns: 10_000, seed: 42 });
    for (const text of frames) fuzzer.client.raw(text);
    // Frames are handled in order: once this probe is answered, all 10,000 were.
    fuzzer.client.send('input', { content: '/status' }, 'final-probe');
    await fuzzer.client.until((f) => f.event.data.event_id === 'final-probe' || f.event.data.id === 'final-probe:reply');
    const errors = fuzzer.client.frames.filter((f) => f.event.type === 'error');
    expect(errors.length).toBeGreaterThan(1000);
    for (const error of errors) expect(KNOWN_CODES).toContain(error.event.data.code);
    expect(errors.some((e) => e.event.data.code === 'UNAUTHORIZED')).toBe(true);
    // The bystander is unaffected throughout.
    bystander.client.send('input', { content: 'hello' });
    expect((await bystander.client.type('done')).event.data.success).toBe(true);
    expect(gw.connections()).toBe(2);
    await fuzzer.client.close();
    await bystander.client.close();
  }, 60_000);
});

/**
 * The gateway over a runtime that answers a round trip later (a network store): the
 * handshake awaits it, frames sent meanwhile wait in a bounded queue, answers keep frame
 * order, and a connection that goes away mid-handshake leaves nothing behind (C9, C1, C15).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Observable } from 'rxjs';
import { createRuntime, StoreUnavailableError, type Receipt, type Runtime, type SessionEvent, type Turn } from '../../src/index.ts';
import { EventEmitter } from 'node:events';
import { pino } from 'pino';
import type { WebSocket } from 'ws';
import { Connection, END_GRACE_MS, MAX_FRAMES_BEFORE_ACK, MAX_OWED_ANSWERS, PAUSE_OWED_ANSWERS, type ConnectionContext } from '../../src/gateway/connection.ts';
import { GatewayMetrics } from '../../src/gateway/metrics.ts';
import type { GatewayOptions } from '../../src/gateway/index.ts';
import { MAX_HELD_SESSION_FRAMES } from '../../src/gateway/replies.ts';
import { settle } from '../helpers.ts';
import { asyncRuntime, deferred } from './async-runtime.ts';
import { Client, gatewayPerTest, type Frame } from './client.ts';

const gateway = gatewayPerTest();

/** A gateway whose runtime answers asynchronously, its `status` and `open` held by `gate` if given. */
async function asyncGateway(options: { gate?: Promise<void>; gateway?: Partial<Omit<GatewayOptions, 'runtime'>> } = {}) {
  let wrapped!: ReturnType<typeof asyncRuntime>;
  const g = await gateway({
    serve: (runtime: Runtime) => (wrapped = asyncRuntime(runtime, options.gate ? { gate: options.gate } : {})).runtime,
    ...(options.gateway && { gateway: options.gateway }),
  });
  return { ...g, wrapped };
}

/** Unhandled rejections while the test runs (C15: there must be none). */
function unhandledRejections() {
  const seen: unknown[] = [];
  const record = (reason: unknown) => seen.push(reason);
  process.on('unhandledRejection', record);
  afterEach(() => {
    process.off('unhandledRejection', record);
  });
  return seen;
}

/** A socket that hands every frame over at once and records what is sent and how it closes. */
class InstantSocket extends EventEmitter {
  readonly OPEN = 1;
  readyState = 1;
  bufferedAmount = 0;
  readonly sent: { type: string; data: Record<string, unknown> }[] = [];
  closedWith: [number, string] | undefined;
  send(text: string) {
    this.sent.push(JSON.parse(text).event);
  }
  close(code: number, reason: string) {
    this.closedWith ??= [code, reason];
    this.readyState = 3;
  }
  pause() {}
  resume() {}
  terminate() {}
  receive(type: string, data: Record<string, unknown>) {
    this.emit('message', Buffer.from(JSON.stringify({ version: 'aep/v1', id: `c${Math.random()}`, event: { type, data } })), false);
  }
}

function connectionContext(runtime: Runtime): ConnectionContext {
  return {
    runtime,
    authenticate: undefined,
    authorize: () => true,
    maxFrameBytes: 32768,
    initTimeoutMs: 30000,
    maxBufferedBytes: 1 << 20,
    rateLimit: { perSecond: 100, burst: 100 },
    frameBudget: { perSecond: 1e6, burst: 1e6 },
    mayCreateSession: async () => undefined,
    metrics: new GatewayMetrics(runtime),
    logger: pino({ level: 'silent' }),
    closing: () => false,
    overloaded: () => undefined,
    attached: () => undefined,
    detached: () => undefined,
    closed: () => undefined,
  };
}

const index = (frames: Frame[], match: (f: Frame) => boolean) => frames.findIndex(match);
const ackOf = (id: string) => (f: Frame) => f.event.type === 'input.ack' && f.event.data.client_message_id === id;

/** Until the server has seen the socket go. */
async function serverSawClose(server: { connections(): number }) {
  while (server.connections() > 0) await settle();
}

describe('C9 an asynchronous handshake', () => {
  it('C1: an input, a command and an input sent right behind init are handled after init_ack, in order, each input acknowledged', async () => {
    const gate = deferred();
    const { url, wrapped } = await asyncGateway({ gate: gate.promise });
    const client = await Client.connect(url);
    client.send('init', { version: 'aep/v1', session_id: 'behind' });
    client.send('input', { content: 'first' }, 'a');
    client.send('input', { content: '/status' }, 'c');
    client.send('input', { content: 'second' }, 'b');
    await wrapped.called('status');
    await settle(); // the frames are read in the same tick as init; one more turn of the loop for certainty
    expect(wrapped.calls).toEqual(['status']); // the handshake is in flight and nothing was handled yet
    gate.resolve();
    await client.until((f) => f.event.type === 'message' && f.event.data.id === 'c:reply', '/status reply');
    const consumed = () => client.frames.filter((f) => f.event.type === 'done').flatMap((f) => f.event.data.input_ids as string[]);
    while (!['a', 'b'].every((id) => consumed().includes(id))) await client.type('done');

    expect(client.frames[0]!.event.type).toBe('init_ack');
    expect(wrapped.calls.filter((c) => c.startsWith('send'))).toEqual(['send first', 'send /status', 'send second']);
    expect(consumed()).toEqual(['a', 'b']);
    const frames = client.frames;
    expect(index(frames, ackOf('a'))).toBeGreaterThan(0);
    expect(index(frames, ackOf('a'))).toBeLessThan(index(frames, ackOf('b')));
    // The ack of the input comes before the frames of the turn it started.
    expect(index(frames, ackOf('a'))).toBeLessThan(index(frames, (f) => f.event.type === 'state' && f.event.data.state === 'running'));
    expect(frames.filter((f) => f.event.type === 'error')).toEqual([]);
    await client.close();
  });

  it(`C15: a flood of frames during the handshake is refused at ${MAX_FRAMES_BEFORE_ACK} with RATE_LIMITED and 1008, leaving nothing attached`, async () => {
    const gate = deferred();
    const { url, runtime, wrapped, gateway: server } = await asyncGateway({ gate: gate.promise });
    const client = await Client.connect(url);
    client.send('init', { version: 'aep/v1', session_id: 'flood' });
    for (let i = 0; i <= MAX_FRAMES_BEFORE_ACK; i++) client.send('input', { content: `m${i}` }, `m${i}`);
    const ack = await client.type('init_ack');
    expect(client.frames[0]).toBe(ack);
    expect(ack.event.data).toMatchObject({ state: 'deleted', code: 'RATE_LIMITED', error: expect.stringContaining(String(MAX_FRAMES_BEFORE_ACK)) });
    expect(await client.closed).toEqual({ code: 1008, reason: 'RATE_LIMITED' });
    await serverSawClose(server);
    expect(wrapped.subscriptions()).toBe(0);
    gate.resolve();
    await settle();
    await settle();
    expect(wrapped.calls).toEqual(['status']); // the queued frames were dropped, never handled
    expect(runtime.directory.get().context.clients).toBe(0);
  });

  it(`takes exactly ${MAX_FRAMES_BEFORE_ACK} frames during the handshake and answers each after init_ack`, async () => {
    const gate = deferred();
    const { url, wrapped } = await asyncGateway({ gate: gate.promise, gateway: { rateLimit: { perSecond: 1000, burst: 1000 } } });
    const client = await Client.connect(url);
    client.send('init', { version: 'aep/v1', session_id: 'full' });
    const ids = Array.from({ length: MAX_FRAMES_BEFORE_ACK }, (_, i) => client.send('input', { content: `m${i}` }, `m${i}`));
    await wrapped.called('status');
    gate.resolve();
    await client.until(ackOf(ids.at(-1)!), 'the last ack');
    expect(client.frames[0]!.event.data.code).toBeUndefined();
    expect(client.frames.filter((f) => f.event.type === 'input.ack').map((f) => f.event.data.client_message_id)).toEqual(ids);
    await client.close();
  });

  it('C15: a socket closed mid-handshake leaves no subscription, no attached client and no unhandled rejection', async () => {
    const rejections = unhandledRejections();
    const gate = deferred();
    const { url, runtime, wrapped, gateway: server } = await asyncGateway({ gate: gate.promise });
    const client = await Client.connect(url);
    client.send('init', { version: 'aep/v1', session_id: 'gone' });
    client.send('input', { content: 'waits for the attach' });
    await wrapped.called('status');
    expect(wrapped.subscriptions()).toBe(1);
    client.ws.terminate();
    await serverSawClose(server);
    expect(wrapped.subscriptions()).toBe(0);
    // The attach goes on after the socket is gone: it must stop, not attach.
    gate.resolve();
    await settle();
    await settle();
    expect(wrapped.calls).toEqual(['status']);
    expect(wrapped.subscriptions()).toBe(0);
    expect(runtime.directory.get().context.clients).toBe(0);
    expect(rejections).toEqual([]);
  });

  it('C15: a runtime that fails after the socket closed mid-handshake causes no unhandled rejection', async () => {
    const rejections = unhandledRejections();
    const gate = deferred();
    const { url, wrapped, gateway: server } = await asyncGateway({ gate: gate.promise });
    const client = await Client.connect(url);
    client.send('init', { version: 'aep/v1', session_id: 'gone' });
    await wrapped.called('status');
    client.ws.terminate();
    await serverSawClose(server);
    gate.reject(new StoreUnavailableError('gone', new Error('connection reset')));
    await settle();
    await settle();
    expect(wrapped.subscriptions()).toBe(0);
    expect(rejections).toEqual([]);
  });

  it('C16: a store that fails during the attach refuses the handshake with 1013 (retry later) and unsubscribes', async () => {
    const gate = deferred();
    const { url, wrapped } = await asyncGateway({ gate: gate.promise });
    const client = await Client.connect(url);
    client.send('init', { version: 'aep/v1', session_id: 'unlucky' });
    await wrapped.called('status');
    gate.reject(new StoreUnavailableError('unlucky', new Error('connection reset')));
    const ack = await client.type('init_ack');
    expect(ack.event.data).toMatchObject({ state: 'deleted', code: 'INTERNAL_ERROR' });
    expect((await client.closed).code).toBe(1013);
    expect(wrapped.subscriptions()).toBe(0);
  });

  it('refuses an attach the runtime does not finish within initTimeoutMs with 1013, and unsubscribes', async () => {
    const { url, wrapped } = await asyncGateway({ gate: new Promise<void>(() => {}), gateway: { initTimeoutMs: 50 } });
    const client = await Client.connect(url);
    client.send('init', { version: 'aep/v1', session_id: 'stuck' });
    const ack = await client.type('init_ack');
    expect(ack.event.data).toMatchObject({ state: 'deleted', code: 'GATEWAY_OVERLOAD', error: expect.stringMatching(/in time/) });
    expect(await client.closed).toEqual({ code: 1013, reason: 'GATEWAY_OVERLOAD' });
    expect(wrapped.subscriptions()).toBe(0);
  });
});

describe('answers in frame order over an asynchronous runtime', () => {
  it.each([
    ['the runtime itself', undefined],
    ['a runtime answering a round trip later', (runtime: Runtime) => asyncRuntime(runtime).runtime],
  ])('an input.ack comes before the frames of the turn its input started (%s)', async (_name, serve) => {
    const { url } = await gateway(serve ? { serve } : {});
    const { client } = await Client.attach(url);
    client.send('input', { content: 'hello' }, 'm1');
    await client.type('done');
    const frames = client.frames;
    expect(index(frames, ackOf('m1'))).toBeGreaterThan(0);
    expect(index(frames, ackOf('m1'))).toBeLessThan(index(frames, (f) => f.event.type === 'state' && f.event.data.state === 'running'));
    await client.close();
  });

  it('a pong comes after the answers to the frames before it', async () => {
    const { url } = await asyncGateway();
    const { client } = await Client.attach(url);
    const ids = ['a', 'b', 'c'].map((id) => client.send('input', { content: id }, id));
    const rejected = client.send('input', { content: '/nope' });
    await client.sync();
    const pong = index(client.frames, (f) => f.event.type === 'pong');
    for (const id of ids) expect(index(client.frames, ackOf(id))).toBeLessThan(pong);
    expect(index(client.frames, (f) => f.event.type === 'error' && f.event.data.event_id === rejected)).toBeLessThan(pong);
    await client.close();
  });

  it(`C15: a client pipelining faster than the runtime answers is read no further past ${PAUSE_OWED_ANSWERS} owed answers, and loses nothing`, async () => {
    const stall = deferred();
    let stalled = false;
    let stalledCalls = 0;
    const { url } = await gateway({
      // This client pipelines on purpose, past any frame budget: the owed-answers rules are tested, not the budget.
      gateway: { frameBudget: { perSecond: 1e6, burst: 1e6 } },
      serve: (runtime: Runtime) => {
        const inner = asyncRuntime(runtime).runtime;
        const status = (sessionId: string) => {
          if (!stalled) return inner.status(sessionId);
          stalledCalls++;
          return stall.promise.then(() => inner.status(sessionId));
        };
        return { ...inner, status };
      },
    });
    const { client } = await Client.attach(url);
    stalled = true;
    const pings = 3 * PAUSE_OWED_ANSWERS;
    for (let i = 0; i < pings; i++) client.send('ping');
    while (stalledCalls < PAUSE_OWED_ANSWERS) await settle();
    for (let i = 0; i < 20; i++) await settle();
    expect(stalledCalls).toBeLessThan(pings); // the rest wait in TCP buffers, not in the gateway
    stall.resolve();
    for (let i = 0; i < pings; i++) await client.type('pong');
    expect(client.frames.filter((f) => f.event.type === 'error')).toEqual([]);
    expect(client.ws.readyState).toBe(client.ws.OPEN);
    await client.close();
  });

  it(`C15: a frame past ${MAX_OWED_ANSWERS} owed answers closes the connection with RATE_LIMITED and 1008`, async () => {
    // A socket that delivers every frame at once, whatever pause() says: the last line of defence.
    const socket = new InstantSocket();
    const runtime = createRuntime({ agent: async () => {} });
    let stalled = false;
    const status: Runtime['status'] = (sessionId) => (stalled ? new Promise(() => {}) : runtime.status(sessionId));
    new Connection(socket as unknown as WebSocket, connectionContext({ ...runtime, status }));
    socket.receive('init', { version: 'aep/v1', session_id: 's' });
    while (!socket.sent.some((e) => e.type === 'init_ack')) await settle();
    stalled = true;
    for (let i = 0; i <= MAX_OWED_ANSWERS; i++) socket.receive('ping', {});
    await settle();
    expect(socket.closedWith).toEqual([1008, 'RATE_LIMITED']);
    expect(socket.sent.at(-1)).toMatchObject({ type: 'error', data: { code: 'RATE_LIMITED' } });
    await runtime.shutdown({ drainMs: 0 });
  });

  it('C16: when the store fails, the answers still owed go out before error{INTERNAL_ERROR} and the close (1013)', async () => {
    const receipt = deferred<Receipt>();
    const sent = deferred();
    let fail!: (error: unknown) => void;
    const { url } = await gateway({
      serve: (runtime: Runtime) => ({
        ...runtime,
        send: () => {
          sent.resolve();
          return receipt.promise;
        },
        eventsOf: (sessionId: string) =>
          new Observable<SessionEvent>((subscriber) => {
            fail = (error) => subscriber.error(error);
            const inner = runtime.eventsOf(sessionId).subscribe(subscriber);
            return () => inner.unsubscribe();
          }),
      }),
    });
    const { client } = await Client.attach(url, { session_id: 'full-disk' });
    const id = client.send('input', { content: 'lost?' });
    await sent.promise;
    const error = new StoreUnavailableError('full-disk', new Error('disk full'));
    fail(error);
    receipt.resolve({ status: 'rejected', code: error.code, error });
    expect(await client.closed).toEqual({ code: 1013, reason: 'store unavailable' });
    const errors = client.frames.filter((f) => f.event.type === 'error').map((f) => f.event.data);
    expect(errors.map((e) => [e.code, e.event_id])).toEqual([
      ['INTERNAL_ERROR', id],
      ['INTERNAL_ERROR', undefined],
    ]);
  });

  it(`closes a connection whose session went away after ${END_GRACE_MS} ms even if an answer is still owed`, async () => {
    let fail!: (error: unknown) => void;
    const sent = deferred();
    const { url } = await gateway({
      serve: (runtime: Runtime) => ({
        ...runtime,
        send: () => {
          sent.resolve();
          return new Promise<never>(() => {});
        },
        eventsOf: (sessionId: string) =>
          new Observable<SessionEvent>((subscriber) => {
            fail = (error) => subscriber.error(error);
            return runtime.eventsOf(sessionId).subscribe(subscriber);
          }),
      }),
    });
    const { client } = await Client.attach(url);
    client.send('input', { content: 'never answered' });
    await sent.promise;
    const started = Date.now();
    fail(new StoreUnavailableError('x', new Error('disk full')));
    expect(await client.closed).toEqual({ code: 1013, reason: 'store unavailable' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(END_GRACE_MS - 50);
  });

  it(`holds session frames behind an owed answer only up to ${MAX_HELD_SESSION_FRAMES} of them`, async () => {
    let stalled = false;
    const pinged = deferred();
    let emit!: (text: string) => void;
    const agent = (turn: Turn) =>
      new Promise<void>((resolve) => {
        emit = (text) => turn.emit(text);
        turn.signal.addEventListener('abort', () => resolve(), { once: true });
      });
    const stalling = (runtime: Runtime): Runtime => ({
      ...runtime,
      status: (sessionId) => {
        if (!stalled) return runtime.status(sessionId);
        pinged.resolve();
        return new Promise<never>(() => {});
      },
    });
    const { url } = await gateway({ runtime: { agent }, serve: stalling });
    const { client } = await Client.attach(url);
    client.send('input', { content: 'go' });
    await client.type('message.start');
    stalled = true;
    client.send('ping'); // its pong is owed for good: session frames wait behind it
    await pinged.promise;
    const deltas = () => client.frames.filter((f) => f.event.type === 'message.delta').length;
    for (let i = 0; i < MAX_HELD_SESSION_FRAMES; i++) emit(`d${i} `);
    while (deltas() < MAX_HELD_SESSION_FRAMES) await client.type('message.delta');
    expect(deltas()).toBe(MAX_HELD_SESSION_FRAMES);
    expect(client.frames.some((f) => f.event.type === 'pong')).toBe(false);
    await client.close();
  });

  it('C8: resume mid-turn replays what the client missed: nothing missed, nothing repeated', async () => {
    const { url } = await asyncGateway();
    const words = Array.from({ length: 40 }, (_, i) => `w${i}`).join(' ');
    const first = await Client.attach(url, { session_id: 'r' });
    first.client.send('input', { content: words });
    await first.client.until((f) => f.event.type === 'message.delta' && f.seq >= 8);
    first.client.ws.terminate();
    const lastSeen = Math.max(...first.client.frames.map((f) => f.seq));
    const second = await Client.attach(url, { session_id: 'r', last_seq: lastSeen });
    expect(second.client.frames[0]).toBe(second.ack);
    expect(second.ack.event.data).toMatchObject({ resume: { from: lastSeen, complete: true } });
    await second.client.type('done');
    const seen = [...first.client.frames, ...second.client.frames].filter((f) => f.seq > 0).map((f) => f.seq);
    expect(seen).toEqual(seen.map((_, i) => i + 1));
    await second.client.close();
  });

  it('C9: a client attaching mid-turn gets init_ack first, then every later event once, without a gap', async () => {
    const { url } = await asyncGateway();
    const a = await Client.attach(url, { session_id: 'shared' });
    a.client.send('input', { content: Array.from({ length: 60 }, (_, i) => `w${i}`).join(' ') });
    await a.client.until((f) => f.event.type === 'message.delta' && f.seq >= 6);
    const b = await Client.attach(url, { session_id: 'shared' });
    expect(b.client.frames[0]).toBe(b.ack);
    await b.client.type('done');
    const seqs = b.client.frames.filter((f) => f.seq > 0).map((f) => f.seq);
    expect(seqs[0]).toBe(b.ack.event.data.seq + 1);
    expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + i));
    await a.client.close();
    await b.client.close();
  });
});

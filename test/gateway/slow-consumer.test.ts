import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import type { WebSocket } from 'ws';
import { createRuntime } from '../../src/index.ts';
import { Connection } from '../../src/gateway/connection.ts';
import { GatewayMetrics } from '../../src/gateway/metrics.ts';
import { settle } from '../helpers.ts';

/** A socket whose unread backlog (bufferedAmount) the test sets, recording what was sent. */
class FakeSocket extends EventEmitter {
  readonly OPEN = 1;
  readyState = 1;
  bufferedAmount = 0;
  readonly sent: { type: string; data: Record<string, unknown> }[] = [];
  closedWith: [number, string] | undefined;
  send(text: string) {
    this.sent.push(JSON.parse(text).event);
  }
  close(code: number, reason: string) {
    this.closedWith = [code, reason];
    this.readyState = 3;
  }
  receive(type: string, data: Record<string, unknown>) {
    this.emit('message', Buffer.from(JSON.stringify({ version: 'aep/v1', id: `c${Math.random()}`, event: { type, data } })), false);
  }
}

describe('C15 slow consumers', () => {
  it('drops deltas past a quarter of the budget and marks done.dropped, throttles past half, closes 1013 past all', async () => {
    let emit!: (text: string) => void;
    let finish!: () => void;
    const runtime = createRuntime({
      debounceMs: 0,
      commitDelayMs: 0, // settle() turns the event loop; real time does not pass
      agent: (turn) =>
        new Promise<void>((resolve) => {
          emit = (text) => turn.emit(text);
          finish = resolve;
        }),
    });
    const socket = new FakeSocket();
    new Connection(socket as unknown as WebSocket, {
      runtime,
      authenticate: undefined,
      authorize: () => true,
      maxFrameBytes: 32768,
      initTimeoutMs: 30000,
      maxBufferedBytes: 4000,
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
    });
    socket.receive('init', { version: 'aep/v1', session_id: 's' });
    socket.receive('input', { content: 'go' });
    await settle();
    // Frames reach the socket a microtask after they are emitted: settle after each.
    emit('kept');
    await settle();
    socket.bufferedAmount = 1500; // past a quarter
    emit('dropped');
    await settle();
    socket.bufferedAmount = 2500; // past half: throttle, once
    emit('also dropped');
    emit('still dropped');
    await settle();
    socket.bufferedAmount = 0;
    finish();
    await settle();
    const types = socket.sent.map((e) => e.type);
    const deltas = socket.sent.filter((e) => e.type === 'message.delta').map((e) => e.data.content);
    expect(deltas).toEqual(['kept']);
    expect(socket.sent.filter((e) => e.type === 'control')).toEqual([{ type: 'control', data: { action: 'throttle', reason: 'slow_consumer' } }]);
    expect(socket.sent.find((e) => e.type === 'done')?.data).toMatchObject({ success: true, dropped: true });
    expect(types.at(-1)).toBe('state');
    socket.bufferedAmount = 5000; // past the whole budget
    socket.receive('ping', {});
    await settle();
    expect(socket.closedWith).toEqual([1013, 'slow consumer']);
    await runtime.shutdown({ drainMs: 0 });
  });
});

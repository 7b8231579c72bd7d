import { randomUUID, timingSafeEqual } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { createActor, type Actor } from 'xstate';
import type { Subscription } from 'rxjs';
import { connectionMachine, type ConnectionEvent, type OutboundFrame, type HandshakeFailure } from '../../machines/connection.ts';
import { BatonError, StoreUnavailableError } from '../errors.ts';
import type { Runtime } from '../runtime/runtime.ts';
import type { Receipt, SessionStatus } from '../runtime/types.ts';
import { isProblem, parseFrame, serverEnvelope, PROTOCOL_VERSION, type ClientFrame, type FrameProblem } from './envelope.ts';
import { TokenBucket } from './rate-limit.ts';
import type { GatewayMetrics } from './metrics.ts';
import type { Logger } from 'pino';

/** Corked frames are flushed early past this many bytes (a burst of errors, a replay). */
const CORK_FLUSH_BYTES = 16 * 1024;

/** What every connection of one gateway shares. */
export interface ConnectionContext {
  readonly runtime: Runtime;
  readonly token: string | undefined;
  readonly maxFrameBytes: number;
  readonly initTimeoutMs: number;
  readonly maxBufferedBytes: number;
  readonly rateLimit: { readonly perSecond: number; readonly burst: number };
  readonly metrics: GatewayMetrics;
  readonly logger: Logger;
  /** True once the gateway is shutting down: new handshakes are refused. */
  closing(): boolean;
  /** Why a new handshake must be refused now (too many connections), if it must. */
  overloaded(): string | undefined;
  /** A connection attached to a session, or left it (for the directory). */
  attached(sessionId: string): void;
  detached(sessionId: string): void;
  closed(connection: Connection): void;
}

/**
 * One WebSocket connection: parses client frames, talks to the runtime, and writes every
 * outbound frame through its connection machine's gate (C9).
 */
export class Connection {
  readonly #socket: WebSocket;
  readonly #ctx: ConnectionContext;
  readonly #actor: Actor<typeof connectionMachine>;
  readonly #bucket: TokenBucket;
  #sessionId = '';
  #subscription: Subscription | undefined;
  /** A delta of the running turn was dropped for this client: its `done` says so. */
  #dropped = false;
  #throttled = false;
  #attached = false;
  #outbox: OutboundFrame[] = [];
  /** The TCP socket under the WebSocket, corked while a burst of frames is written. */
  readonly #raw: Duplex | undefined;
  #corked = false;

  constructor(socket: WebSocket, ctx: ConnectionContext, raw?: Duplex) {
    this.#socket = socket;
    this.#raw = raw;
    this.#ctx = ctx;
    this.#bucket = new TokenBucket(ctx.rateLimit.perSecond, ctx.rateLimit.burst);
    this.#actor = createActor(connectionMachine, { input: { initTimeoutMs: ctx.initTimeoutMs } });
    this.#actor.on('write', ({ frame }) => this.#write(frame));
    this.#actor.on('close', ({ code, reason }) => this.#socket.close(code, reason));
    this.#actor.subscribe({ error: (error) => ctx.logger.error({ err: error }, 'connection actor failed') });
    this.#actor.start();
    socket.on('message', (data, isBinary) => this.#receive(isBinary ? null : data.toString()));
    socket.on('close', () => this.#cleanup());
    socket.on('error', (error) => ctx.logger.warn({ err: error }, 'socket error'));
  }

  get sessionId(): string {
    return this.#sessionId;
  }

  /**
   * Queues a frame for this client; it goes out after `init_ack`, in order. Frames of one
   * burst enter the gate together (one event for the machine, not one each); anything else
   * the gate is told flushes them first, so the order the gate sees is the order of calls.
   */
  send(frame: OutboundFrame): void {
    this.#outbox.push(frame);
    if (this.#outbox.length === 1) queueMicrotask(() => this.#flushOutbox());
  }

  #flushOutbox(): void {
    if (this.#outbox.length === 0) return;
    const frames = this.#outbox;
    this.#outbox = [];
    if (this.#actor.getSnapshot().status === 'active') this.#actor.send({ type: 'outbound', frames });
  }

  /** Every event for the gate goes through here, behind the frames queued before it. */
  #toGate(event: ConnectionEvent): void {
    this.#flushOutbox();
    if (this.#actor.getSnapshot().status === 'active') this.#actor.send(event);
  }

  #receive(text: string | null): void {
    let frame: ClientFrame | FrameProblem | undefined;
    try {
      frame = text === null ? { code: 'INVALID_MESSAGE', message: 'binary frames are not supported' } : parseFrame(text);
      this.#handle(frame);
    } catch (error) {
      // C15: a bug in handling one frame must not take the process down.
      this.#ctx.logger.error({ err: error }, 'frame handling failed');
      if (this.#actor.getSnapshot().value === 'handshaking') {
        this.#reject({ code: 'INTERNAL_ERROR', message: 'the handshake could not be completed' });
      } else {
        // Named, so a client can settle the input it sent (C15).
        this.#error('INTERNAL_ERROR', 'the frame could not be handled', frame?.id);
      }
    }
    // Whatever answers this frame goes out before the next frame is read: ws closes the
    // socket on an oversized frame (1009) before any microtask would run.
    this.#flushOutbox();
  }

  #handle(frame: ClientFrame | FrameProblem): void {
    const state = this.#actor.getSnapshot().value;
    if (state === 'closed') return;
    if (state === 'awaitingInit') {
      if (isProblem(frame)) return this.#reject({ code: frame.code, message: frame.message });
      if (frame.type !== 'init') return this.#reject({ code: 'PROTOCOL_VIOLATION', message: `the first frame must be init, got ${frame.type}` });
      return this.#handshake(frame);
    }
    if (isProblem(frame)) return this.#error(frame.code, frame.message, frame.id);
    switch (frame.type) {
      case 'init':
        return this.#error('PROTOCOL_VIOLATION', 'already initialized', frame.id);
      case 'ping':
        return this.send({ type: 'pong', seq: 0, data: { state: this.#wireState(this.#ctx.runtime.status(this.#sessionId)) } });
      case 'control':
        return this.#control(frame.id, frame.data.action);
      case 'input':
        if (!this.#bucket.take()) return this.#error('RATE_LIMITED', 'too many inputs; slow down', frame.id);
        return this.#ack(frame.id, this.#ctx.runtime.send(this.#sessionId, withMetadata(frame)));
      case 'question_response':
        if (!this.#bucket.take()) return this.#error('RATE_LIMITED', 'too many inputs; slow down', frame.id);
        return this.#ack(
          frame.id,
          this.#ctx.runtime.respond(this.#sessionId, { id: frame.id, questionId: frame.data.id, answers: frame.data.answers }),
        );
    }
  }

  #handshake(frame: Extract<ClientFrame, { type: 'init' }>): void {
    const { data } = frame;
    if (data.version !== PROTOCOL_VERSION) {
      return this.#reject({ code: 'VERSION_MISMATCH', message: `this server speaks ${PROTOCOL_VERSION}, not ${JSON.stringify(data.version)}` });
    }
    const token = this.#ctx.token;
    if (token !== undefined) {
      const given = data.auth?.token;
      if (given === undefined) return this.#reject({ code: 'AUTH_REQUIRED', message: 'init.auth.token is required' });
      if (!sameSecret(given, token)) return this.#reject({ code: 'UNAUTHORIZED', message: 'wrong token' });
    }
    if (this.#ctx.closing()) return this.#reject({ code: 'GATEWAY_OVERLOAD', message: 'the gateway is shutting down; reconnect later' });
    const overload = this.#ctx.overloaded();
    if (overload) return this.#reject({ code: 'GATEWAY_OVERLOAD', message: overload });
    this.#toGate({ type: 'init' });
    const sessionId = data.session_id || `sess_${randomUUID()}`;
    const kind = data.worker_type ?? 'agent';
    const runtime = this.#ctx.runtime;
    // Subscribe first, then open: everything from the attach point on is delivered, and
    // whatever the session emits meanwhile waits behind init_ack in the gate.
    const attachedAt = runtime.status(sessionId)?.seq ?? 0;
    this.#sessionId = sessionId;
    this.#subscription = runtime.eventsOf(sessionId).subscribe({
      next: (e) => this.send({ type: e.type, data: e.data as Record<string, unknown>, seq: e.seq }),
      // The store failed (C16): say so, then close with "try again later"; a client that
      // reconnects with last_seq resumes from what was committed.
      error: (error: unknown) => {
        const code = error instanceof BatonError ? error.code : 'INTERNAL_ERROR';
        const message = error instanceof Error ? error.message : String(error);
        // Mid-handshake the error is the handshake's answer; the session is not deleted.
        if (!this.#attached) return this.#reject({ code, message, closeCode: 1013 });
        this.send({ type: 'error', seq: 0, data: { code, message } });
        this.#toGate({ type: 'close', code: 1013, reason: 'store unavailable' });
      },
      complete: () =>
        this.#toGate(
          this.#ctx.closing() ? { type: 'close', code: 1001, reason: 'shutdown' } : { type: 'close', code: 1000, reason: 'session deleted' },
        ),
    });
    let status: SessionStatus;
    try {
      status = runtime.open(sessionId, { kind });
    } catch (error) {
      this.#subscription.unsubscribe();
      const code = error instanceof BatonError ? error.code : 'INTERNAL_ERROR';
      const retry = error instanceof StoreUnavailableError ? { closeCode: 1013 } : {};
      return this.#reject({ code, message: error instanceof Error ? error.message : String(error), ...retry });
    }
    if (status.kind === 'onboarding' && status.state === 'created') runtime.control(sessionId, 'start');
    // Resume: the stored events after the client's last_seq, up to the attach point; live
    // events after it are already held in the gate.
    const lastSeq = data.last_seq;
    const replay =
      lastSeq === undefined || lastSeq >= attachedAt
        ? []
        : runtime
            .eventsAfter(sessionId, lastSeq)
            .filter((e) => e.seq <= attachedAt)
            .map((e) => ({ type: e.type, data: e.data as Record<string, unknown>, seq: e.seq }));
    const complete = lastSeq === undefined || lastSeq >= attachedAt || replay[0]?.seq === lastSeq + 1;
    this.#ctx.logger.debug({ sessionId, kind }, 'attached');
    this.#attached = true;
    this.#ctx.attached(sessionId);
    this.#toGate({
      type: 'attached',
      ack: {
        type: 'init_ack',
        seq: 0,
        data: {
          session_id: sessionId,
          state: this.#wireState(status),
          server_caps: {
            protocol_version: PROTOCOL_VERSION,
            supports_resume: true,
            supports_delta: true,
            max_frame_size: this.#ctx.maxFrameBytes,
          },
          seq: attachedAt,
          ...(lastSeq !== undefined && { resume: { from: lastSeq, replayed: replay.length, complete } }),
        },
      },
      replay,
    });
  }

  #control(id: string, action: 'stop' | 'terminate' | 'delete'): void {
    try {
      this.#ctx.runtime.control(this.#sessionId, action);
    } catch (error) {
      const code = error instanceof BatonError ? error.code : 'INTERNAL_ERROR';
      this.#error(code, error instanceof Error ? error.message : String(error), id);
    }
  }

  /** `input.ack` for inputs and answers; commands are answered by their effect instead. */
  #ack(id: string, receipt: Receipt): void {
    this.#ctx.metrics.input(receipt);
    if (receipt.status === 'rejected') {
      // An announced rejection already reached this client as an error event of the session,
      // naming the input (`event_id`) like the error below would.
      if (!receipt.announced) this.#error(receipt.code ?? 'INTERNAL_ERROR', receipt.error?.message ?? 'rejected', id);
      return;
    }
    if (receipt.mode === 'command') return;
    this.send({
      type: 'input.ack',
      seq: 0,
      data: {
        client_message_id: id,
        status: 'accepted',
        duplicate: receipt.status === 'duplicate',
        ...(receipt.mode && { input_mode: receipt.mode }),
        durability: receipt.durability ?? 'volatile',
      },
    });
  }

  /** An error about one of this client's frames: to this connection only, seq 0. */
  #error(code: string, message: string, eventId?: string): void {
    this.#ctx.metrics.error(code);
    this.send({ type: 'error', seq: 0, data: { code, message, ...(eventId && { event_id: eventId }) } });
  }

  #reject(failure: HandshakeFailure): void {
    this.#ctx.metrics.error(failure.code);
    this.#toGate({ type: 'reject', failure });
  }

  /** The only place a frame reaches the socket, called by the gate. Applies the slow-consumer rules. */
  #write(frame: OutboundFrame): void {
    const socket = this.#socket;
    if (socket.readyState !== socket.OPEN) return;
    // Corked bytes are ours, not the client's backlog: flush them before they could count
    // against the client, and before a batch grows large.
    const limit = this.#ctx.maxBufferedBytes;
    if (this.#corked && (socket.bufferedAmount > limit / 4 || (this.#raw?.writableLength ?? 0) >= CORK_FLUSH_BYTES)) this.#uncork();
    const buffered = socket.bufferedAmount;
    if (buffered > limit) {
      this.#ctx.logger.warn({ sessionId: this.#sessionId, buffered }, 'slow consumer closed');
      this.#ctx.metrics.error('SLOW_CONSUMER');
      socket.close(1013, 'slow consumer');
      return;
    }
    // Tell the client once per episode; the control frame queues behind this one.
    if (!this.#throttled && buffered > limit / 2) {
      this.#throttled = true;
      this.send({ type: 'control', seq: 0, data: { action: 'throttle', reason: 'slow_consumer' } });
    } else if (this.#throttled && buffered < limit / 4) {
      this.#throttled = false;
    }
    if (frame.type === 'message.delta' && buffered > limit / 4) {
      this.#dropped = true;
      return;
    }
    let data = frame.data;
    if (frame.type === 'done' && this.#dropped) {
      data = { ...data, dropped: true };
      this.#dropped = false;
    }
    this.#cork();
    socket.send(serverEnvelope(this.#sessionId, { ...frame, data }));
  }

  /**
   * A turn's frames come out in a burst (one step of the session, or an agent's deltas in
   * consecutive microtasks): corking until the next tick writes them with one syscall
   * instead of one each. The tick comes before any I/O, so no frame waits longer.
   */
  #cork(): void {
    const raw = this.#raw;
    if (!raw || this.#corked) return;
    this.#corked = true;
    raw.cork();
    process.nextTick(() => this.#uncork());
  }

  #uncork(): void {
    if (!this.#corked) return;
    this.#corked = false;
    this.#raw?.uncork();
  }

  #wireState(status: SessionStatus | undefined): string {
    // Any kind whose state carries the `busy` tag is running, whatever it calls the state.
    if (status?.busy) return 'running';
    switch (status?.state) {
      case undefined:
      case 'deleted':
        return 'deleted';
      case 'busy':
        return 'running';
      case 'created':
      case 'terminated':
        return status.state;
      case 'complete':
        return 'terminated';
      default:
        return 'idle';
    }
  }

  #cleanup(): void {
    this.#subscription?.unsubscribe();
    if (this.#attached) this.#ctx.detached(this.#sessionId);
    this.#attached = false;
    this.#toGate({ type: 'close' });
    this.#actor.stop();
    this.#ctx.closed(this);
  }
}

function withMetadata(frame: Extract<ClientFrame, { type: 'input' }>) {
  const { content, metadata } = frame.data;
  return metadata ? { id: frame.id, content, metadata } : { id: frame.id, content };
}

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

import { randomUUID } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { createActor, type Actor } from 'xstate';
import type { Subscription } from 'rxjs';
import { connectionMachine, type ConnectionEvent, type OutboundFrame, type HandshakeFailure } from '../../machines/connection.ts';
import { BatonError, StoreUnavailableError, UnauthorizedError } from '../errors.ts';
import type { Runtime } from '../runtime/runtime.ts';
import type { Receipt, SessionEvent } from '../runtime/types.ts';
import type { ScheduleSpec } from '../runtime/schedule.ts';
import { isProblem, parseFrame, serverEnvelope, PROTOCOL_VERSION, type ClientFrame, type FrameProblem } from './envelope.ts';
import { FrameBudget, TokenBucket, type Charge } from './rate-limit.ts';
import { attachSession, frameOf, type InitData } from './attach.ts';
import { Replies } from './replies.ts';
import { wireState } from './wire-state.ts';
import type { GatewayMetrics } from './metrics.ts';
import { isAdmin, ownerOf, sessionKey, type Authorize, type Principal, type SessionAction } from './principal.ts';
import type { Logger } from 'pino';

/** Corked frames are flushed early past this many bytes (a burst of errors, a replay). */
const CORK_FLUSH_BYTES = 16 * 1024;

/**
 * Client frames that may wait for the session to be attached; one more fails the handshake
 * (`RATE_LIMITED`, close 1008), so a flood before `init_ack` costs bounded memory.
 */
export const MAX_FRAMES_BEFORE_ACK = 64;

/**
 * Owed answers at which the connection stops reading its socket, until they are down to a
 * quarter of it: a client pipelining faster than the runtime answers is slowed by TCP, and
 * nothing it sent is dropped or reordered.
 */
export const PAUSE_OWED_ANSWERS = 1024;

/**
 * Owed answers past which a frame closes the connection (`RATE_LIMITED`, 1008). Reading
 * stops at {@link PAUSE_OWED_ANSWERS}, so only the rest of one socket read can get here.
 */
export const MAX_OWED_ANSWERS = 4 * PAUSE_OWED_ANSWERS;

/**
 * How long a connection whose session went away (deleted, its store failed, shutdown) waits
 * for the answers it still owes — the refusals of inputs a failed commit did not take —
 * before it closes.
 */
export const END_GRACE_MS = 1000;

/** What every connection of one gateway shares. */
export interface ConnectionContext {
  readonly runtime: Runtime;
  /** C18: names the principal of `init.auth.token`, or throws the typed refusal; `undefined`: authentication is off. */
  readonly authenticate: ((token: string | undefined) => Promise<Principal>) | undefined;
  readonly authorize: Authorize;
  readonly maxFrameBytes: number;
  readonly initTimeoutMs: number;
  readonly maxBufferedBytes: number;
  readonly rateLimit: { readonly perSecond: number; readonly burst: number };
  readonly frameBudget: { readonly perSecond: number; readonly burst: number };
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
  /**
   * Why this principal (or, without authentication, this remote address) may not create one
   * more session now — the gateway's `sessionRate` and `maxSessionsPerPrincipal` — or `undefined`.
   */
  mayCreateSession(principal: Principal | undefined, address: string): Promise<string | undefined>;
}

/** What the gateway's admission decided for one socket (see `Admission`). */
export interface Admitted {
  /** Left of the handshake deadline: the first frame must come within it. @default the context's `initTimeoutMs` */
  readonly deadlineMs?: number;
  /** The connection's remote address: its admission slots, and its session quota when authentication is off. */
  readonly key?: string;
  /** Called once, at the first client frame: the handshake is no longer in flight. */
  readonly started?: () => void;
}

/** A connection closed for flooding is cut off this long after its close frame if the client does not close. */
const FLOOD_CUTOFF_MS = 1000;

/**
 * One WebSocket connection: parses client frames, talks to the runtime, and writes every
 * outbound frame through its connection machine's gate (C9).
 */
export class Connection {
  readonly #socket: WebSocket;
  readonly #ctx: ConnectionContext;
  readonly #actor: Actor<typeof connectionMachine>;
  readonly #bucket: TokenBucket;
  readonly #budget: FrameBudget;
  readonly #admitted: Admitted;
  /** The first client frame arrived. */
  #started = false;
  /** The code of the handshake failure the host decided (an init_ack refusal without one is the machine's timeout). */
  #refusal: string | undefined;
  /** The session key the runtime knows (C18: `<owner>/<id>` for a principal's session). */
  #sessionId = '';
  /** The session id as this client named it: what its envelopes and `init_ack` say. */
  #wireId = '';
  /** Who this connection acts for; `undefined` when authentication is off (trusted). */
  #principal: Principal | undefined;
  #expiryTimer: ReturnType<typeof setTimeout> | undefined;
  #subscription: Subscription | undefined;
  /** A delta of the running turn was dropped for this client: its `done` says so. */
  #dropped = false;
  #throttled = false;
  #attached = false;
  #outbox: OutboundFrame[] = [];
  /** Client frames that arrived while the session was being attached; `undefined` outside the attach. */
  #waiting: (ClientFrame | FrameProblem)[] | undefined;
  #attachTimer: ReturnType<typeof setTimeout> | undefined;
  /** The seq of the first session event delivered live: the attach point is before it. */
  #firstLiveSeq: number | undefined;
  /** The highest session seq written: a replayed event that also arrived live goes out once. */
  #lastSeq = 0;
  readonly #replies = new Replies(
    (frame) => this.send(frame),
    () => this.#answered(),
  );
  /** Reading is paused while too many answers are owed. */
  #paused = false;
  /** The session went away: why, for the frames that still arrive before the close. */
  #ended: { code: string; message: string } | undefined;
  #endTimer: ReturnType<typeof setTimeout> | undefined;
  /** The TCP socket under the WebSocket, corked while a burst of frames is written. */
  readonly #raw: Duplex | undefined;
  #corked = false;

  constructor(socket: WebSocket, ctx: ConnectionContext, raw?: Duplex, admitted: Admitted = {}) {
    this.#socket = socket;
    this.#raw = raw;
    this.#ctx = ctx;
    this.#admitted = admitted;
    this.#bucket = new TokenBucket(ctx.rateLimit.perSecond, ctx.rateLimit.burst);
    this.#budget = new FrameBudget(ctx.frameBudget.perSecond, ctx.frameBudget.burst);
    const initTimeoutMs = Math.min(ctx.initTimeoutMs, admitted.deadlineMs ?? ctx.initTimeoutMs);
    this.#actor = createActor(connectionMachine, { input: { initTimeoutMs } });
    this.#actor.on('write', ({ frame }) => {
      if (frame.type === 'init_ack' && frame.data.state === 'deleted') this.#counted(frame);
      this.#write(frame);
    });
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
    if (this.#gone()) return;
    if (!this.#started) {
      this.#started = true;
      this.#admitted.started?.();
    }
    // Every frame costs, before it is even parsed: a flood is answered with less work than it is.
    const charge = this.#budget.charge();
    if (charge !== 'ok') return this.#overBudget(charge);
    let frame: ClientFrame | FrameProblem | undefined;
    try {
      frame = text === null ? { code: 'INVALID_MESSAGE', message: 'binary frames are not supported' } : parseFrame(text);
      this.#handle(frame);
    } catch (error) {
      this.#failed(error, frame);
    }
    // Whatever answers this frame goes out before the next frame is read: ws closes the
    // socket on an oversized frame (1009) before any microtask would run.
    this.#flushOutbox();
  }

  /** C15: a bug in handling one frame must not take the process down. */
  #failed(error: unknown, frame: ClientFrame | FrameProblem | undefined): void {
    this.#ctx.logger.error({ err: error }, 'frame handling failed');
    if (this.#actor.getSnapshot().value === 'handshaking' && !this.#attached) {
      this.#reject({ code: 'INTERNAL_ERROR', message: 'the handshake could not be completed' });
    } else {
      // Named, so a client can settle the input it sent (C15).
      this.#replies.now([this.#errorFrame('INTERNAL_ERROR', 'the frame could not be handled', frame?.id)]);
    }
  }

  #handle(frame: ClientFrame | FrameProblem): void {
    const state = this.#actor.getSnapshot().value;
    if (state === 'closed') return;
    if (state === 'awaitingInit') {
      if (isProblem(frame)) return this.#reject({ code: frame.code, message: frame.message });
      if (frame.type !== 'init') return this.#reject({ code: 'PROTOCOL_VIOLATION', message: `the first frame must be init, got ${frame.type}` });
      return this.#handshake(frame);
    }
    if (this.#waiting) return this.#wait(frame);
    this.#dispatch(frame);
  }

  /**
   * A frame that arrives while the session is being attached waits for it, in arrival order
   * (a command must not overtake the input before it). The wait is bounded: a client that
   * floods before `init_ack` fails its handshake instead of growing this queue.
   */
  #wait(frame: ClientFrame | FrameProblem): void {
    const waiting = this.#waiting!;
    if (waiting.length < MAX_FRAMES_BEFORE_ACK) {
      waiting.push(frame);
      return;
    }
    this.#reject({ code: 'RATE_LIMITED', message: `more than ${MAX_FRAMES_BEFORE_ACK} frames before init_ack; wait for it` });
  }

  /** A frame on an attached connection: the runtime is called now, in frame order (C1); its answer comes in frame order. */
  #dispatch(frame: ClientFrame | FrameProblem): void {
    // The session is gone and the close follows: refuse by name, so the client may send it again later.
    if (this.#ended) return this.#replies.now([this.#errorFrame(this.#ended.code, this.#ended.message, frame.id)]);
    const owed = this.#replies.owed;
    if (owed >= MAX_OWED_ANSWERS) return this.#flooded();
    if (owed >= PAUSE_OWED_ANSWERS && !this.#paused) {
      this.#paused = true;
      this.#socket.pause();
    }
    if (isProblem(frame)) return this.#replies.now([this.#errorFrame(frame.code, frame.message, frame.id)]);
    const { runtime } = this.#ctx;
    const id = frame.id;
    const action = actionOf(frame);
    if (action && !this.#may(action)) {
      return this.#replies.now([this.#errorFrame('UNAUTHORIZED', `not allowed to ${action} session "${this.#wireId}"`, id)]);
    }
    switch (frame.type) {
      case 'init':
        return this.#replies.now([this.#errorFrame('PROTOCOL_VIOLATION', 'already initialized', id)]);
      case 'ping':
        // A barrier: what the session sent before the status was read goes out before the pong.
        return this.#answer(id, () => runtime.status(this.#sessionId), (status) => [{ type: 'pong', seq: 0, data: { state: wireState(status) } }], true);
      case 'control':
        return this.#answer(id, () => runtime.control(this.#sessionId, frame.data.action), () => []);
      case 'input':
        if (!this.#bucket.take()) return this.#replies.now([this.#errorFrame('RATE_LIMITED', 'too many inputs; slow down', id)]);
        return this.#answer(id, () => runtime.send(this.#sessionId, withMetadata(frame)), (receipt) => this.#ack(id, receipt));
      case 'question_response':
        if (!this.#bucket.take()) return this.#replies.now([this.#errorFrame('RATE_LIMITED', 'too many inputs; slow down', id)]);
        return this.#answer(
          id,
          () => runtime.respond(this.#sessionId, { id, questionId: frame.data.id, answers: frame.data.answers }),
          (receipt) => this.#ack(id, receipt),
        );
      case 'permission_response': {
        if (!this.#bucket.take()) return this.#replies.now([this.#errorFrame('RATE_LIMITED', 'too many inputs; slow down', id)]);
        const { id: callId, allowed, reason } = frame.data;
        // Accepted: the call's tool_result says what came of it. Refused: an error naming the frame.
        return this.#answer(
          id,
          () => runtime.decide(this.#sessionId, { id: callId, allowed, ...(reason !== undefined && { reason }) }),
          (receipt) => (receipt.status === 'rejected' ? this.#ack(id, receipt) : []),
        );
      }
      case 'schedule': {
        if (!this.#bucket.take()) return this.#replies.now([this.#errorFrame('RATE_LIMITED', 'too many inputs; slow down', id)]);
        const { id: scheduleId, at, after_ms: afterMs, every_ms: every, cron, payload } = frame.data;
        const spec = { id: scheduleId, ...defined({ at, afterMs, every, cron, payload }) } as ScheduleSpec;
        return this.#answer(id, () => runtime.schedule(this.#sessionId, spec), (s) => [scheduleAck(id, s.id, s.dueAt, true)]);
      }
      case 'schedule_cancel':
        if (!this.#bucket.take()) return this.#replies.now([this.#errorFrame('RATE_LIMITED', 'too many inputs; slow down', id)]);
        return this.#answer(id, () => runtime.cancelSchedule(this.#sessionId, frame.data.id), (found) => [scheduleAck(id, frame.data.id, undefined, found)]);
    }
  }

  #answered(): void {
    if (!this.#paused || this.#replies.owed > PAUSE_OWED_ANSWERS / 4) return;
    this.#paused = false;
    this.#socket.resume();
  }

  #flooded(message = `more than ${MAX_OWED_ANSWERS} frames awaiting an answer`): void {
    this.#ctx.logger.warn({ sessionId: this.#sessionId }, 'flooding client closed');
    if (this.#actor.getSnapshot().value !== 'open') {
      this.#reject({ code: 'RATE_LIMITED', message });
    } else {
      // Out of frame order on purpose: it is the last frame, and the answers it would wait behind are dropped.
      this.send({ type: 'error', seq: 0, data: { code: 'RATE_LIMITED', message } });
      this.#ctx.metrics.error('RATE_LIMITED');
      this.#toGate({ type: 'close', code: 1008, reason: 'RATE_LIMITED' });
    }
    // Nothing more it sends is read; a client that does not answer the close is cut off.
    this.#socket.pause();
    setTimeout(() => this.#socket.terminate(), FLOOD_CUTOFF_MS).unref();
  }

  /** A frame over the connection's budget: answered once per episode, then dropped; a client that keeps on is closed. */
  #overBudget(charge: Exclude<Charge, 'ok'>): void {
    const { perSecond } = this.#ctx.frameBudget;
    if (charge === 'close') return this.#flooded(`kept sending more than ${perSecond} frames a second`);
    this.#ctx.metrics.frameDropped();
    if (charge === 'warn') {
      this.send({ type: 'error', seq: 0, data: { code: 'RATE_LIMITED', message: `more than ${perSecond} frames a second: frames are dropped unanswered; keep on and the connection is closed` } });
      this.#ctx.metrics.error('RATE_LIMITED');
    }
  }

  /** The answer to frame `id` once the runtime settles it; a rejection is a typed error naming the frame. */
  #answer<T>(id: string, call: () => Promise<T>, answer: (value: T) => readonly OutboundFrame[], barrier = false): void {
    this.#replies.later(call, {
      answer,
      fail: (error) => {
        if (!(error instanceof BatonError)) this.#ctx.logger.error({ err: error }, 'runtime call failed');
        return [this.#errorFrame(codeOf(error), messageOf(error), id)];
      },
      internal: (error) => {
        this.#ctx.logger.error({ err: error }, 'answer failed');
        return [this.#errorFrame('INTERNAL_ERROR', 'the frame could not be handled', id)];
      },
      barrier,
    });
  }

  #handshake(frame: Extract<ClientFrame, { type: 'init' }>): void {
    const { data } = frame;
    if (data.version !== PROTOCOL_VERSION) {
      return this.#reject({ code: 'VERSION_MISMATCH', message: `this server speaks ${PROTOCOL_VERSION}, not ${JSON.stringify(data.version)}` });
    }
    if (this.#ctx.authenticate && !data.auth?.token) return this.#refuseAuth({ code: 'AUTH_REQUIRED', message: 'init.auth.token is required' });
    if (this.#ctx.closing()) return this.#reject({ code: 'GATEWAY_OVERLOAD', message: 'the gateway is shutting down; reconnect later' });
    const overload = this.#ctx.overloaded();
    if (overload) return this.#reject({ code: 'GATEWAY_OVERLOAD', message: overload });
    this.#toGate({ type: 'init' });
    this.#waiting = [];
    // The attach waits on the store; a store that never answers must not hold the connection
    // (and what the gate holds for it) forever.
    this.#attachTimer = setTimeout(
      () => this.#reject({ code: 'GATEWAY_OVERLOAD', message: 'the session could not be attached in time; reconnect later', closeCode: 1013 }),
      this.#ctx.initTimeoutMs,
    );
    this.#attachTimer.unref?.();
    this.#authenticated(data)
      .then((ok) => (ok ? this.#attach(data) : undefined))
      .catch((error: unknown) => this.#attachFailed(error));
  }

  /**
   * C18: names the principal, the session key its `session_id` means, and checks it may
   * attach (and replay); `false` if the handshake was refused or the connection went away.
   */
  async #authenticated(data: InitData): Promise<boolean> {
    const authenticate = this.#ctx.authenticate;
    let principal: Principal | undefined;
    if (authenticate) {
      try {
        principal = await authenticate(data.auth?.token);
      } catch (error) {
        if (!(error instanceof BatonError)) throw error;
        this.#refuseAuth({ code: error.code, message: error.message });
        return false;
      }
      if (this.#gone()) return false;
    }
    this.#principal = principal;
    this.#wireId = data.session_id || `sess_${randomUUID()}`;
    this.#sessionId = sessionKey(principal, this.#wireId);
    const refused = !this.#may('attach') ? 'attach' : data.last_seq !== undefined && !this.#may('replay') ? 'replay' : undefined;
    if (refused) {
      this.#refuseAuth({ code: 'UNAUTHORIZED', message: `not allowed to ${refused} session "${this.#wireId}"` });
      return false;
    }
    return true;
  }

  /** Whether this connection's principal may do `action` to its session; always, without authentication. */
  #may(action: SessionAction): boolean {
    const principal = this.#principal;
    if (!principal) return true;
    try {
      return this.#ctx.authorize({ principal, sessionId: this.#sessionId, owner: ownerOf(this.#sessionId), action });
    } catch (error) {
      this.#ctx.logger.error({ err: error, principal: principal.id, sessionId: this.#sessionId, action }, 'authorize threw: refused');
      return false;
    }
  }

  /** A refused credential or attach: logged with the principal and why, never with the credential. */
  #refuseAuth(failure: HandshakeFailure): void {
    this.#ctx.logger.info({ code: failure.code, reason: failure.message, principal: this.#principal?.id, sessionId: this.#sessionId || undefined }, 'handshake refused');
    this.#reject(failure);
  }

  /** The credential expires: the connection is told (UNAUTHORIZED) and closed (1008); a client reconnects with a new one. */
  #armExpiry(): void {
    const expiresAt = this.#principal?.expiresAt;
    if (expiresAt === undefined) return;
    // Timers hold at most 2^31-1 ms: a later expiry re-arms.
    const delay = Math.min(expiresAt - Date.now(), 2 ** 31 - 1);
    this.#expiryTimer = setTimeout(() => {
      if (Date.now() < expiresAt) return this.#armExpiry();
      this.#ctx.logger.info({ principal: this.#principal?.id, sessionId: this.#sessionId }, 'credential expired: connection closed');
      this.send({ type: 'error', seq: 0, data: { code: 'UNAUTHORIZED', message: 'the credential has expired; reconnect with a new one' } });
      this.#ctx.metrics.error('UNAUTHORIZED');
      this.#toGate({ type: 'close', code: 1008, reason: 'UNAUTHORIZED' });
    }, Math.max(delay, 0));
    this.#expiryTimer.unref?.();
  }

  /**
   * Subscribes, then attaches (every event from the subscription on reaches this connection,
   * held behind init_ack by the gate), then handles the frames that arrived meanwhile. Each
   * await may find the connection gone: then it stops, and the subscription is already undone.
   */
  async #attach(data: InitData): Promise<void> {
    const sessionId = this.#sessionId;
    const principal = this.#principal;
    this.#subscription = this.#ctx.runtime.eventsOf(sessionId).subscribe({
      next: (e) => this.#sessionEvent(e),
      // The store failed (C16): say so, then close with "try again later"; a client that
      // reconnects with last_seq resumes from what was committed.
      error: (error: unknown) => {
        const [code, message] = [codeOf(error), messageOf(error)];
        // Mid-handshake the error is the handshake's answer; the session is not deleted.
        if (!this.#attached) return this.#reject({ code, message, closeCode: 1013 });
        this.#end({ code, message }, [{ type: 'error', seq: 0, data: { code, message } }], { code: 1013, reason: 'store unavailable' });
      },
      complete: () => {
        if (this.#ctx.closing()) this.#end({ code: 'GATEWAY_OVERLOAD', message: 'the gateway is shutting down' }, [], { code: 1001, reason: 'shutdown' });
        else this.#end({ code: 'SESSION_NOT_FOUND', message: 'the session was deleted' }, [], { code: 1000, reason: 'session deleted' });
      },
    });
    const attachment = await attachSession(this.#ctx.runtime, sessionId, data, {
      firstLiveSeq: () => this.#firstLiveSeq,
      gone: () => this.#gone(),
      maxFrameBytes: this.#ctx.maxFrameBytes,
      wireId: this.#wireId,
      // C18: only in its own namespace (or as an admin) does an attach create the session:
      // a principal an `authorize` hook lets into another's namespace cannot squat an id there.
      create: !principal || isAdmin(principal) || ownerOf(sessionId) === principal.id,
      // Quotas count a principal's sessions wherever it connects from; without authentication, an address's creations.
      mayCreate: () => this.#ctx.mayCreateSession(principal, this.#admitted.key ?? ''),
    });
    if (!attachment || this.#gone()) return;
    clearTimeout(this.#attachTimer);
    this.#armExpiry();
    this.#ctx.logger.debug({ sessionId, principal: principal?.id, kind: data.worker_type ?? 'agent' }, 'attached');
    this.#attached = true;
    this.#ctx.attached(sessionId);
    // C8: the client has every event up to its last_seq (resume), or up to the attach point;
    // held or later live events at or before it (a cluster node's stream that lags behind the
    // store delivers them late) are not written again.
    this.#lastSeq = Math.max(this.#lastSeq, attachment.through);
    this.#toGate({ type: 'attached', ack: attachment.ack, replay: attachment.replay });
    // The frames that arrived meanwhile, in arrival order, as if they arrived now.
    const waiting = this.#waiting ?? [];
    this.#waiting = undefined;
    for (const frame of waiting) {
      if (this.#gone()) break;
      try {
        this.#dispatch(frame);
      } catch (error) {
        this.#failed(error, frame);
      }
    }
    this.#flushOutbox();
  }

  /**
   * The session's stream ended: what it sent goes out, then the answers still owed (within
   * {@link END_GRACE_MS}), then `last`, then the close.
   */
  #end(why: { code: string; message: string }, last: readonly OutboundFrame[], close: { code: number; reason: string }): void {
    if (this.#ended) return;
    this.#ended = why;
    this.#replies.release();
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      clearTimeout(this.#endTimer);
      this.#replies.release();
      last.forEach((frame) => this.send(frame));
      this.#toGate({ type: 'close', ...close });
    };
    this.#endTimer = setTimeout(finish, END_GRACE_MS);
    this.#endTimer.unref?.();
    this.#replies.afterOwed(finish);
  }

  #attachFailed(error: unknown): void {
    if (this.#gone() || this.#attached) {
      this.#ctx.logger.debug({ err: error }, 'attach ended after the connection');
      return;
    }
    if (!(error instanceof BatonError)) this.#ctx.logger.error({ err: error }, 'attach failed');
    // The store is unavailable: retry later (1013); the session is not deleted.
    const retry = error instanceof StoreUnavailableError ? { closeCode: 1013 } : {};
    this.#reject({ code: codeOf(error), message: messageOf(error), ...retry });
  }

  /** The connection will write nothing more: closed by either side, or its handshake refused. */
  #gone(): boolean {
    return this.#actor.getSnapshot().status !== 'active';
  }

  #sessionEvent(e: SessionEvent): void {
    this.#firstLiveSeq ??= e.seq;
    // Before the attach the gate holds it; after, it waits only for answers this client is owed.
    if (this.#attached) this.#replies.session(frameOf(e));
    else this.send(frameOf(e));
  }

  /** `input.ack` for inputs and answers; commands are answered by their effect instead. */
  #ack(id: string, receipt: Receipt): readonly OutboundFrame[] {
    this.#ctx.metrics.input(receipt);
    if (receipt.status === 'rejected') {
      // An announced rejection already reached this client as an error event of the session,
      // naming the input (`event_id`) like the error below would.
      if (receipt.announced) return [];
      return [this.#errorFrame(receipt.code ?? 'INTERNAL_ERROR', receipt.error?.message ?? 'rejected', id)];
    }
    if (receipt.mode === 'command') return [];
    return [
      {
        type: 'input.ack',
        seq: 0,
        data: {
          client_message_id: id,
          status: 'accepted',
          duplicate: receipt.status === 'duplicate',
          ...(receipt.mode && { input_mode: receipt.mode }),
          durability: receipt.durability ?? 'volatile',
        },
      },
    ];
  }

  /** An error about one of this client's frames: to this connection only, seq 0. */
  #errorFrame(code: string, message: string, eventId?: string): OutboundFrame {
    this.#ctx.metrics.error(code);
    return { type: 'error', seq: 0, data: { code, message, ...(eventId && { event_id: eventId }) } };
  }

  #reject(failure: HandshakeFailure): void {
    if (this.#gone()) return;
    clearTimeout(this.#attachTimer);
    this.#waiting = undefined;
    this.#refusal = failure.code;
    this.#toGate({ type: 'reject', failure });
    // A refused handshake attaches nothing: its subscription goes now, not at the socket's close.
    if (!this.#attached) this.#subscription?.unsubscribe();
  }

  /**
   * A refusing `init_ack` is counted as it is written, whoever decided it: the host (`#reject`)
   * or the machine (no `init` in time). One the machine writes because the client left during
   * the handshake refuses nobody and is not counted.
   */
  #counted(frame: OutboundFrame): void {
    const code = String(frame.data.code);
    const reason = this.#refusal ?? (this.#started ? undefined : 'timeout');
    if (reason === undefined) return;
    this.#ctx.metrics.error(code);
    this.#ctx.metrics.handshakeRefused(reason);
  }

  /** The only place a frame reaches the socket, called by the gate. Applies the slow-consumer rules. */
  #write(frame: OutboundFrame): void {
    const socket = this.#socket;
    if (socket.readyState !== socket.OPEN) return;
    if (frame.seq > 0) {
      if (frame.seq <= this.#lastSeq) return;
      this.#lastSeq = frame.seq;
    }
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
    socket.send(serverEnvelope(this.#wireId, { ...frame, data }));
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

  #cleanup(): void {
    clearTimeout(this.#attachTimer);
    clearTimeout(this.#endTimer);
    clearTimeout(this.#expiryTimer);
    this.#waiting = undefined;
    this.#subscription?.unsubscribe();
    if (this.#attached) this.#ctx.detached(this.#sessionId);
    this.#attached = false;
    this.#toGate({ type: 'close' });
    this.#actor.stop();
    this.#ctx.closed(this);
  }
}

const codeOf = (error: unknown): string => (error instanceof BatonError ? error.code : 'INTERNAL_ERROR');
const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error));

/** `schedule.ack` (seq 0): the schedule as stored (`due_at`), or whether a cancel found one. */
function scheduleAck(frameId: string, scheduleId: string, dueAt: number | undefined, found: boolean): OutboundFrame {
  return { type: 'schedule.ack', seq: 0, data: { client_message_id: frameId, id: scheduleId, ...(dueAt !== undefined ? { due_at: dueAt } : { cancelled: found }) } };
}

/** The fields that are set. */
function defined<T extends Record<string, unknown>>(fields: T): Partial<T> {
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function withMetadata(frame: Extract<ClientFrame, { type: 'input' }>) {
  const { content, metadata } = frame.data;
  return metadata ? { id: frame.id, content, metadata } : { id: frame.id, content };
}

/** The action a client frame asks of its session (C18); `undefined` for frames that only read what the attach allowed. */
function actionOf(frame: ClientFrame): SessionAction | undefined {
  switch (frame.type) {
    case 'input':
      return 'input';
    case 'question_response':
      return 'answer';
    case 'permission_response':
      return 'approve';
    case 'schedule':
    case 'schedule_cancel':
      return 'schedule';
    case 'control':
      return frame.data.action;
    default:
      return undefined;
  }
}

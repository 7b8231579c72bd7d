import type { OutboundFrame } from '../../machines/connection.ts';
import { InvalidMessageError, RateLimitedError, SessionNotFoundError } from '../errors.ts';
import type { Runtime } from '../runtime/runtime.ts';
import type { SessionEvent } from '../runtime/types.ts';
import { PROTOCOL_VERSION, type ClientFrame } from './envelope.ts';
import { wireState } from './wire-state.ts';

export type InitData = Extract<ClientFrame, { type: 'init' }>['data'];

/** What the attach needs to know about its connection as it goes. */
export interface AttachWatch {
  /** The seq of the first event the connection's subscription delivered, if one came yet. */
  firstLiveSeq(): number | undefined;
  /** The connection is gone (closed, or its handshake refused): the attach stops. */
  gone(): boolean;
  /** Advertised as `server_caps.max_frame_size`. */
  readonly maxFrameBytes: number;
  /** The session id as the client named it, for `init_ack.session_id`. @default sessionId */
  readonly wireId?: string;
  /** Whether a session that does not exist yet is created; if not, the attach fails with `SESSION_NOT_FOUND`. @default true */
  readonly create?: boolean;
  /** Why the connection may not create a session now (its quotas), or `undefined`; a session that exists is attached regardless. */
  mayCreate?(): Promise<string | undefined>;
}

/** A connection's attach to its session: the `init_ack` to write first and the replay behind it. */
export interface Attachment {
  readonly ack: OutboundFrame;
  readonly replay: readonly OutboundFrame[];
  /**
   * The client has every event up to this seq once the ack and the replay are written: its
   * `last_seq` (when the session has it), else the attach point. Session events at or
   * before it that arrive later must not be written again (C8).
   */
  readonly through: number;
}

/**
 * Attaches a connection, already subscribed to `sessionId`'s events, to that session: reads
 * the attach point, opens the session (creating or activating it), starts an onboarding that
 * waits to be started, and on a resume reads what the client missed. `undefined` if the
 * connection went away meanwhile; a rejection is the handshake's typed failure.
 *
 * @example
 * const subscription = runtime.eventsOf(sessionId).subscribe(hold);
 * const attachment = await attachSession(runtime, sessionId, init.data, watch);
 * if (attachment) gate.send({ type: 'attached', ...attachment });
 */
export async function attachSession(runtime: Runtime, sessionId: string, data: InitData, watch: AttachWatch): Promise<Attachment | undefined> {
  // The attach point: the latest seq before the session is created or activated, so a new
  // session's own first events follow init_ack.
  const before = await runtime.status(sessionId);
  if (watch.gone()) return undefined;
  if (before === undefined && watch.create === false) throw new SessionNotFoundError(watch.wireId ?? sessionId);
  if (before === undefined && watch.mayCreate) {
    const refusal = await watch.mayCreate();
    if (watch.gone()) return undefined;
    if (refusal !== undefined) throw new RateLimitedError(refusal);
  }
  const status = await runtime.open(sessionId, { kind: data.worker_type ?? 'agent' });
  if (watch.gone()) return undefined;
  if (status.kind === 'onboarding' && status.state === 'created') {
    // Another connection may have started it meanwhile: that is as good.
    await runtime.control(sessionId, 'start').catch((error: unknown) => {
      if (!(error instanceof InvalidMessageError)) throw error;
    });
    if (watch.gone()) return undefined;
  }
  // An event the subscription delivered already is not replayed: the attach point is before it.
  // A resuming client that has seen more than that keeps its own point, if the session has
  // it (on a cluster node whose stream of the session lags behind the store, the stream may
  // deliver events the client saw: they are not written again, see the connection's #write).
  const lastSeq = data.last_seq;
  const live = Math.min(before?.seq ?? 0, (watch.firstLiveSeq() ?? Infinity) - 1);
  const attachedAt = lastSeq !== undefined && lastSeq > live && lastSeq <= (before?.seq ?? 0) ? lastSeq : live;
  const missed = lastSeq === undefined || lastSeq >= attachedAt ? [] : await runtime.eventsAfter(sessionId, lastSeq);
  if (watch.gone()) return undefined;
  // Resume: the stored events after the client's last_seq, up to the attach point; live
  // events after it are held behind init_ack.
  const replay = missed.filter((e) => e.seq <= attachedAt).map(frameOf);
  // A client ahead of the session (it was deleted and its id reused, or pruned) saw events
  // this session never had: not complete.
  const complete = lastSeq === undefined || lastSeq === attachedAt || (lastSeq < attachedAt && replay[0]?.seq === lastSeq + 1);
  const ack: OutboundFrame = {
    type: 'init_ack',
    seq: 0,
    data: {
      session_id: watch.wireId ?? sessionId,
      state: wireState(status),
      server_caps: { protocol_version: PROTOCOL_VERSION, supports_resume: true, supports_delta: true, max_frame_size: watch.maxFrameBytes },
      seq: attachedAt,
      ...(lastSeq !== undefined && { resume: { from: lastSeq, replayed: replay.length, complete } }),
    },
  };
  const through = lastSeq !== undefined && lastSeq <= (before?.seq ?? 0) ? Math.max(lastSeq, 0) : attachedAt;
  return { ack, replay, through };
}

/** A session event as a frame for the client. */
export function frameOf(event: SessionEvent): OutboundFrame {
  return { type: event.type, data: event.data as Record<string, unknown>, seq: event.seq };
}

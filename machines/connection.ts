/**
 * The connection machine: one WebSocket connection's handshake gate (C9).
 *
 *   awaitingInit → handshaking → open → closed
 *
 * Every frame bound for the connection enters in an `outbound` event — session events,
 * output of a turn already running, control frames, errors alike. Until `init_ack` is
 * written they are held in `context.held`, in arrival order; `init_ack` is written by
 * the transition into `open`, and the held frames right after it. There is no other
 * way to write a frame, so nothing can overtake `init_ack`. Frames keep the seq they
 * were given by their session; the gate never numbers anything.
 *
 * Pure: the socket, the runtime and the clock live in the host (src/gateway/).
 */
import { setup, assign, emit, enqueueActions } from 'xstate';

/** A frame for the client: the event of a server envelope and its seq (0 for connection-only frames). */
export interface OutboundFrame {
  readonly type: string;
  readonly data: Readonly<Record<string, unknown>>;
  readonly seq: number;
}

export interface HandshakeFailure {
  readonly code: string;
  readonly message: string;
  /** The close code after the error ack. @default 1008 (1013 when the client should retry later) */
  readonly closeCode?: number;
}

export interface ConnectionContext {
  readonly held: readonly OutboundFrame[];
  readonly initTimeoutMs: number;
}

export type ConnectionEvent =
  /** The client's first frame was a valid `init`: the host attaches the session. */
  | { type: 'init' }
  /**
   * The session is attached; `ack` is the `init_ack` to write first, `replay` the stored
   * events a resuming client missed (they come before anything held).
   */
  | { type: 'attached'; ack: OutboundFrame; replay?: readonly OutboundFrame[] }
  /** The handshake failed: `init_ack{state:'deleted'}` with the code, then close. */
  | { type: 'reject'; failure: HandshakeFailure }
  /** Frames for the client, in order (a burst of them enters as one event). */
  | { type: 'outbound'; frames: readonly OutboundFrame[] }
  /** Close the connection: the socket closed, the session went away, or the gateway stops. */
  | { type: 'close'; code?: number; reason?: string };

export type ConnectionEffect = { type: 'write'; frame: OutboundFrame } | { type: 'close'; code: number; reason: string };

export const connectionMachine = setup({
  types: {
    context: {} as ConnectionContext,
    events: {} as ConnectionEvent,
    input: {} as { initTimeoutMs: number },
    emitted: {} as ConnectionEffect,
  },
  delays: {
    initTimeout: ({ context }) => context.initTimeoutMs,
  },
  actions: {
    hold: assign({
      held: ({ context, event }) => (event.type === 'outbound' ? [...context.held, ...event.frames] : context.held),
    }),
    write: enqueueActions(({ event, enqueue }) => {
      if (event.type === 'outbound') for (const frame of event.frames) enqueue.emit({ type: 'write', frame });
    }),
    /** `init_ack` first, then the replay of a resume, then everything held, in order. */
    openGate: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'attached') return;
      enqueue.emit({ type: 'write', frame: event.ack });
      for (const frame of event.replay ?? []) enqueue.emit({ type: 'write', frame });
      for (const frame of context.held) enqueue.emit({ type: 'write', frame });
      enqueue.assign({ held: [] });
    }),
    failHandshake: enqueueActions(({ event, enqueue }) => {
      const failure: HandshakeFailure =
        event.type === 'reject'
          ? event.failure
          : event.type === 'close'
            ? { code: 'GATEWAY_OVERLOAD', message: 'the session went away during the handshake; reconnect' }
            : { code: 'PROTOCOL_VIOLATION', message: 'no init frame in time' };
      enqueue.emit({
        type: 'write',
        frame: { type: 'init_ack', seq: 0, data: { state: 'deleted', code: failure.code, error: failure.message } },
      });
      enqueue.emit({ type: 'close', code: failure.closeCode ?? 1008, reason: failure.code });
      enqueue.assign({ held: [] });
    }),
    closeSocket: emit(({ event }) => ({
      type: 'close' as const,
      code: event.type === 'close' ? (event.code ?? 1000) : 1000,
      reason: event.type === 'close' ? (event.reason ?? 'closed') : 'closed',
    })),
  },
}).createMachine({
  id: 'connection',
  context: ({ input }) => ({ held: [], initTimeoutMs: input.initTimeoutMs }),
  initial: 'awaitingInit',
  states: {
    awaitingInit: {
      after: { initTimeout: { target: 'closed', actions: 'failHandshake' } },
      on: {
        init: 'handshaking',
        reject: { target: 'closed', actions: 'failHandshake' },
        outbound: { actions: 'hold' },
        close: 'closed',
      },
    },
    // C9: held until init_ack is written.
    handshaking: {
      on: {
        outbound: { actions: 'hold' },
        attached: { target: 'open', actions: 'openGate' },
        reject: { target: 'closed', actions: 'failHandshake' },
        // No side door here either: a handshake never ends without its init_ack.
        close: { target: 'closed', actions: 'failHandshake' },
      },
    },
    open: {
      on: {
        outbound: { actions: 'write' },
        close: { target: 'closed', actions: 'closeSocket' },
      },
    },
    closed: { type: 'final' },
  },
});

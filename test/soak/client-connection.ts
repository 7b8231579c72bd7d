import WebSocket from 'ws';
import { recorded, type HistoryWriter, type SentExtra, type SentRecord } from './history.ts';
import { soakToken } from './settings.ts';

const now = () => performance.timeOrigin + performance.now();

/** What a connection needs of the session it belongs to. */
export interface ConnOwner {
  readonly id: string;
  readonly workerType: string;
  /** The highest seq any of the session's connections saw: where a reconnect resumes. */
  lastSeq: number;
  observe(type: string, data: Record<string, any>): void;
}

/**
 * One WebSocket connection of a soak session: sends `init` (resuming from `last_seq` if
 * given), records every frame it receives and sends, and its close, in the history.
 */
export class Conn {
  readonly id: string;
  readonly session: ConnOwner;
  readonly ws: WebSocket;
  readonly #history: HistoryWriter;
  open = false;
  closed = false;
  readonly opened: Promise<boolean>;
  /** Resolves once the socket is closed and its close is recorded. */
  readonly ended: Promise<void>;
  #ended!: () => void;

  /** The node (index among the cluster's gateways) it is connected to; unset with one gateway. */
  readonly node: number | undefined;

  constructor({ url, id, history, owner, node }: { url: string; id: string; history: HistoryWriter; owner: ConnOwner; node?: number | undefined }, lastSeq: number | undefined) {
    this.id = id;
    this.session = owner;
    this.#history = history;
    this.node = node;
    const session = owner;
    this.ws = new WebSocket(url, { maxPayload: 0 });
    this.ended = new Promise((resolve) => (this.#ended = resolve));
    this.opened = new Promise((resolve) => {
      this.ws.once('open', () => {
        const init = {
          version: 'aep/v1',
          session_id: session.id,
          worker_type: session.workerType,
          // C18: the session's owner, by the first segment of its full key.
          auth: { token: soakToken(session.id.slice(0, session.id.indexOf('/'))) },
          ...(lastSeq !== undefined && { last_seq: lastSeq }),
        };
        this.#history.write({ k: 'open', t: now(), conn: this.id, session: session.id, ...(lastSeq !== undefined && { lastSeq }), ...(node !== undefined && { node }) });
        this.ws.send(JSON.stringify({ version: 'aep/v1', id: `init-${this.id}`, event: { type: 'init', data: init } }));
      });
      this.ws.once('error', (error) => {
        this.error = error.message;
        resolve(false);
      });
      this.ws.on('message', (raw) => {
        const frame = JSON.parse(raw.toString()) as { seq: number; timestamp: number; event: { type: string; data: Record<string, any> } };
        const { type, data } = frame.event;
        this.#history.write({ k: 'frame', t: now(), conn: this.id, session: session.id, seq: frame.seq, type, data: recorded(type, data), ts: frame.timestamp });
        if (type === 'init_ack') {
          this.open = data.state !== 'deleted';
          resolve(this.open);
        }
        if (frame.seq > session.lastSeq) session.lastSeq = frame.seq;
        if (type === 'input.ack' || type === 'schedule.ack') this.answered(data.client_message_id);
        if (type === 'error' && frame.seq === 0 && data.event_id) this.answered(data.event_id);
        session.observe(type, data);
      });
      this.ws.once('close', (code) => {
        this.open = false;
        this.closed = true;
        this.unanswered.clear(); // what it never answered, it never owed a done
        this.#history.write({ k: 'close', t: now(), conn: this.id, session: session.id, code, byClient: this.byClient, ...(this.error && { error: this.error }) });
        resolve(false);
        this.#ended();
      });
    });
  }

  byClient = false;
  error: string | undefined;
  /** Inputs sent on this connection and not yet answered (ack or error), by id: the end of the run waits for them. */
  readonly unanswered = new Map<string, number>();

  answered(id: string): void {
    const n = this.unanswered.get(id) ?? 0;
    if (n <= 1) this.unanswered.delete(id);
    else this.unanswered.set(id, n - 1);
  }

  /** `extra`: what the checker needs of the frame — a `permission_response`'s decision (C19), a schedule or the one a cancel names (C20). */
  send(type: string, data: Record<string, unknown>, id: string, extra: SentExtra = {}): void {
    if (!this.open) return;
    this.#history.write({ k: 'sent', t: now(), conn: this.id, session: this.session.id, id, type, ...extra });
    this.ws.send(JSON.stringify({ version: 'aep/v1', id, event: { type, data } }));
  }

  raw(payload: string | Buffer, id: string, bad: 'malformed' | 'oversized', expect?: SentRecord['expect']): void {
    if (!this.open) return;
    this.#history.write({ k: 'sent', t: now(), conn: this.id, session: this.session.id, id, type: 'raw', bad, ...(expect && { expect }) });
    this.ws.send(payload);
  }

  close(): void {
    this.byClient = true;
    this.ws.close(1000);
  }
}

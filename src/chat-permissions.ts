import type { PermissionRequestData } from '../machines/events.ts';

/** What {@link PermissionPrompts} needs of the terminal and the socket. */
export interface PromptIo {
  /** Prints a line of its own. */
  line(text: string): void;
  /** Puts a question on screen, kept below what is printed after it. */
  ask(question: string): void;
  /** The question is over: answered or withdrawn. */
  unask(): void;
  /** Sends `permission_response` with `data`; returns the frame's id. */
  respond(data: { id: string; allowed: boolean; reason?: string }): string;
  /** The clock `expires_at` is read against. */
  now(): number;
}

/** Why a request is denied without asking once nobody can answer it. */
const INPUT_ENDED = 'the chat client had no more input';

/**
 * The chat client's side of approvals (C19): shows each `permission_request` and asks
 * `allow? [y/N]`, one request at a time, oldest first; the next typed line answers it. A
 * request whose `tool_result` comes first (the deadline passed, `/stop`, another client
 * answered) is not asked any more, so it is never answered late; an answer that crossed such
 * a result on the wire is refused by the gateway, and that refusal is shown as such. Once
 * input has ended nobody can answer: what is asked then is denied at once, rather than
 * leaving the turn waiting for its deadline.
 *
 * @example
 * const prompts = new PermissionPrompts({ line, ask, respond, now: Date.now });
 * prompts.request(frame.data); // on permission_request
 * if (!prompts.answer(typed)) sendInput(typed);
 */
export class PermissionPrompts {
  readonly #io: PromptIo;
  /** Requests not yet answered nor settled, oldest first: the first is on screen. */
  #queue: PermissionRequestData[] = [];
  /** `permission_response` frame ids → the call each answered, to name a refused answer. */
  readonly #sent = new Map<string, string>();
  #inputEnded = false;

  constructor(io: PromptIo) {
    this.#io = io;
  }

  /** A `permission_request` arrived. */
  request(data: PermissionRequestData): void {
    if (this.#queue.some((r) => r.id === data.id)) return; // a replayed frame: asked once
    if (this.#inputEnded) return void this.#send(data.id, { allowed: false, reason: INPUT_ENDED });
    this.#queue.push(data);
    if (this.#queue.length === 1) this.#show();
  }

  /** A `tool_result` arrived: its call, if asked, is no longer asked. */
  result(data: { id: string; status: string; error?: { code: string } }): void {
    const at = this.#queue.findIndex((r) => r.id === data.id);
    if (at === -1) return;
    this.#queue.splice(at, 1);
    if (at > 0) return; // never shown: nothing to take back
    this.#io.unask();
    const outcome = data.error ? `${data.status}: ${data.error.code}` : data.status;
    this.#io.line(`[permission ${data.id} closed without your answer (${outcome}); a line typed now is a message]`);
    if (this.#queue.length > 0) this.#show();
  }

  /**
   * A typed line: the answer when something is asked (`y`/`yes` allows; anything else,
   * Enter included, denies; words after the first are the reason: `n too risky`). A line
   * starting with `/` stays a command, so `/stop` works while a request waits. `false`
   * when the line is no answer.
   */
  answer(text: string): boolean {
    const asked = this.#queue[0];
    if (!asked || text.trimStart().startsWith('/')) return false;
    this.#queue.shift();
    this.#io.unask();
    this.#send(asked.id, parseAnswer(text));
    if (this.#queue.length > 0) this.#show();
    return true;
  }

  /** An `error` frame: `true` if it refuses one of the answers sent, and was shown as such. */
  refused(data: { code?: unknown; message?: unknown; event_id?: unknown }): boolean {
    const callId = this.#sent.get(String(data.event_id));
    if (callId === undefined) return false;
    this.#sent.delete(String(data.event_id));
    this.#io.line(`[your answer to ${callId} was refused: ${String(data.code)} — ${String(data.message)}]`);
    return true;
  }

  /** Input ended: what is asked now or later is denied, since nobody can answer it. */
  endInput(): void {
    this.#inputEnded = true;
    if (this.#queue.length > 0) this.#io.unask();
    for (const request of this.#queue.splice(0)) this.#send(request.id, { allowed: false, reason: INPUT_ENDED });
  }

  #show(): void {
    const r = this.#queue[0]!;
    const seconds = Math.max(0, Math.round((r.expires_at - this.#io.now()) / 1000));
    const expires = `expires ${new Date(r.expires_at).toLocaleTimeString()} (in ${seconds} s)`;
    this.#io.line(`[permission ${r.id}: ${r.tool_name}(${JSON.stringify(r.input)})${r.description ? ` — ${r.description}` : ''}; ${expires}]`);
    this.#io.ask(`allow ${r.id}? [y/N] `);
  }

  #send(id: string, answer: { allowed: boolean; reason?: string }): void {
    this.#sent.set(this.#io.respond({ id, ...answer }), id);
    // Only the latest answers can still be refused: keep the map from growing without bound.
    if (this.#sent.size > 100) this.#sent.delete(this.#sent.keys().next().value!);
  }
}

/**
 * A typed answer: `y`/`yes` (any case) allows, anything else denies; what follows the
 * first word is the reason (`n too risky` → `too risky`).
 */
export function parseAnswer(text: string): { allowed: boolean; reason?: string } {
  const trimmed = text.trim();
  const word = trimmed.split(/\s/, 1)[0] ?? '';
  const allowed = /^y(es)?$/i.test(word);
  // A denial without n/no in front ("maybe later") is a reason as a whole.
  const reason = (allowed || /^no?$/i.test(word) ? trimmed.slice(word.length) : trimmed).trim();
  return reason ? { allowed, reason } : { allowed };
}

import { randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';
import WebSocket from 'ws';
import type { PermissionRequestData } from '../machines/events.ts';
import { PermissionPrompts } from './chat-permissions.ts';
import { Screen } from './chat-screen.ts';

export interface ChatOptions {
  url: string;
  sessionId?: string;
  onboarding: boolean;
  token?: string;
  input?: NodeJS.ReadableStream;
  output?: NodeJS.WritableStream;
}

/**
 * An interactive terminal client: prints replies as they stream and states as they
 * change, sends each typed line as an input, and asks the user about each tool call that
 * needs approval (C19, {@link PermissionPrompts}). Resolves with the exit code.
 */
export function chat(options: ChatOptions): Promise<number> {
  const input = options.input ?? process.stdin;
  const screen = new Screen(options.output ?? process.stdout, { echoes: (input as { isTTY?: boolean }).isTTY === true });
  const print = (text: string) => screen.write(text);
  const line = (text: string) => screen.line(text);
  const ws = new WebSocket(options.url);
  const lines = createInterface({ input, terminal: false });
  const envelope = (type: string, data: object) =>
    JSON.stringify({ version: 'aep/v1', id: randomUUID(), event: { type, data } });
  let sessionId = '';
  const permissions = new PermissionPrompts({
    line,
    ask: (question) => screen.ask(question),
    unask: () => screen.unask(),
    respond: (data) => {
      const id = randomUUID();
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ version: 'aep/v1', id, event: { type: 'permission_response', data } }));
      return id;
    },
    now: Date.now,
  });
  // Lines typed before the handshake wait; at end of input the client leaves once every
  // input it sent has been answered, so `printf 'hi\n' | npm run chat` shows the reply.
  // An input is owed a `done` that lists it, or an `error` naming it (`event_id`): the
  // gateway's rejections (busy, rate limit, shutdown, a completed onboarding…) all do. A
  // command is owed its reply or such an error; `/stop` only its effect, so nothing.
  const queued: string[] = [];
  const outstanding = new Set<string>();
  let ready = false;
  let ending = false;
  const sendLine = (text: string) => {
    const id = randomUUID();
    if (options.onboarding || !/^\/stop(\s|$)/i.test(text)) outstanding.add(id);
    ws.send(JSON.stringify({ version: 'aep/v1', id, event: { type: 'input', data: { content: text } } }));
  };
  const settle = (ids: unknown) => {
    for (const id of Array.isArray(ids) ? ids : [ids]) outstanding.delete(String(id));
    if (ending && ready && outstanding.size === 0) ws.close(1000);
  };

  return new Promise((resolve) => {
    ws.on('open', () => {
      ws.send(
        envelope('init', {
          version: 'aep/v1',
          worker_type: options.onboarding ? 'onboarding' : 'agent',
          ...(options.sessionId && { session_id: options.sessionId }),
          ...(options.token && { auth: { token: options.token } }),
        }),
      );
    });
    ws.on('message', (raw) => {
      const { event } = JSON.parse(raw.toString()) as { event: { type: string; data: Record<string, unknown> } };
      const d = event.data;
      switch (event.type) {
        case 'init_ack':
          if (d.code) return line(`[refused: ${String(d.code)} — ${String(d.error)}]`);
          sessionId = String(d.session_id);
          line(`[connected to ${sessionId} (${String(d.state)}); type a message, Ctrl-D to quit]`);
          ready = true;
          queued.splice(0).forEach(sendLine);
          return settle([]);
        case 'state':
          line(`[${String(d.state)}${d.message ? `: ${String(d.message)}` : ''}]`);
          // Nothing more will be answered in a terminated or deleted session.
          return settle(d.state === 'terminated' || d.state === 'deleted' ? [...outstanding] : []);
        case 'message.start':
          return screen.startReply();
        case 'message.delta':
          return print(String(d.content));
        case 'message.end':
          return screen.endReply();
        case 'message':
          line(`${d.role === 'system' ? '[system] ' : '< '}${String(d.content)}`);
          // A command's reply names it; an onboarding reflection is followed by the done naming its answer.
          return settle(String(d.id).endsWith(':reply') ? String(d.id).slice(0, -':reply'.length) : []);
        case 'question_request': {
          const [q] = d.questions as { question: string }[];
          return line(`? ${q?.question ?? ''}`);
        }
        case 'tool_call':
          return line(`[tool ${String(d.id)}: ${String(d.name)}(${JSON.stringify(d.input)})]`);
        case 'permission_request':
          return permissions.request(d as unknown as PermissionRequestData);
        case 'tool_result': {
          const error = d.error as { code: string; message: string } | undefined;
          // A question this result settles is taken off the screen first, never asked below it.
          permissions.result({ id: String(d.id), status: String(d.status), ...(error && { error }) });
          return line(`[tool ${String(d.id)} ${String(d.status)}: ${error ? `${error.code} — ${error.message}` : JSON.stringify(d.output)}]`);
        }
        case 'done':
          if (!d.success) line(`[turn ended: ${String(d.reason)}]`);
          return settle([...(d.input_ids as string[]), ...((d.cancelled_input_ids as string[] | undefined) ?? [])]);
        case 'error':
          if (permissions.refused(d)) return;
          line(`[error ${String(d.code)}: ${String(d.message)}]`);
          return settle(d.event_id ?? []);
        case 'control':
          return line(`[server: ${String(d.action)}${d.reason ? ` (${String(d.reason)})` : ''}]`);
        default:
          return;
      }
    });
    let unreachable = false;
    ws.on('close', (code, reason) => {
      // A server never reached was said once already, by the error.
      if (!unreachable) print(`[disconnected: ${code}${reason.length ? ` ${reason.toString()}` : ''}]\n`);
      lines.close();
      resolve(code === 1000 || code === 1001 || code === 1005 ? 0 : 1);
    });
    ws.on('error', (error) => {
      unreachable = ws.readyState !== WebSocket.OPEN && !ready;
      print(`[cannot connect to ${options.url}: ${error.message}]\n`);
    });
    lines.on('line', (text) => {
      screen.typed();
      // Enter alone answers a question (no), so the answer comes before the empty-line check.
      if (ws.readyState === WebSocket.OPEN && permissions.answer(text)) return;
      if (text.trim() === '') return;
      if (ready && ws.readyState === WebSocket.OPEN) sendLine(text);
      else queued.push(text);
    });
    lines.on('close', () => {
      ending = true;
      permissions.endInput();
      settle([]);
    });
  });
}

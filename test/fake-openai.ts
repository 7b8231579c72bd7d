import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { filter, firstValueFrom } from 'rxjs';
import { createRuntime, type RuntimeOptions, type SessionEvent } from '../src/index.ts';
import { openaiAgent, type OpenAIAgentOptions } from '../src/openai.ts';

/** A message as the agent sent it (the fields the tests read). */
export interface ChatMessage {
  role: string;
  content?: string | null;
  tool_calls?: { id: string; type: string; function: { name: string; arguments: string } }[];
  tool_call_id?: string;
}

/** One request the server got. */
export interface ChatRequest {
  readonly messages: ChatMessage[];
  readonly tools?: { type: string; function: { name: string; description?: string; parameters?: unknown } }[];
  /** Set when the client closed the connection before the reply was streamed to the end. */
  closedEarly: boolean;
}

/** One streamed chunk's `delta`. */
export interface Delta {
  content?: string;
  tool_calls?: { index: number; id?: string; type?: 'function'; function: { name?: string; arguments: string } }[];
}

/** How the server answers a request: an HTTP error, or deltas streamed one chunk each. */
export type Reply = { readonly status: number; readonly message: string } | { readonly deltas: readonly Delta[]; readonly chunkMs?: number };

/** The words of `text` as deltas, the spaces kept. */
export const words = (text: string): Delta[] => text.split(' ').map((w, i) => ({ content: i ? ` ${w}` : w }));

/**
 * A function call as a server streams it: the first fragment has the index, the id and the
 * name; the arguments follow in `pieces` fragments.
 */
export function toolCall(index: number, id: string, name: string, args: string, pieces = 3): Delta[] {
  const size = Math.ceil(args.length / pieces) || 1;
  const parts = Array.from({ length: Math.ceil(args.length / size) }, (_, i) => args.slice(i * size, (i + 1) * size));
  return [
    { tool_calls: [{ index, id, type: 'function', function: { name, arguments: '' } }] },
    ...parts.map((part) => ({ tool_calls: [{ index, function: { arguments: part } }] })),
  ];
}

/**
 * A local stand-in for an OpenAI-compatible server (node:http on 127.0.0.1): chat
 * completions streamed as server-sent events in the API's format, each request answered
 * with what `respond` says. Every request is kept in `requests`.
 */
export class FakeOpenAI {
  readonly requests: ChatRequest[] = [];
  readonly #respond: (request: ChatRequest) => Reply;
  #server: Server | undefined;

  constructor(respond: (request: ChatRequest) => Reply) {
    this.#respond = respond;
  }

  /** Listens on a free port; resolves with the base URL to give `openaiAgent`. */
  async start(): Promise<string> {
    const server = (this.#server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const request: ChatRequest = { ...(JSON.parse(body) as Omit<ChatRequest, 'closedEarly'>), closedEarly: false };
        this.requests.push(request);
        const reply = this.#respond(request);
        if ('status' in reply) {
          res.writeHead(reply.status, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: { message: reply.message, type: 'server_error' } }));
          return;
        }
        const finish = reply.deltas.some((d) => d.tool_calls) ? 'tool_calls' : 'stop';
        const chunks = [...reply.deltas.map((delta) => chunk(delta, null)), chunk({}, finish)];
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        let finished = false;
        res.on('close', () => {
          if (!finished) request.closedEarly = true;
        });
        const tick = () => {
          if (res.destroyed) return;
          const next = chunks.shift();
          if (!next) {
            finished = true;
            return void res.end('data: [DONE]\n\n');
          }
          res.write(`data: ${JSON.stringify(next)}\n\n`);
          setTimeout(tick, reply.chunkMs ?? 0);
        };
        tick();
      });
    }));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  }

  close(): Promise<void> {
    const server = this.#server;
    if (!server) return Promise.resolve();
    server.closeAllConnections();
    return new Promise((resolve) => server.close(() => resolve()));
  }
}

function chunk(delta: Delta, finish: string | null) {
  return { id: 'chatcmpl-fake', object: 'chat.completion.chunk', created: 0, model: 'fake', choices: [{ index: 0, delta, finish_reason: finish }] };
}

/**
 * A runtime (real clock, no debounce) whose agent is `openaiAgent` against `baseURL`, with
 * its events recorded. `next` waits for an event still to come: call it before the action.
 */
export function openaiRuntime(baseURL: string, options: Partial<RuntimeOptions> = {}, agent: Partial<OpenAIAgentOptions> = {}) {
  const runtime = createRuntime({ agent: openaiAgent({ model: 'fake', baseURL, apiKey: 'test', ...agent }), debounceMs: 0, ...options });
  const events: SessionEvent[] = [];
  runtime.events$.subscribe((e) => events.push(e));
  const next = (match: (e: SessionEvent) => boolean) => firstValueFrom(runtime.events$.pipe(filter(match)));
  const done = (sessionId: string) => next((e) => e.type === 'done' && e.sessionId === sessionId);
  const text = (sessionId: string) =>
    events.flatMap((e) => (e.type === 'message.delta' && e.sessionId === sessionId ? [e.data.content] : [])).join('');
  return { runtime, events, next, done, text };
}

/**
 * A fake OpenAI-compatible chat completions server for the cluster tests: nodes run the
 * real `--agent openai` against it, each with a base URL of its own (`/<node>/v1`), so
 * every agent call is counted and attributed to the node that made it. Replies stream
 * slowly, one chunk every `chunkMs`, so a test can act mid-turn.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

export interface ModelCall {
  /** The node whose base URL was called. */
  readonly node: string;
  /** The contents of the user messages the turn sent (its batch), in order. */
  readonly inputs: readonly string[];
  readonly at: number;
  /** Set once the reply was streamed to the end. */
  finished: boolean;
}

export class FakeModel {
  readonly calls: ModelCall[] = [];
  #server: Server | undefined;
  #url = '';
  readonly #chunks: number;
  readonly #chunkMs: number;
  /** Runs as each call arrives (before the reply starts). */
  onCall: (call: ModelCall) => void = () => {};

  constructor({ chunks = 20, chunkMs = 50 }: { chunks?: number; chunkMs?: number } = {}) {
    this.#chunks = chunks;
    this.#chunkMs = chunkMs;
  }

  async start(): Promise<void> {
    this.#server = createServer((req, res) => void this.#handle(req, res));
    await new Promise<void>((resolve) => this.#server!.listen(0, '127.0.0.1', resolve));
    const address = this.#server.address() as { port: number };
    this.#url = `http://127.0.0.1:${address.port}`;
  }

  /** What a node is given as OPENAI_BASE_URL. */
  baseUrl(node: string): string {
    return `${this.#url}/${node}/v1`;
  }

  close(): Promise<void> {
    const server = this.#server;
    if (!server) return Promise.resolve();
    server.closeAllConnections();
    return new Promise((resolve) => server.close(() => resolve()));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const match = /^\/([^/]+)\/v1\/chat\/completions$/.exec(req.url ?? '');
    let body = '';
    for await (const chunk of req) body += String(chunk);
    if (req.method !== 'POST' || !match) return void res.writeHead(404).end();
    const { messages } = JSON.parse(body) as { messages: { role: string; content: string }[] };
    // The batch: the user messages after the last assistant message (before them is history).
    const lastReply = messages.map((m) => m.role).lastIndexOf('assistant');
    const call: ModelCall = { node: match[1]!, inputs: messages.slice(lastReply + 1).filter((m) => m.role === 'user').map((m) => m.content), at: Date.now(), finished: false };
    this.calls.push(call);
    this.onCall(call);
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    let closed = false;
    res.on('close', () => (closed = true));
    for (let i = 0; i < this.#chunks && !closed; i++) {
      await new Promise((resolve) => setTimeout(resolve, this.#chunkMs));
      res.write(`data: ${JSON.stringify(chunk(`${i === 0 ? '' : ' '}w${i}`))}\n\n`);
    }
    if (closed) return;
    res.write(`data: ${JSON.stringify({ ...chunk(''), choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\n`);
    res.end('data: [DONE]\n\n');
    call.finished = true;
  }
}

function chunk(content: string) {
  return { id: 'chatcmpl-fake', object: 'chat.completion.chunk', created: 0, model: 'fake', choices: [{ index: 0, delta: { content }, finish_reason: null }] };
}

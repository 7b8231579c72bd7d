/**
 * One gateway node for bench/cluster.ts, as its own process: what `baton serve --store …
 * --node-id …` starts (the same store, lease renewal, sweep and commit settings, `--debounce-ms
 * 0`), with two differences a benchmark needs and the CLI has no flag for: the per-connection
 * rate limit is off (`serve` keeps the default 20 inputs/s per connection, which would be the
 * figure measured), and the agent is chosen by the input: the demo echo agent with no delay,
 * or, for an input `stream:N`, N deltas one per event-loop tick (the durable-streaming agent of
 * bench/stream.ts).
 *
 * `node --import tsx bench/cluster-node.ts --store sqlite:PATH | postgres://…?schema=S [--node-id ID]`
 * prints `listening ws://…/ws` on stdout; SIGTERM closes it.
 */
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { createRuntime, demoAgent, type Agent, type Store } from '../src/index.ts';
import { createGateway } from '../src/gateway/index.ts';
import { streamingAgent } from './stream.ts';
import { UNLIMITED } from './unlimited.ts';

const { values } = parseArgs({ options: { store: { type: 'string' }, 'node-id': { type: 'string' } } });
const spec = values.store ?? 'memory';

async function openStore(): Promise<Store> {
  if (spec.startsWith('sqlite:')) {
    const { SqliteStore } = await import('../src/sqlite.ts');
    return new SqliteStore(spec.slice('sqlite:'.length));
  }
  const { PostgresStore } = await import('../src/postgres.ts');
  const url = new URL(spec);
  const schema = url.searchParams.get('schema') ?? undefined;
  url.searchParams.delete('schema');
  // As `baton serve` with its defaults: lease TTL 10 s, renewed every 3 s.
  return new PostgresStore({ url: url.href, renewMs: 3000, ...(schema && { schema }), ...(values['node-id'] && { nodeId: values['node-id'] }) });
}

const echo = demoAgent({ delayMs: 0 });
const agent: Agent = (turn) => {
  const stream = /^stream:(\d+)$/.exec(turn.inputs[0]?.content ?? '');
  return stream ? streamingAgent({ deltas: Number(stream[1]), perTick: 1 })(turn) : echo(turn);
};

const logger = pino({ level: 'warn' }, pino.destination(2));
const store = await openStore();
const runtime = createRuntime({
  store,
  agent,
  debounceMs: 0,
  clusterSweepMs: 2000,
  onError: (error) => logger.error({ err: error }, 'reported error'),
});
const gateway = createGateway({ runtime, port: 0, host: '127.0.0.1', logger, ...UNLIMITED });
const { url } = await gateway.listen();
process.stdout.write(`listening ${url}\n`);
let stopping = false;
process.on('SIGTERM', () => {
  if (stopping) return;
  stopping = true;
  gateway.close().then(
    async () => {
      await store.close();
      process.exit(0);
    },
    (error: unknown) => {
      logger.error({ err: error }, 'shutdown failed');
      process.exit(1);
    },
  );
});

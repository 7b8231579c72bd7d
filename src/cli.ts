/**
 * `baton serve` (the default of `npm start`) and `baton chat` (`npm run chat`).
 */
import { parseArgs } from 'node:util';
import { pino, type Level } from 'pino';
import { createRuntime } from './runtime/runtime.ts';
import { createGateway } from './gateway/gateway.ts';
import { MemoryStore, type Store } from './runtime/store.ts';
import { SqliteStore } from './runtime/sqlite-store.ts';
import { demoAgent } from './agents/demo.ts';
import { openaiAgent } from './agents/openai.ts';
import { chat } from './chat.ts';
import { syncMarkdown, visualize } from './visualize/visualize.ts';
import { batonMachines } from './visualize/machines.ts';
import type { BusyPolicy } from '../machines/session.ts';

const USAGE = `Usage: baton <command> [options]   (from a checkout: npm start / npm run chat -- [options])

Commands:
  serve   run the AEP v1 gateway with the demo agent
            --port N            (PORT, default 8080)
            --host HOST         (default 127.0.0.1)
            --token SECRET      (BATON_TOKEN; when set, clients must send it in init.auth.token)
            --agent A           (echo | openai; default echo, the demo agent)
            --model NAME        (BATON_MODEL; the model for --agent openai; OPENAI_BASE_URL and
                                 OPENAI_API_KEY choose the endpoint and key)
            --demo-delay-ms N   (default 20: the demo agent's pause before each word)
            --debounce-ms N     (default 300)
            --max-wait-ms N     (default 2000)
            --busy-policy P     (collect | followup | interrupt | reject | steer; default collect)
            --drain-ms N        (default 5000: how long turns may finish on SIGTERM)
            --max-connections N (default 10000: handshakes past it get GATEWAY_OVERLOAD)
            --store S           (BATON_STORE; memory | sqlite:PATH; default sqlite:./.baton/baton.db)
            --idle-timeout-ms N (default 600000: idle sessions are passivated to the store)
            --max-live-sessions N (default 50000: past it the least recently active idle sessions
                                 are passivated at once)
            --log-level L       (BATON_LOG_LEVEL; fatal|error|warn|info|debug|trace|silent; default warn)
            --inspect           (off by default: report every session actor to the Stately inspector;
                                 needs a browser and the network)
  visualize  write visualizations/<machine>.{mmd,svg,json} for every machine
            --check             (write nothing; exit 1 if a committed file is stale)
            --out DIR           (default visualizations)
  chat    an interactive terminal client
            --url URL           (default ws://127.0.0.1:8080/ws)
            --session ID        (attach to a session; default: a new one)
            --onboarding        (start an onboarding session)
            --token SECRET      (BATON_TOKEN)
`;

const [command = 'serve', ...args] = process.argv.slice(2);

try {
  if (command === 'serve') await serve(args);
  else if (command === 'chat') await runChat(args);
  else if (command === 'visualize') await runVisualize(args);
  else if (command === 'help' || command === '--help' || command === '-h') process.stdout.write(USAGE);
  else fail(`unknown command "${command}"`);
} catch (error) {
  fail(error instanceof Error ? error.message : String(error));
}

async function serve(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      token: { type: 'string' },
      'demo-delay-ms': { type: 'string' },
      'debounce-ms': { type: 'string' },
      'max-wait-ms': { type: 'string' },
      'busy-policy': { type: 'string' },
      'drain-ms': { type: 'string' },
      'max-connections': { type: 'string' },
      'log-level': { type: 'string' },
      inspect: { type: 'boolean' },
      store: { type: 'string' },
      agent: { type: 'string' },
      model: { type: 'string' },
      'idle-timeout-ms': { type: 'string' },
      'max-live-sessions': { type: 'string' },
    },
  });
  const level = (values['log-level'] ?? process.env.BATON_LOG_LEVEL ?? 'warn') as Level | 'silent';
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(level)) {
    throw new Error(`--log-level must be one of fatal, error, warn, info, debug, trace, silent; got "${level}"`);
  }
  const logger = pino({ level }, pino.destination(2));
  const inspector = values.inspect ? await skyInspector(logger) : undefined;
  const store = openStore(values.store ?? process.env.BATON_STORE ?? 'sqlite:./.baton/baton.db');
  const runtime = createRuntime({
    store,
    idleTimeoutMs: int('--idle-timeout-ms', values['idle-timeout-ms'], 600_000),
    maxLiveSessions: int('--max-live-sessions', values['max-live-sessions'], 50_000),
    ...(inspector && { inspect: inspector }),
    agent: chooseAgent(values.agent ?? 'echo', values.model ?? process.env.BATON_MODEL, int('--demo-delay-ms', values['demo-delay-ms'], 20)),
    debounceMs: int('--debounce-ms', values['debounce-ms'], 300),
    maxWaitMs: int('--max-wait-ms', values['max-wait-ms'], 2000),
    busyPolicy: (values['busy-policy'] ?? 'collect') as BusyPolicy,
  });
  const token = values.token ?? process.env.BATON_TOKEN;
  const gateway = createGateway({
    runtime,
    port: int('--port', values.port ?? process.env.PORT, 8080),
    host: values.host ?? '127.0.0.1',
    drainMs: int('--drain-ms', values['drain-ms'], 5000),
    maxConnections: int('--max-connections', values['max-connections'], 10_000),
    logger,
    ...(token ? { token } : {}),
  });
  const { url, host, port } = await gateway.listen();
  process.stdout.write(`Baton gateway on ${url} (health: http://${host}:${port}/healthz, metrics: /metrics)\n`);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'signal received');
    gateway.close().then(
      () => {
        store.close();
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

/** `--inspect`: every session actor reports to Stately's hosted inspector (needs the network and a browser). */
async function skyInspector(logger: { error(obj: object, msg: string): void }) {
  const { createSkyInspector } = await import('@statelyai/inspect');
  const inspector = createSkyInspector({ onerror: (error) => logger.error({ err: error }, 'inspector error') });
  process.stdout.write('Stately inspector on: sessions report to Stately Sky; it prints the URL to open.\n');
  return inspector.inspect;
}

async function runChat(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      url: { type: 'string' },
      session: { type: 'string' },
      onboarding: { type: 'boolean' },
      token: { type: 'string' },
    },
  });
  const token = values.token ?? process.env.BATON_TOKEN;
  const code = await chat({
    url: values.url ?? 'ws://127.0.0.1:8080/ws',
    onboarding: values.onboarding ?? false,
    ...(values.session ? { sessionId: values.session } : {}),
    ...(token ? { token } : {}),
  });
  process.exit(code);
}

async function runVisualize(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, strict: true, options: { check: { type: 'boolean' }, out: { type: 'string' } } });
  const check = values.check ?? false;
  const result = await visualize(batonMachines, values.out ?? 'visualizations', { check });
  const readmeStale = await syncMarkdown(batonMachines, 'README.md', { check }).catch(() => false);
  const changed = [...result.changed, ...(readmeStale ? ['README.md'] : [])];
  const unchanged = result.unchanged;
  for (const file of changed) process.stdout.write(`${check ? 'stale' : 'wrote'} ${file}\n`);
  process.stdout.write(`${unchanged.length} up to date, ${changed.length} ${check ? 'stale' : 'written'}\n`);
  if (check && changed.length > 0) {
    process.stderr.write('baton: visualizations are stale; run `npm run visualize` and commit the result\n');
    process.exit(1);
  }
}

/** `echo` (the demo agent) or `openai` (any OpenAI-compatible API: OPENAI_BASE_URL, OPENAI_API_KEY). */
function chooseAgent(name: string, model: string | undefined, demoDelayMs: number) {
  if (name === 'echo') return demoAgent({ delayMs: demoDelayMs });
  if (name === 'openai') {
    if (!model) throw new Error('--agent openai needs --model NAME (or BATON_MODEL)');
    return openaiAgent({ model });
  }
  throw new Error(`--agent must be "echo" or "openai", got "${name}"`);
}

/** `memory` or `sqlite:PATH`. */
function openStore(spec: string): Store {
  if (spec === 'memory') return new MemoryStore();
  if (spec.startsWith('sqlite:') && spec.length > 'sqlite:'.length) return new SqliteStore(spec.slice('sqlite:'.length));
  throw new Error(`--store must be "memory" or "sqlite:PATH", got "${spec}"`);
}

function int(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${flag} must be a non-negative integer, got "${value}"`);
  return n;
}

function fail(message: string): never {
  process.stderr.write(`baton: ${message}\n\n${USAGE}`);
  process.exit(2);
}

/**
 * `baton serve`: the gateway with the demo (or an OpenAI-compatible) agent on a store.
 * Optional peers (better-sqlite3, openai, @statelyai/inspect) load only when chosen.
 */
import { isLoopback } from '../gateway/web-origin.ts';
import { parseArgs } from 'node:util';
import { pino, type Level, type Logger } from 'pino';
import { createRuntime } from '../runtime/runtime.ts';
import { createGateway } from '../gateway/gateway.ts';
import { MemoryStore, StaleEpochError, type Store } from '../runtime/store.ts';
import { isClusterStore } from '../runtime/cluster-store.ts';
import { demoAgent } from '../agents/demo.ts';
import type { Agent } from '../runtime/turn.ts';
import type { BusyPolicy } from '../../machines/session.ts';
import { storeFailure } from './failure.ts';
import { UsageError } from './usage.ts';

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const BUSY_POLICIES = ['collect', 'followup', 'interrupt', 'reject', 'steer'];

export async function serve(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      token: { type: 'string' },
      'jwt-secret': { type: 'string' },
      'jwt-public-key': { type: 'string' },
      'demo-delay-ms': { type: 'string' },
      'debounce-ms': { type: 'string' },
      'max-wait-ms': { type: 'string' },
      'busy-policy': { type: 'string' },
      'drain-ms': { type: 'string' },
      'max-connections': { type: 'string' },
      'max-connections-per-address': { type: 'string' },
      'max-handshakes-per-address': { type: 'string' },
      'handshake-timeout-ms': { type: 'string' },
      'sessions-per-second': { type: 'string' },
      'max-sessions-per-principal': { type: 'string' },
      insecure: { type: 'boolean' },
      'log-level': { type: 'string' },
      inspect: { type: 'boolean' },
      store: { type: 'string' },
      'node-id': { type: 'string' },
      'lease-ttl-ms': { type: 'string' },
      'cluster-sweep-ms': { type: 'string' },
      agent: { type: 'string' },
      model: { type: 'string' },
      'idle-timeout-ms': { type: 'string' },
      'max-live-sessions': { type: 'string' },
      'approval-timeout-ms': { type: 'string' },
    },
  });
  // Everything the command line can get wrong is checked before anything is opened.
  const level = oneOf('--log-level', values['log-level'] ?? env('BATON_LOG_LEVEL') ?? 'warn', LEVELS) as Level | 'silent';
  const busyPolicy = oneOf('--busy-policy', values['busy-policy'] ?? 'collect', BUSY_POLICIES) as BusyPolicy;
  const storeSpec = parseStore(values.store ?? env('BATON_STORE') ?? 'sqlite:./.baton/baton.db', values['node-id'] ?? env('BATON_NODE_ID'));
  const leaseTtlMs = clusterOnly('--lease-ttl-ms', storeSpec, int('--lease-ttl-ms', values['lease-ttl-ms'], 10_000, { min: 100, max: 600_000 }), values['lease-ttl-ms']);
  const clusterSweepMs = clusterOnly('--cluster-sweep-ms', storeSpec, int('--cluster-sweep-ms', values['cluster-sweep-ms'], 2000, { min: 10, max: 600_000 }), values['cluster-sweep-ms']);
  const settings = {
    idleTimeoutMs: int('--idle-timeout-ms', values['idle-timeout-ms'], 600_000, { min: 1 }),
    maxLiveSessions: int('--max-live-sessions', values['max-live-sessions'], 50_000, { min: 1 }),
    debounceMs: int('--debounce-ms', values['debounce-ms'], 300),
    maxWaitMs: int('--max-wait-ms', values['max-wait-ms'], 2000),
    approvalTimeoutMs: int('--approval-timeout-ms', values['approval-timeout-ms'], 300_000, { min: 1 }),
  };
  const demoDelayMs = int('--demo-delay-ms', values['demo-delay-ms'], 20);
  const port = int('--port', values.port ?? env('PORT'), 8080, { max: 65_535 });
  const drainMs = int('--drain-ms', values['drain-ms'], 5000);
  const maxConnections = int('--max-connections', values['max-connections'], 10_000, { min: 1 });
  const agentName = oneOf('--agent', values.agent ?? 'echo', ['echo', 'openai']);
  const model = values.model ?? env('BATON_MODEL');
  if (agentName === 'openai' && !model) throw new UsageError('--agent openai needs --model NAME (or BATON_MODEL)');
  const { token, jwt } = await authOptions(values.token, values['jwt-secret'], values['jwt-public-key']);
  const admission = {
    maxConnectionsPerAddress: int('--max-connections-per-address', values['max-connections-per-address'], 256, { min: 1 }),
    maxHandshakesPerAddress: int('--max-handshakes-per-address', values['max-handshakes-per-address'], 32, { min: 1 }),
    handshakeTimeoutMs: int('--handshake-timeout-ms', values['handshake-timeout-ms'], 5000, { min: 1, max: 30_000 }),
  };
  const sessionsPerSecond = int('--sessions-per-second', values['sessions-per-second'], 10, { min: 1 });
  const maxSessionsPerPrincipal = int('--max-sessions-per-principal', values['max-sessions-per-principal'], 1000, { min: 1 });
  const host = values.host ?? '127.0.0.1';
  // Safe by default: a gateway reachable from other machines has authentication, or says it has none on purpose.
  if (!isLoopback(host) && !token && !jwt && !values.insecure) {
    throw new UsageError(`--host ${host} is reachable from other machines: set --token, --jwt-secret or --jwt-public-key, or pass --insecure to serve it without authentication`);
  }

  const logger = pino({ level }, pino.destination(2));
  if (!isLoopback(host) && !token && !jwt) process.stderr.write(`baton: warning: --insecure: ${host} is served without authentication\n`);
  const agent = agentName === 'openai' ? await openai(model!) : demoAgent({ delayMs: demoDelayMs });
  const inspector = values.inspect ? await skyInspector(logger) : undefined;
  const store = await openStore(storeSpec, leaseTtlMs);
  let fenced: (error: StaleEpochError) => void = () => {};
  const onError = (error: unknown) => {
    // A cluster node that lost its lease drops its sessions and rejoins by itself (the store
    // does): it goes on serving. Only a store taken over by a newer process ends this one.
    if (error instanceof StaleEpochError && isClusterStore(store)) logger.warn({ err: error }, 'cluster lease lost: sessions dropped, rejoining');
    else if (error instanceof StaleEpochError) fenced(error);
    else logger.error({ err: error }, 'reported error');
  };
  const runtime = createRuntime({ store, ...settings, clusterSweepMs, busyPolicy, agent, onError, ...(inspector && { inspect: inspector }) });
  const gateway = createGateway({
    runtime,
    port,
    host,
    drainMs,
    maxConnections,
    ...admission,
    sessionRate: { perSecond: sessionsPerSecond, burst: 2 * sessionsPerSecond },
    maxSessionsPerPrincipal,
    logger,
    ...(token !== undefined && { token }),
    ...(jwt && { jwt }),
  });
  const { url, host: boundHost, port: bound } = await gateway.listen().catch(async (error: unknown) => {
    await runtime.shutdown({ drainMs: 0 }).catch(() => {});
    await store.close();
    throw error;
  });
  const http = `http://${boundHost}:${bound}`;
  process.stdout.write(`Baton gateway on ${url} (inspector: ${http}/inspect, health: ${http}/healthz, metrics: ${http}/metrics)\n`);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'signal received');
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
  };
  // C17: a newer process took the store over. This one serves nothing more: say who, exit 1.
  fenced = (error) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`baton: ${error.message}\n`);
    void gateway.close().finally(() => process.exit(1));
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

/**
 * C18: the static token and signed tokens. An empty token is an error, never "no
 * authentication": a deploy script whose secret variable came out empty must not open the
 * gateway to everyone.
 */
async function authOptions(
  tokenFlag: string | undefined,
  secretFlag: string | undefined,
  publicKeyFile: string | undefined,
): Promise<{ token: string | undefined; jwt: { secret: string } | { publicKey: string } | undefined }> {
  const token = tokenFlag ?? process.env.BATON_TOKEN;
  if (token !== undefined && token.trim() === '') {
    throw new UsageError(`${tokenFlag !== undefined ? '--token' : 'BATON_TOKEN'} is empty: give a token, or leave it out to run without authentication`);
  }
  const secret = secretFlag ?? process.env.BATON_JWT_SECRET;
  if (secret !== undefined && secret.length < 32) {
    throw new UsageError(`${secretFlag !== undefined ? '--jwt-secret' : 'BATON_JWT_SECRET'} must be at least 32 characters (an HS256 key of 256 bits), got ${secret.length}`);
  }
  if (secret !== undefined && publicKeyFile !== undefined) throw new UsageError('--jwt-secret and --jwt-public-key exclude each other: choose one way to sign tokens');
  if (publicKeyFile === '') throw new UsageError('--jwt-public-key needs a FILE');
  if (publicKeyFile === undefined) return { token, jwt: secret === undefined ? undefined : { secret } };
  const { readFile } = await import('node:fs/promises');
  const { createPublicKey } = await import('node:crypto');
  let pem: string;
  try {
    pem = await readFile(publicKeyFile, 'utf8');
    createPublicKey(pem);
  } catch (error) {
    throw new UsageError(`--jwt-public-key ${publicKeyFile}: not a readable PEM public key or certificate (${error instanceof Error ? error.message : String(error)})`);
  }
  return { token, jwt: { publicKey: pem } };
}

/** `--agent openai`: any OpenAI-compatible API (OPENAI_BASE_URL, OPENAI_API_KEY). */
async function openai(model: string): Promise<Agent> {
  if (!process.env.OPENAI_API_KEY && !process.env.OPENAI_BASE_URL) {
    throw new Error('--agent openai needs an API key: set OPENAI_API_KEY (or OPENAI_BASE_URL for a local server that needs none)');
  }
  const { openaiAgent } = await import('../agents/openai.ts');
  return openaiAgent({ model });
}

/** `--inspect`: every session actor reports to Stately's hosted inspector (needs the network and a browser). */
async function skyInspector(logger: Logger) {
  const { importPeer } = await import('../peer.ts');
  const { createSkyInspector } = await importPeer<typeof import('@statelyai/inspect')>('@statelyai/inspect', '--inspect');
  const inspector = createSkyInspector({ onerror: (error) => logger.error({ err: error }, 'inspector error') });
  process.stdout.write('Stately inspector on: sessions report to Stately Sky; it prints the URL to open.\n');
  return inspector.inspect;
}

type StoreSpec =
  | { kind: 'memory' }
  | { kind: 'sqlite'; path: string; spec: string }
  | { kind: 'postgres'; url: string; spec: string; nodeId: string | undefined; schema: string | undefined };

/**
 * `memory`, `sqlite:PATH` or `postgres://…` (a cluster node; `--node-id` names it). A
 * `schema` query parameter of a postgres URL chooses the PostgreSQL schema (the cluster):
 * it is taken out of the URL, which would otherwise send it to the server as a setting.
 */
function parseStore(spec: string, nodeId: string | undefined): StoreSpec {
  const postgres = /^postgres(ql)?:\/\//.test(spec);
  if (nodeId !== undefined && !postgres) throw new UsageError('--node-id names a cluster node: it needs --store postgres://…');
  if (nodeId !== undefined && !/^[A-Za-z0-9._-]{1,200}$/.test(nodeId)) throw new UsageError(`--node-id must be letters, digits, ".", "_" or "-", got "${nodeId}"`);
  if (spec === 'memory') return { kind: 'memory' };
  if (spec.startsWith('sqlite:') && spec.length > 'sqlite:'.length) return { kind: 'sqlite', path: spec.slice('sqlite:'.length), spec };
  if (postgres) {
    const { url, schema } = withoutSchema(spec);
    if (schema !== undefined && !/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
      throw new UsageError(`the schema parameter of --store must be a lower-case identifier (letters, digits, "_"), got "${schema}"`);
    }
    return { kind: 'postgres', url, spec: redact(spec), nodeId, schema };
  }
  throw new UsageError(`--store must be "memory", "sqlite:PATH" or "postgres://…", got "${spec}"`);
}

/** A postgres URL without its `schema` query parameter, and that parameter. */
function withoutSchema(spec: string): { url: string; schema: string | undefined } {
  let parsed: URL;
  try {
    parsed = new URL(spec);
  } catch {
    return { url: spec, schema: undefined }; // the client says what is wrong with it
  }
  const schema = parsed.searchParams.get('schema') ?? undefined;
  if (schema === undefined) return { url: spec, schema };
  parsed.searchParams.delete('schema');
  return { url: parsed.href, schema };
}

/** A cluster option: refused with any store but PostgreSQL, where it means nothing. */
function clusterOnly(flag: string, spec: StoreSpec, value: number, given: string | undefined): number {
  if (given !== undefined && spec.kind !== 'postgres') throw new UsageError(`${flag} is a cluster option: it needs --store postgres://…`);
  return value;
}

/** A connection URL without its password, for messages. */
function redact(url: string): string {
  return url.replace(/\/\/([^:/@]+):[^@]*@/, '//$1:***@');
}

async function openStore(spec: StoreSpec, leaseTtlMs: number): Promise<Store> {
  if (spec.kind === 'memory') return new MemoryStore();
  try {
    if (spec.kind === 'postgres') {
      const { PostgresStore } = await import('../runtime/postgres-store.ts');
      // Renewed three times per TTL, at most every 3 s (the store's default): a renewal or two may fail without loss.
      const renewMs = Math.min(3000, Math.floor(leaseTtlMs / 3));
      return new PostgresStore({ url: spec.url, leaseTtlMs, renewMs, ...(spec.nodeId && { nodeId: spec.nodeId }), ...(spec.schema && { schema: spec.schema }) });
    }
    const { SqliteStore } = await import('../runtime/sqlite-store.ts');
    return new SqliteStore(spec.path);
  } catch (error) {
    throw storeFailure(spec.spec, error);
  }
}


/** An environment variable; set but empty counts as unset. */
function env(name: string): string | undefined {
  return process.env[name] || undefined;
}

function oneOf(flag: string, value: string, allowed: readonly string[]): string {
  if (!allowed.includes(value)) throw new UsageError(`${flag} must be one of ${allowed.join(', ')}; got "${value}"`);
  return value;
}

function int(flag: string, value: string | undefined, fallback: number, { min = 0, max = 2_147_483_647 } = {}): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < min || n > max) {
    const range = max === 2_147_483_647 ? (min === 0 ? 'a non-negative integer' : `an integer of at least ${min}`) : `an integer from ${min} to ${max}`;
    throw new UsageError(`${flag} must be ${range}, got "${value}"`);
  }
  return n;
}

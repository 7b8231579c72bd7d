/**
 * The soak's gateway processes (test/soak/server.ts), seen from the orchestrator: started,
 * asked for their stats, killed, stopped. What a gateway prints about its store goes into
 * the history as it comes: sessions a failed commit stopped (`FAILED`), and a cluster
 * node's committed steps with their epochs (`COMMIT`). Each process started has a name of
 * its own (`proc`), which its start, kill and exit records and its tools' log carry.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { HistoryWriter } from './history.ts';

const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));
const now = () => performance.timeOrigin + performance.now();

export interface Stats {
  heap: number;
  handles: number;
  behaviours: Record<string, number>;
  loopDelayMs: { p99: number; max: number };
  health: { ok: boolean; failedSessions: number; fencedCommits: number; node?: { id: string; incarnation: number } };
}

export interface Gateway {
  readonly child: ChildProcess;
  readonly port: number;
  /** On a cluster: the node's index (its `--node-id` is `soak-n<index>`). */
  readonly node: number | undefined;
  /** This process's name: `p0`, `p1`, … in the order they were started. */
  readonly proc: string;
  stats(): Promise<Stats>;
  /** Starts or ends the store fault (SQLite only); answers what the store refused so far. */
  store(failing: boolean): Promise<{ failing: boolean; refused: number; failedSessions: number }>;
  /** SIGKILL, on plan; resolves once it is gone. */
  kill(): Promise<void>;
  /** SIGTERM (a graceful shutdown); resolves once it exited. */
  stop(): Promise<void>;
}

export interface GatewayOptions {
  readonly seed: number;
  readonly faults: boolean;
  readonly plant: string | undefined;
  /** The gateway's store: a SQLite file, or a cluster's PostgreSQL server and schema. */
  readonly store: { db: string } | { url: string; schema: string };
  readonly log: HistoryWriter;
  /** The run's directory: each process appends its tools' executions to `tools-<proc>.jsonl` there. */
  readonly dir: string;
}

export const nodeId = (node: number) => `soak-n${node}`;

/** The tools' execution logs of every process started in `dir` (C19). */
export const toolLogs = (dir: string) => readdirSync(dir).filter((f) => /^tools-p\d+\.jsonl$/.test(f)).map((f) => join(dir, f));

let started = 0;

/** Starts a gateway process (on a cluster: node `node`); resolves once it listens. */
export async function startGateway(options: GatewayOptions, node: number | undefined, port = 0): Promise<Gateway> {
  const { seed, faults, plant, store, log, dir } = options;
  const proc = `p${started++}`;
  const args = ['--expose-gc', '--import', 'tsx', here('./server.ts'), '--port', String(port), '--seed', String(seed), '--proc', proc, '--tool-log', join(dir, `tools-${proc}.jsonl`)];
  if ('db' in store) args.push('--db', store.db);
  else args.push('--store', store.url, '--schema', store.schema, '--node-id', nodeId(node ?? 0));
  if (plant) args.push('--plant', plant);
  if (!faults) args.push('--faults', 'off');
  const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const waiting: ((line: string) => void)[] = [];
  const which = node === undefined ? { proc } : { node, proc };
  lines.on('line', (line) => {
    if (line.startsWith('COMMIT ')) {
      const { session, from, to, epoch, inc } = JSON.parse(line.slice('COMMIT '.length)) as { session: string; from: number; to: number; epoch: number; inc: number };
      log.write({ k: 'commit', t: now(), node: node ?? 0, inc, session, from, to, epoch });
    } else if (line.startsWith('FAILED ')) {
      // A session a failed commit stopped (C16): into the history, for the checker.
      const { session, seq } = JSON.parse(line.slice('FAILED '.length)) as { session: string; seq: number };
      log.write({ k: 'store', t: now(), event: 'failed', session, seq });
    } else waiting.shift()?.(line);
  });
  const next = () => new Promise<string>((resolve) => waiting.push(resolve));
  let planned = false;
  const exited = new Promise<void>((resolve) =>
    child.once('exit', (code) => {
      log.write({ k: 'server', t: now(), event: 'exit', planned, code, ...which });
      resolve();
    }),
  );
  const ready = await next();
  log.write({ k: 'server', t: now(), event: 'start', ...which });
  return {
    child,
    port: Number(ready.replace(/^READY /, '')),
    node,
    proc,
    async stats() {
      const line = next();
      child.stdin!.write('stats\n');
      return JSON.parse((await line).replace(/^STATS /, ''));
    },
    async store(failing) {
      const line = next();
      child.stdin!.write(failing ? 'store fail\n' : 'store ok\n');
      const answer = JSON.parse((await line).replace(/^STORE /, ''));
      log.write({ k: 'store', t: now(), event: 'fault', on: failing });
      return answer;
    },
    async kill() {
      planned = true;
      log.write({ k: 'server', t: now(), event: 'kill', planned: true, ...which });
      child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      planned = true;
      child.kill('SIGTERM');
      await exited;
    },
  };
}

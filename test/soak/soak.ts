/**
 * `npm run soak`: a real gateway process on a SQLite store, driven from client processes on
 * 127.0.0.1 with seeded chaos, one SIGKILL of the gateway mid-run and a restart on the same
 * store, then a store fault (every write fails as on a full disk for 1–2 s, at a seeded time
 * in the middle third); then the checker proves the contracts over the whole history.
 *
 *   npm run soak -- [--sessions 2000] [--seconds 60] [--seed N] [--faults on|off] [--plant overlap]
 *
 * Prints a summary table and, last, one line of JSON; exits 1 on any violation, printing the
 * shortest piece of history that shows it and the seed to replay the run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { check, RESOURCE_BOUND, type Violation } from './checker.ts';
import { historyWriter, readHistory } from './history.ts';
import { hash, prng } from './random.ts';
import { SOAK_SETTINGS } from './settings.ts';

const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));
const { values } = parseArgs({
  options: {
    sessions: { type: 'string' },
    seconds: { type: 'string' },
    seed: { type: 'string' },
    faults: { type: 'string' },
    plant: { type: 'string' },
    clients: { type: 'string' },
    keep: { type: 'boolean' },
  },
});
const sessions = Number(values.sessions ?? 2000);
const seconds = Number(values.seconds ?? 60);
const seed = Number(values.seed ?? Math.floor(Math.random() * 1_000_000));
const faults = (values.faults ?? 'on') !== 'off';
const clients = Number(values.clients ?? 2);
const progress = (text: string) => process.stderr.write(`[soak] ${text}\n`);
const now = () => performance.timeOrigin + performance.now();

const dir = mkdtempSync(join(tmpdir(), 'baton-soak-'));
const db = join(dir, 'soak.db');
const serverLog = historyWriter(join(dir, 'server.jsonl'));
progress(`seed ${seed}: ${sessions} sessions, ${seconds} s, faults ${faults ? 'on' : 'off'}${values.plant ? `, planted bug: ${values.plant}` : ''} (${dir})`);

interface Health {
  ok: boolean;
  failedSessions: number;
}
interface Server {
  child: ChildProcess;
  port: number;
  stats(): Promise<{ heap: number; handles: number; behaviours: Record<string, number>; loopDelayMs: { p99: number; max: number }; health: Health }>;
  /** Starts or ends the store fault; answers what the store refused so far. */
  store(failing: boolean): Promise<{ failing: boolean; refused: number; failedSessions: number }>;
  planned: boolean;
}

/** Starts the gateway process; resolves once it listens. */
async function startServer(port = 0): Promise<Server> {
  const args = ['--expose-gc', '--import', 'tsx', here('./server.ts'), '--db', db, '--port', String(port), '--seed', String(seed)];
  if (values.plant) args.push('--plant', values.plant);
  if (!faults) args.push('--faults', 'off');
  const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const waiting: ((line: string) => void)[] = [];
  lines.on('line', (line) => {
    // A session a failed commit stopped (C16): into the history, for the checker.
    if (line.startsWith('FAILED ')) {
      const { session, seq } = JSON.parse(line.slice('FAILED '.length)) as { session: string; seq: number };
      serverLog.write({ k: 'store', t: now(), event: 'failed', session, seq });
    } else waiting.shift()?.(line);
  });
  const next = () => new Promise<string>((resolve) => waiting.push(resolve));
  const server: Server = {
    child,
    port: 0,
    planned: false,
    async stats() {
      const line = next();
      child.stdin!.write('stats\n');
      return JSON.parse((await line).replace(/^STATS /, ''));
    },
    async store(failing) {
      const line = next();
      child.stdin!.write(failing ? 'store fail\n' : 'store ok\n');
      const answer = JSON.parse((await line).replace(/^STORE /, ''));
      serverLog.write({ k: 'store', t: now(), event: 'fault', on: failing });
      return answer;
    },
  };
  child.once('exit', (code) => serverLog.write({ k: 'server', t: now(), event: 'exit', planned: server.planned, code }));
  const ready = await next();
  server.port = Number(ready.replace(/^READY /, ''));
  serverLog.write({ k: 'server', t: now(), event: 'start' });
  return server;
}

/** The last seq the killed process stored, per session: read straight from its file. */
function boundaries(): Map<string, number> {
  const file = new Database(db, { readonly: true });
  try {
    const rows = file.prepare('SELECT id AS session, seq FROM sessions UNION ALL SELECT session_id AS session, MAX(last_seq) AS seq FROM event_steps GROUP BY session_id').all() as { session: string; seq: number }[];
    const last = new Map<string, number>();
    for (const { session, seq } of rows) last.set(session, Math.max(last.get(session) ?? 0, seq));
    return last;
  } finally {
    file.close();
  }
}

function runClient(i: number, port: number): Promise<{ injected: Record<string, number>; connections: number; unfinished: number }> {
  const per = Math.ceil(sessions / clients);
  const args = ['--import', 'tsx', here('./driver.ts'), '--url', `ws://127.0.0.1:${port}/ws`, '--from', String(i * per), '--to', String(Math.min(sessions, (i + 1) * per)),
    '--seed', String(seed), '--seconds', String(seconds), '--out', join(dir, `client-${i}.jsonl`), '--name', `c${i}`, '--faults', faults ? 'on' : 'off',
    '--kind', values.plant ? 'planted' : 'agent', '--wind-down', values.plant ? '3000' : '15000'];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  return new Promise((resolve, reject) =>
    child.once('exit', (code) => {
      const done = /DONE (.*)/.exec(out);
      if (code === 0 && done) resolve(JSON.parse(done[1]!));
      else reject(new Error(`soak client ${i} exited with ${code}`));
    }),
  );
}

let server = await startServer();
const start = await server.stats();
const running = Array.from({ length: clients }, (_, i) => runClient(i, server.port));
let killedAt: Map<string, number> | undefined;
let storeFault: { refused: number; failedSessions: number; at: number; length: number } | undefined;
const began = now();
const ticker = setInterval(() => progress(`${Math.round((now() - began) / 1000)} s`), 10_000);
if (faults) {
  await sleep((seconds * 1000) / 2);
  progress('SIGKILL the gateway');
  server.planned = true;
  serverLog.write({ k: 'server', t: now(), event: 'kill', planned: true });
  const exited = new Promise((resolve) => server.child.once('exit', resolve));
  server.child.kill('SIGKILL');
  await exited;
  killedAt = boundaries();
  server = await startServer(server.port);
  progress('gateway restarted on the same store');
  // The store fault, in the restarted process (so the end's heap and handles cover the
  // recovery): 1–2 s (shorter in a run shorter than 24 s, which must still have traffic
  // after it) at a seeded time in the middle third, after the restart has settled.
  const random = prng(hash(seed, 'store fault'));
  const scale = Math.min(1, seconds / 24);
  const length = (1000 + random() * 1000) * scale;
  const earliest = (seconds * 1000) / 2 + 1500 * scale;
  const at = earliest + random() * Math.max(0, (seconds * 1000 * 2) / 3 - length - earliest);
  await sleep(Math.max(0, began + at - now()));
  progress(`store fault: every write fails for ${(length / 1000).toFixed(1)} s`);
  await server.store(true);
  await sleep(length);
  storeFault = { ...(await server.store(false)), at, length };
  progress(`store works again: ${storeFault.refused} writes refused, ${storeFault.failedSessions} sessions stopped`);
}
const driven = await Promise.all(running);
clearInterval(ticker);
progress(`clients done after ${((now() - began) / 1000).toFixed(1)} s; waiting for idle sessions to passivate`);
// Idle sessions are passivated; then the gateway should be back near where it started.
await sleep(SOAK_SETTINGS.idleTimeoutMs + 1500);
const end = await server.stats();
server.planned = true;
const stopped = new Promise((resolve) => server.child.once('exit', resolve));
server.child.kill('SIGTERM');
await stopped;
await serverLog.close();

const history = readHistory([join(dir, 'server.jsonl'), ...Array.from({ length: clients }, (_, i) => join(dir, `client-${i}.jsonl`))]);
const result = check({ history, ...(killedAt && { boundaries: killedAt }), resources: { start, end }, health: end.health });

const injected: Record<string, number> = {};
for (const d of driven) for (const [k, v] of Object.entries(d.injected)) injected[k] = (injected[k] ?? 0) + v;
const behaviours = Object.entries(end.behaviours).map(([k, v]) => `${k} ${v}`).join(', ');
const byContract = (c: string) => result.violations.filter((v) => v.contract === c).length;
const contracts = ['C1', 'C2/C12', 'C8/C9', 'C13', 'C15', 'C16', 'resources'];
const rows: [string, string][] = [
  ['sessions', String(result.stats.sessions)],
  ['connections', String(driven.reduce((n, d) => n + d.connections, 0))],
  ['durable-acked inputs', String(result.stats.inputs)],
  ['turns', String(result.stats.turns)],
  ['onboarding questions asked', String(result.stats.questions)],
  ['dones by outcome', Object.entries(result.stats.outcomes).map(([k, v]) => `${k} ${v}`).join(', ')],
  ['dones with dropped deltas (slow readers)', String(result.stats.droppedDones)],
  ['resumes with last_seq: complete / told incomplete', `${result.stats.resumes.complete} / ${result.stats.resumes.incomplete}`],
  ['frames recorded', String(result.stats.frames)],
  ['client actions and faults', Object.entries(injected).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k} ${v}`).join(', ')],
  ['agent behaviours (after the restart)', behaviours],
  ['gateway kills', faults ? '1 (SIGKILL mid-run, restart on the same store)' : '0'],
  [
    'store fault (every write fails as on a full disk)',
    storeFault
      ? `${(storeFault.length / 1000).toFixed(1)} s from ${(storeFault.at / 1000).toFixed(1)} s: ${storeFault.refused} writes refused, ${storeFault.failedSessions} sessions stopped and re-activated`
      : 'none',
  ],
  ['inputs refused with INTERNAL_ERROR (store) / resent by their client', `${result.stats.refused} / ${injected['resent after a store error'] ?? 0}`],
  ['turns cut short and run again: by the kill / by a failed commit', `${result.stats.rerun.kill} / ${result.stats.rerun.store}`],
  ['gateway health at the end', end.health.ok ? 'ok' : `failing (${end.health.failedSessions} sessions out of service)`],
  ['gateway heap, start → end', `${(start.heap / 1048576).toFixed(1)} → ${(end.heap / 1048576).toFixed(1)} MB (bound ${RESOURCE_BOUND.heapFactor} × start + ${RESOURCE_BOUND.heapSlackBytes / 1048576} MB)`],
  ['gateway event-loop delay after the restart, p99 / max', `${end.loopDelayMs.p99.toFixed(0)} / ${end.loopDelayMs.max.toFixed(0)} ms`],
  ['gateway handles, start → end', `${start.handles} → ${end.handles} (bound start + ${RESOURCE_BOUND.handleSlack})`],
  ['sessions whose stream could not be fully seen', String(result.stats.unverified)],
  ['acked inputs a client stopped waiting for (the checker still looks for their done)', String(driven.reduce((n, d) => n + d.unfinished, 0))],
  ...contracts.map((c): [string, string] => [`violations ${c}`, String(byContract(c))]),
];
process.stdout.write(`\n| soak (seed ${seed}) | |\n|---|---|\n${rows.map(([k, v]) => `| ${k} | ${v} |`).join('\n')}\n\n`);
for (const contract of contracts) {
  const first = result.violations.find((v) => v.contract === contract);
  if (first) printViolation(first);
}
if (result.violations.length > 0) process.stdout.write(`replay with: npm run soak -- --seed ${seed} --sessions ${sessions} --seconds ${seconds}${faults ? '' : ' --faults off'}${values.plant ? ` --plant ${values.plant}` : ''}\n\n`);
const summary = {
  seed, seconds, faults, plant: values.plant ?? null,
  ...result.stats,
  faults_injected: { ...injected, gateway_sigkill: faults ? 1 : 0, store_fault: storeFault?.refused ?? 0 },
  store_fault_sessions_stopped: storeFault?.failedSessions ?? 0,
  agent_behaviours: end.behaviours,
  heap_start: start.heap, heap_end: end.heap, loop_delay_p99_ms: end.loopDelayMs.p99, loop_delay_max_ms: end.loopDelayMs.max, handles_start: start.handles, handles_end: end.handles,
  violations: Object.fromEntries(contracts.map((c) => [c, byContract(c)])),
};
process.stdout.write(`${JSON.stringify(summary)}\n`);
if (!values.keep) rmSync(dir, { recursive: true, force: true });
process.exit(result.violations.length > 0 ? 1 : 0);

function printViolation(v: Violation): void {
  process.stdout.write(`VIOLATION ${v.contract}${v.session ? ` in ${v.session}` : ''}: ${v.message}\n`);
  for (const record of v.slice) process.stdout.write(`  ${JSON.stringify(record)}\n`);
  process.stdout.write('\n');
}

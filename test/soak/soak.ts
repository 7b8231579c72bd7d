/**
 * `npm run soak`: a real gateway process on a SQLite store, driven from client processes on
 * 127.0.0.1 with seeded chaos, one SIGKILL of the gateway mid-run and a restart on the same
 * store, then a store fault (every write fails as on a full disk for 1–2 s, at a seeded time
 * in the middle third); then the checker proves the contracts over the whole history. The
 * agent calls tools, one of which needs approval; the clients allow, deny, ignore or /stop
 * (C19). The clients set schedules of their sessions and cancel some, the agent sets some
 * from inside turns, and they fire as inputs (C20).
 *
 *   npm run soak -- [--sessions 2000] [--seconds 60] [--seed N] [--faults on|off] [--plant overlap|duplicate-result|missing-result|unapproved|double-fire]
 *
 * A cluster: `--nodes 3 --store postgres://…` runs three gateway processes on one
 * PostgreSQL schema of its own (dropped at the end unless `--keep`), each its own node; every
 * client connection goes to one of them, so a session's clients are spread over nodes and
 * its owner may be any. The SIGKILL hits one node, which restarts under a new incarnation
 * (there is no store fault). The checker adds, from the epoch each node printed for each
 * committed step and from the events the store holds at the end: epochs never decrease
 * along a session's seq and no seq is written twice (C17); every event a client saw is the
 * stored event at that seq (C8/C16). Per-node figures (heap, handles, loop delay) are arrays.
 *
 * Prints a summary table and, last, one line of JSON; exits 1 on any violation, printing the
 * shortest piece of history that shows it and the seed to replay the run.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { check, RESOURCE_BOUND, type Contract, type Violation } from './checker.ts';
import { clusterReads } from './cluster-reads.ts';
import { nodeId, startGateway, toolLogs, type Gateway, type GatewayOptions, type Stats } from './gateways.ts';
import { historyWriter, readHistory, type FrameRecord } from './history.ts';
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
    nodes: { type: 'string' },
    store: { type: 'string' },
    keep: { type: 'boolean' },
  },
});
const sessions = Number(values.sessions ?? 2000);
const seconds = Number(values.seconds ?? 60);
const seed = Number(values.seed ?? Math.floor(Math.random() * 1_000_000));
const faults = (values.faults ?? 'on') !== 'off';
const clients = Number(values.clients ?? 2);
const nodes = Number(values.nodes ?? 1);
const pgUrl = values.store;
const cluster = pgUrl !== undefined;
if (cluster && !/^postgres(ql)?:\/\//.test(pgUrl)) throw new Error(`--store must be a postgres:// URL (without it: one gateway on SQLite), got "${pgUrl}"`);
if (!Number.isInteger(nodes) || nodes < 1 || (nodes > 1 && !cluster)) throw new Error(`--nodes must be 1, or more with --store postgres://…; got "${values.nodes}"`);
const progress = (text: string) => process.stderr.write(`[soak] ${text}\n`);
const now = () => performance.timeOrigin + performance.now();

const dir = mkdtempSync(join(tmpdir(), 'baton-soak-'));
const db = join(dir, 'soak.db');
const schema = `soak_${seed}_${Date.now().toString(36)}`;
const serverLog = historyWriter(join(dir, 'server.jsonl'));
const reads = cluster ? clusterReads(pgUrl, schema) : undefined;
const where = cluster ? `${nodes} node${nodes > 1 ? 's' : ''} on PostgreSQL schema ${schema}` : 'SQLite';
progress(`seed ${seed}: ${sessions} sessions, ${seconds} s, ${where}, faults ${faults ? 'on' : 'off'}${values.plant ? `, planted bug: ${values.plant}` : ''} (${dir})`);
const gatewayOptions: GatewayOptions = { seed, faults, plant: values.plant, store: cluster ? { url: pgUrl, schema } : { db }, log: serverLog, dir };
const start$ = (node: number, port = 0) => startGateway(gatewayOptions, cluster ? node : undefined, port);

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

function runClient(i: number, urls: string): Promise<{ injected: Record<string, number>; connections: number; unfinished: number }> {
  const per = Math.ceil(sessions / clients);
  const args = ['--import', 'tsx', here('./driver.ts'), '--url', urls, '--from', String(i * per), '--to', String(Math.min(sessions, (i + 1) * per)),
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

const servers: Gateway[] = await Promise.all(Array.from({ length: nodes }, (_, i) => start$(i)));
const start = await Promise.all(servers.map((server) => server.stats()));
const urls = servers.map((server) => `ws://127.0.0.1:${server.port}/ws`).join(',');
const running = Array.from({ length: clients }, (_, i) => runClient(i, urls));
let killedAt: Map<string, number> | undefined;
/** The node the SIGKILL hits (on a cluster, a seeded choice). */
const victim = cluster ? hash(seed, 'victim') % nodes : 0;
let storeFault: { refused: number; failedSessions: number; at: number; length: number } | undefined;
const began = now();
const ticker = setInterval(() => progress(`${Math.round((now() - began) / 1000)} s`), 10_000);
if (faults) {
  await sleep((seconds * 1000) / 2);
  progress(cluster ? `SIGKILL node ${victim} (${nodeId(victim)})` : 'SIGKILL the gateway');
  const killed = servers[victim]!;
  await killed.kill();
  killedAt = reads ? await reads.boundaries(nodeId(victim)) : boundaries();
  servers[victim] = await start$(victim, killed.port);
  progress(cluster ? `node ${victim} restarted: it rejoins under a new incarnation; its sessions move once its old lease runs out` : 'gateway restarted on the same store');
  // The store fault, in the restarted process (so the end's heap and handles cover the
  // recovery): 1–2 s (shorter in a run shorter than 24 s, which must still have traffic
  // after it) at a seeded time in the middle third, after the restart has settled.
  // (SQLite only: a cluster's store is a server several nodes share.)
  if (!cluster) {
    const random = prng(hash(seed, 'store fault'));
    const scale = Math.min(1, seconds / 24);
    const length = (1000 + random() * 1000) * scale;
    const earliest = (seconds * 1000) / 2 + 1500 * scale;
    const at = earliest + random() * Math.max(0, (seconds * 1000 * 2) / 3 - length - earliest);
    await sleep(Math.max(0, began + at - now()));
    progress(`store fault: every write fails for ${(length / 1000).toFixed(1)} s`);
    const server = servers[0]!;
    await server.store(true);
    await sleep(length);
    storeFault = { ...(await server.store(false)), at, length };
    progress(`store works again: ${storeFault.refused} writes refused, ${storeFault.failedSessions} sessions stopped`);
  }
}
const driven = await Promise.all(running);
clearInterval(ticker);
progress(`clients done after ${((now() - began) / 1000).toFixed(1)} s; waiting for idle sessions to passivate`);
// Idle sessions are passivated; then the gateway should be back near where it started.
await sleep(SOAK_SETTINGS.idleTimeoutMs + 1500);
const end = await Promise.all(servers.map((server) => server.stats()));
await Promise.all(servers.map((server) => server.stop()));
await serverLog.close();

const history = readHistory([join(dir, 'server.jsonl'), ...Array.from({ length: clients }, (_, i) => join(dir, `client-${i}.jsonl`)), ...toolLogs(dir)]);
// What the store holds at the end, for every session a client saw (a cluster only).
const seenSessions = [...new Set(history.filter((r): r is FrameRecord => r.k === 'frame').map((r) => r.session))];
const stored = reads ? await reads.stored(seenSessions) : undefined;
await reads?.close(values.keep ?? false);
const node = (i: number) => (cluster ? { node: i } : {});
const result = check({
  history,
  ...(killedAt && { boundaries: killedAt }),
  resources: servers.map((_, i) => ({ ...node(i), start: start[i]!, end: end[i]! })),
  health: end.map(({ health: { ok, failedSessions } }, i) => ({ ...node(i), ok, failedSessions })),
  ...(stored && { stored }),
});

const tools = result.stats.tools;
const sched = result.stats.schedules;
const injected: Record<string, number> = {};
for (const d of driven) for (const [k, v] of Object.entries(d.injected)) injected[k] = (injected[k] ?? 0) + v;
const seen: Record<string, number> = {};
for (const stats of end) for (const [k, v] of Object.entries(stats.behaviours)) seen[k] = (seen[k] ?? 0) + v;
const behaviours = Object.entries(seen).map(([k, v]) => `${k} ${v}`).join(', ');
const byContract = (c: Contract) => result.violations.filter((v) => v.contract === c).length;
const contracts: Contract[] = ['C1', 'C2/C12', 'C8/C9', 'C13', 'C15', 'C16', 'C19', 'C20', 'resources', ...(cluster ? (['C17', 'C8/C16'] as const) : [])];
/** One gateway's figure, or each node's. */
const each = (figure: (start: Stats, end: Stats) => string) =>
  cluster ? end.map((e, i) => `n${i}: ${figure(start[i]!, e)}`).join('; ') : figure(start[0]!, end[0]!);
const unhealthy = end.filter((e) => !e.health.ok);
const fencedCommits = end.reduce((n, e) => n + e.health.fencedCommits, 0);
const rows: [string, string][] = [
  ...(cluster ? ([['nodes', `${nodes} (PostgreSQL, schema ${schema}); each client connection to one of them by seeded chance`]] as [string, string][]) : []),
  ['sessions', String(result.stats.sessions)],
  ['connections', String(driven.reduce((n, d) => n + d.connections, 0))],
  ['durable-acked inputs', String(result.stats.inputs)],
  ['turns', String(result.stats.turns)],
  ['onboarding questions asked', String(result.stats.questions)],
  ['dones by outcome', Object.entries(result.stats.outcomes).map(([k, v]) => `${k} ${v}`).join(', ')],
  ['dones with dropped deltas (slow readers)', String(result.stats.droppedDones)],
  ['tool calls / results by outcome', `${tools.calls} / ${Object.entries(tools.results).map(([k, v]) => `${k} ${v}`).join(', ')}`],
  ['permission requests / decisions sent: allow, deny / refused', `${tools.requests} / ${tools.decisions.allow}, ${tools.decisions.deny} / ${tools.decisions.refused}`],
  ['tool executions (guarded) / run again after a crash (attempt > 1)', `${tools.executions} (${tools.guardedExecutions}) / ${tools.reruns}`],
  ['schedules set by clients (acked) / refused / by the agent', `${sched.set} / ${sched.refused} / ${sched.byAgent}`],
  ['schedule cancels acked: cancelled / nothing to cancel', `${sched.cancelled} / ${sched.cancelMissed}`],
  ['fires (schedule, due time): taken by a turn / cancelled / refused by the session; of recurring schedules', `${sched.fires}: ${sched.consumed} / ${sched.cancelledFires} / ${sched.refusedFires}; ${sched.recurringFires}`],
  ['fires handed to the agent\'s turns (a re-run is handed its fire again)', String(sched.handed)],
  ['acked one-shots required to have fired (due over 3 s before the end)', String(sched.owed)],
  ['resumes with last_seq: complete / told incomplete', `${result.stats.resumes.complete} / ${result.stats.resumes.incomplete}`],
  ['frames recorded', String(result.stats.frames)],
  ['client actions and faults', Object.entries(injected).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k} ${v}`).join(', ')],
  [cluster ? 'agent behaviours (all nodes, since each one last started)' : 'agent behaviours (after the restart)', behaviours],
  ['gateway kills', !faults ? '0' : cluster ? `1 (SIGKILL of node ${victim} mid-run, restarted under a new incarnation)` : '1 (SIGKILL mid-run, restart on the same store)'],
  [
    'store fault (every write fails as on a full disk)',
    storeFault
      ? `${(storeFault.length / 1000).toFixed(1)} s from ${(storeFault.at / 1000).toFixed(1)} s: ${storeFault.refused} writes refused, ${storeFault.failedSessions} sessions stopped and re-activated`
      : cluster ? 'none (SQLite only)' : 'none',
  ],
  ['inputs refused with INTERNAL_ERROR (store) / resent by their client', `${result.stats.refused} / ${injected['resent after a store error'] ?? 0}`],
  cluster
    ? ['turns cut short and run again: by the kill / by a move to a newer epoch / by a failed commit', `${result.stats.rerun.kill} / ${result.stats.rerun.moved} / ${result.stats.rerun.store}`]
    : ['turns cut short and run again: by the kill / by a failed commit', `${result.stats.rerun.kill} / ${result.stats.rerun.store}`],
  ...(cluster
    ? ([
        ['committed steps recorded with their epoch / most epochs of one session', `${result.stats.commits} / ${result.stats.maxEpoch}`],
        ['events clients saw compared with the stored event at their seq', String(result.stats.storedCompared)],
        ['commits refused as stale (another node had claimed the session)', String(fencedCommits)],
      ] as [string, string][])
    : []),
  ['gateway health at the end', unhealthy.length === 0 ? 'ok' : `failing (${unhealthy.map((e) => e.health.failedSessions).join(', ')} sessions out of service)`],
  ['gateway heap, start → end', `${each((s, e) => `${(s.heap / 1048576).toFixed(1)} → ${(e.heap / 1048576).toFixed(1)} MB`)} (bound ${RESOURCE_BOUND.heapFactor} × start + ${RESOURCE_BOUND.heapSlackBytes / 1048576} MB)`],
  ['gateway event-loop delay after the restart, p99 / max', each((_, e) => `${e.loopDelayMs.p99.toFixed(0)} / ${e.loopDelayMs.max.toFixed(0)} ms`)],
  ['gateway handles, start → end', `${each((s, e) => `${s.handles} → ${e.handles}`)} (bound start + ${RESOURCE_BOUND.handleSlack})`],
  ['sessions whose stream could not be fully seen', String(result.stats.unverified)],
  ['acked inputs a client stopped waiting for (the checker still looks for their done)', String(driven.reduce((n, d) => n + d.unfinished, 0))],
  ...contracts.map((c): [string, string] => [`violations ${c}`, String(byContract(c))]),
];
process.stdout.write(`\n| soak (seed ${seed}) | |\n|---|---|\n${rows.map(([k, v]) => `| ${k} | ${v} |`).join('\n')}\n\n`);
for (const contract of contracts) {
  const first = result.violations.find((v) => v.contract === contract);
  if (first) printViolation(first);
}
if (result.violations.length > 0) {
  const where = cluster ? ` --nodes ${nodes} --store ${pgUrl}` : '';
  process.stdout.write(`replay with: npm run soak -- --seed ${seed} --sessions ${sessions} --seconds ${seconds}${where}${faults ? '' : ' --faults off'}${values.plant ? ` --plant ${values.plant}` : ''}\n\n`);
}
/** One gateway's figure, or on a cluster each node's (an array). */
const figure = <T>(f: (i: number) => T) => (cluster ? servers.map((_, i) => f(i)) : f(0));
const summary = {
  seed, seconds, faults, plant: values.plant ?? null, ...(cluster && { nodes, killed_node: faults ? victim : null, fenced_commits: fencedCommits }),
  ...result.stats,
  faults_injected: { ...injected, gateway_sigkill: faults ? 1 : 0, store_fault: storeFault?.refused ?? 0 },
  store_fault_sessions_stopped: storeFault?.failedSessions ?? 0,
  agent_behaviours: seen,
  heap_start: figure((i) => start[i]!.heap), heap_end: figure((i) => end[i]!.heap),
  loop_delay_p99_ms: figure((i) => end[i]!.loopDelayMs.p99), loop_delay_max_ms: figure((i) => end[i]!.loopDelayMs.max),
  handles_start: figure((i) => start[i]!.handles), handles_end: figure((i) => end[i]!.handles),
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

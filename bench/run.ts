/**
 * `npm run bench` (full) and `npm run bench -- --quick` (under a minute). Baselines and
 * Baton run in the same process, alternating, and the ratios are the result: these
 * machines are shared and noisy, absolute numbers only travel with their ratios.
 * Prints a table, rewrites bench/RESULTS.md and bench/results.svg (full runs only), and
 * ends with one line of JSON holding every figure.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { baton, burst, chain, machineAlone, pqueue, sequential, xstateLoop, type Contender } from './turns.ts';
import { memory } from './memory.ts';
import { gatewayBench } from './gateway.ts';
import { batonMemoryStore, batonSqliteStore, removeTempDbs, streamBench, transactionsPerTurn } from './stream.ts';
import { ratioChart } from './chart.ts';

const { values } = parseArgs({ options: { quick: { type: 'boolean' }, section: { type: 'string' } } });
const quick = values.quick ?? false;
/** RESULTS.md keeps everything from this line on across full runs. */
const NOTES_MARKER = '<!-- notes: kept by bench/run.ts -->';
const size = quick
  ? { sessions: 200, perSession: 50, rounds: 2, memory: 5_000, connections: 20, seconds: 2, streams: 20, deltas: 100, streamSeconds: 1, storeSessions: 100, storePerSession: 10 }
  : { sessions: 1000, perSession: 100, rounds: 3, memory: 100_000, connections: 50, seconds: 5, streams: 50, deltas: 200, streamSeconds: 5, storeSessions: 200, storePerSession: 50 };
/** Deltas the streaming agent emits per event-loop tick: each in its own, as a network stream delivers them. */
const DELTAS_PER_TICK = 1;
const progress = (text: string) => process.stderr.write(`[bench] ${text}\n`);

/** Runs each contender `rounds` times, interleaved, and keeps the median. */
async function alternate(contenders: Contender[], run: (c: Contender) => Promise<number>): Promise<Map<string, number>> {
  const samples = new Map<string, number[]>(contenders.map((c) => [c.name, []]));
  for (let round = 0; round < size.rounds; round++) {
    for (const c of contenders) {
      progress(`${c.name}, round ${round + 1}/${size.rounds}`);
      samples.get(c.name)!.push(await run(c));
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  return new Map([...samples].map(([name, xs]) => [name, median(xs)]));
}

/** Each section runs in a fresh process, so none inherits another's heap (and its GC pauses). */
const sections = {
  async turns() {
    const turns = await alternate([xstateLoop, chain, pqueue, baton], (c) => sequential(c, size.sessions, size.perSession));
    return Object.fromEntries(turns);
  },
  async bursts() {
    const bursts = await alternate([chain, pqueue, baton], (c) => burst(c, size.sessions, size.perSession));
    return Object.fromEntries(bursts);
  },
  async machine() {
    progress('session machine alone');
    return { alone: Math.max(...Array.from({ length: size.rounds }, () => machineAlone(size.sessions, size.perSession))) };
  },
  gateway: () => {
    progress(`gateway: ${size.connections} connections × ${size.seconds} s`);
    return gatewayBench(size.connections, size.seconds);
  },
  memory: () => memory(size.memory, (text) => progress(`memory: ${text}`)),
  async stream() {
    const shape = { deltas: size.deltas, perTick: DELTAS_PER_TICK };
    const figures = await streamBench({ connections: size.streams, seconds: size.streamSeconds, rounds: size.rounds, shape }, (text) => progress(`stream: ${text}`));
    progress('stream: store transactions per turn');
    const paced = await transactionsPerTurn([10, 100], DELTAS_PER_TICK);
    const oneTick = await transactionsPerTurn([10, 100], Number.POSITIVE_INFINITY);
    const undelayed = await transactionsPerTurn([10, 100], DELTAS_PER_TICK, 0);
    return {
      ...figures,
      tx_per_turn_10_deltas: paced[10]!.total,
      tx_per_turn_100_deltas: paced[100]!.total,
      commits_per_turn_10_deltas: paced[10]!.commit,
      commits_per_turn_100_deltas: paced[100]!.commit,
      tx_per_turn_10_deltas_one_tick: oneTick[10]!.total,
      tx_per_turn_100_deltas_one_tick: oneTick[100]!.total,
      tx_per_turn_10_deltas_no_delay: undelayed[10]!.total,
      tx_per_turn_100_deltas_no_delay: undelayed[100]!.total,
    };
  },
  async stores() {
    // A short warm-up of each first (JIT): the quick run is too small to leave it to round 1.
    for (const c of [batonMemoryStore, batonSqliteStore]) await sequential(c, 50, 5);
    const turns = await alternate([batonMemoryStore, batonSqliteStore], (c) => sequential(c, size.storeSessions, size.storePerSession));
    removeTempDbs();
    const memoryStore = turns.get(batonMemoryStore.name)!;
    const sqliteStore = turns.get(batonSqliteStore.name)!;
    return { memory_store_turns_per_s: Math.round(memoryStore), sqlite_store_turns_per_s: Math.round(sqliteStore), sqlite_vs_memory_turns: sqliteStore / memoryStore };
  },
};
type Section = keyof typeof sections;

if (values.section) {
  const figures = await sections[values.section as Section]();
  process.stdout.write(`${JSON.stringify(figures)}\n`);
  process.exit(0);
}

function runSection<K extends Section>(name: K): Awaited<ReturnType<(typeof sections)[K]>> {
  const args = [...process.execArgv, fileURLToPath(import.meta.url), '--section', name, ...(quick ? ['--quick'] : [])];
  const child = spawnSync(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
  if (child.status !== 0) throw new Error(`bench section ${name} failed (exit ${child.status})`);
  return JSON.parse(child.stdout.trim().split('\n').at(-1)!);
}

progress(`${quick ? 'quick' : 'full'} run: ${size.sessions} sessions × ${size.perSession} inputs`);
const turns = new Map<string, number>(Object.entries(runSection('turns')));
const bursts = new Map<string, number>(Object.entries(runSection('bursts')));
const { alone } = runSection('machine');
const gw = runSection('gateway');
const mem = runSection('memory');
const stream = runSection('stream');
const stores = runSection('stores');

const t = (name: string) => turns.get(name)!;
const b = (name: string) => bursts.get(name)!;
const result = {
  quick,
  turns_per_s: Math.round(t('Baton')),
  turns_vs_pqueue: t('Baton') / t('p-queue (concurrency 1)'),
  turns_vs_chain: t('Baton') / t('promise chain'),
  turns_vs_xstate_loop: t('Baton') / t('minimal XState loop'),
  burst_inputs_per_s: Math.round(b('Baton')),
  burst_vs_pqueue: b('Baton') / b('p-queue (concurrency 1)'),
  burst_vs_chain: b('Baton') / b('promise chain'),
  machine_alone_turns_per_s: Math.round(alone),
  ...mem,
  ...gw,
  ...stores,
  ...stream,
};

const fmt = (x: number) => (Math.abs(x) >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(2));
const rows: [string, string, string][] = [];
rows.push(
  ['turns/s, one input at a time', fmt(result.turns_per_s), `× minimal XState loop ${fmt(result.turns_vs_xstate_loop)} · × p-queue ${fmt(result.turns_vs_pqueue)} · × chain ${fmt(result.turns_vs_chain)} (target ≥ 0.7 × loop)`],
  ['inputs/s, bursts', fmt(result.burst_inputs_per_s), `× p-queue ${fmt(result.burst_vs_pqueue)} · × chain ${fmt(result.burst_vs_chain)} (target ≥ 500,000 and ≥ 1.0 × p-queue)`],
  ['session machine alone (no host, no agent), turns/s', fmt(result.machine_alone_turns_per_s), `× minimal XState loop ${fmt(result.machine_alone_turns_per_s / t('minimal XState loop'))}: the engine's share`],
  ['heap per live idle session (B), SQLite store', fmt(result.heap_bytes_per_live_session), 'target ≤ 2,048'],
  ['heap per passivated session (B), SQLite store', fmt(result.heap_bytes_per_passivated_session), 'target ≤ 600'],
  ['the same with the memory store (B): live / passivated', `${fmt(result.heap_bytes_per_live_session_memory_store)} / ${fmt(result.heap_bytes_per_passivated_session_memory_store)}`, 'its stored events and snapshots are heap too'],
  ['SQLite bytes per session', fmt(result.sqlite_bytes_per_session), ''],
  ['gateway round trips/s', fmt(result.gateway_round_trips_per_s), `× bare ws ${fmt(result.gateway_vs_ws)} (target ≥ 0.6)`],
  ['added latency at half load, p50 / p99 (ms)', `${fmt(result.added_p50_ms)} / ${fmt(result.added_p99_ms)}`, 'target p99 < 2'],
  ['re-activate 10k passivated sessions (ms)', fmt(result.reactivate_10k_ms), ''],
  [
    `durable streaming, deltas/s (${result.stream_connections} streams × ${result.stream_deltas_per_turn} deltas, ${result.stream_deltas_per_tick} per tick): gateway on SQLite`,
    fmt(result.stream_sqlite_deltas_per_s),
    `× bare ws ${fmt(result.stream_vs_ws)} (target ≥ 0.35)`,
  ],
  ['the same on the memory store, deltas/s', fmt(result.stream_memory_deltas_per_s), `× bare ws ${fmt(result.stream_memory_vs_ws)}; bare ws: ${fmt(result.stream_bare_ws_deltas_per_s)} deltas/s`],
  ['the same on SQLite with commitDelayMs 0 (a transaction per tick), deltas/s', fmt(result.stream_sqlite_no_delay_deltas_per_s), `× bare ws ${fmt(result.stream_no_delay_vs_ws)}`],
  ['turns/s, one input at a time, SQLite store', fmt(result.sqlite_store_turns_per_s), `× memory store ${fmt(result.sqlite_vs_memory_turns)} (target ≥ 0.8); memory store: ${fmt(result.memory_store_turns_per_s)}`],
  [
    'store transactions per turn, 10 / 100 deltas (one per tick)',
    `${result.tx_per_turn_10_deltas} / ${result.tx_per_turn_100_deltas}`,
    `commits ${result.commits_per_turn_10_deltas} / ${result.commits_per_turn_100_deltas}; all deltas in one tick: ${result.tx_per_turn_10_deltas_one_tick} / ${result.tx_per_turn_100_deltas_one_tick}; with commitDelayMs 0: ${result.tx_per_turn_10_deltas_no_delay} / ${result.tx_per_turn_100_deltas_no_delay} (target: independent of the delta count)`,
  ],
);
const baselines = [...turns].map(([n, v]) => `${n}: ${fmt(v)} turns/s`).join('; ');
const table = ['| measure | Baton | against the baselines |', '|---|---|---|', ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
process.stdout.write(`\n${table}\n\nsequential turns/s — ${baselines}\n\n`);

if (!quick) {
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`;
  // Notes written by hand (profiles, where the time goes) follow a marker and are kept.
  const resultsUrl = new URL('./RESULTS.md', import.meta.url);
  const previous = existsSync(resultsUrl) ? readFileSync(resultsUrl, 'utf8') : '';
  const notes = previous.includes(NOTES_MARKER) ? previous.slice(previous.indexOf(NOTES_MARKER)) : '';
  writeFileSync(
    resultsUrl,
    `# Benchmark results\n\nFull run (\`npm run bench\`) on ${machine}, load average ${loadavg().map((x) => x.toFixed(1)).join(' / ')} at the end. Each section runs in a fresh process; ratios are medians of ${size.rounds} interleaved rounds.\n\n${table}\n\nSequential turns/s of each contender: ${baselines}.\n\n![ratios](results.svg)\n${notes && `\n${notes}`}`,
  );
  writeFileSync(
    new URL('./results.svg', import.meta.url),
    ratioChart([
      ['turns vs XState loop', result.turns_vs_xstate_loop, 0.7],
      ['turns vs p-queue', result.turns_vs_pqueue, 1],
      ['bursts vs p-queue', result.burst_vs_pqueue, 1],
      ['gateway vs bare ws', result.gateway_vs_ws, 0.6],
      ['durable stream vs bare ws', result.stream_vs_ws, 0.35],
      ['SQLite vs memory turns', result.sqlite_vs_memory_turns, 0.8],
    ]),
  );
}
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);

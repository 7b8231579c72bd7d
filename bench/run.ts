/**
 * `npm run bench` (full) and `npm run bench -- --quick` (under a minute). Baselines and
 * Baton run in the same process, alternating, and the ratios are the result: these
 * machines are shared and noisy, absolute numbers only travel with their ratios.
 * Prints a table, rewrites bench/RESULTS.md and bench/results.svg (full runs only), and
 * ends with one line of JSON holding every figure.
 */
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { baton, burst, chain, machineAlone, pqueue, sequential, xstateLoop, type Contender } from './turns.ts';
import { memory } from './memory.ts';
import { gatewayBench } from './gateway.ts';
import { ratioChart } from './chart.ts';

const { values } = parseArgs({ options: { quick: { type: 'boolean' }, section: { type: 'string' } } });
const quick = values.quick ?? false;
const size = quick
  ? { sessions: 200, perSession: 50, rounds: 2, memory: 5_000, connections: 20, seconds: 2 }
  : { sessions: 1000, perSession: 100, rounds: 3, memory: 100_000, connections: 50, seconds: 5 };
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
);
const baselines = [...turns].map(([n, v]) => `${n}: ${fmt(v)} turns/s`).join('; ');
const table = ['| measure | Baton | against the baselines |', '|---|---|---|', ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
process.stdout.write(`\n${table}\n\nsequential turns/s — ${baselines}\n\n`);

if (!quick) {
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`;
  writeFileSync(
    new URL('./RESULTS.md', import.meta.url),
    `# Benchmark results\n\nFull run (\`npm run bench\`) on ${machine}. Each section runs in a fresh process; ratios are medians of ${size.rounds} interleaved rounds.\n\n${table}\n\nSequential turns/s of each contender: ${baselines}.\n\n![ratios](results.svg)\n`,
  );
  writeFileSync(
    new URL('./results.svg', import.meta.url),
    ratioChart([
      ['turns vs XState loop', result.turns_vs_xstate_loop, 0.7],
      ['turns vs p-queue', result.turns_vs_pqueue, 1],
      ['bursts vs p-queue', result.burst_vs_pqueue, 1],
      ['gateway vs bare ws', result.gateway_vs_ws, 0.6],
    ]),
  );
}
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);

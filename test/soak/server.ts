/**
 * The soak's gateway process: the real gateway and runtime on a SQLite store, with the chaos
 * agent. `--plant overlap` serves agent sessions with a deliberately broken machine (an input
 * during a turn starts another turn without ending the first), for the checker to catch.
 *
 * Prints `READY <port>`; answers a `stats` line on stdin with `STATS <json>` (heap after a
 * full GC, active handles, agent behaviours seen). SIGTERM: graceful shutdown, exit 0.
 */
import { createInterface } from 'node:readline';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { enqueueActions } from 'xstate';
import { createRuntime, sessionDefaults, sessionMachine, type SessionContext, type SessionMachineEvent } from '../../src/index.ts';
import { createGateway } from '../../src/gateway/index.ts';
import { SqliteStore } from '../../src/sqlite.ts';
import { agentKind } from '../../src/runtime/agent-kind.ts';
import { BEHAVIOURS, chaosAgent, type Behaviour } from './chaos-agent.ts';
import { SOAK_SETTINGS } from './settings.ts';


const { values } = parseArgs({
  options: { db: { type: 'string' }, port: { type: 'string' }, seed: { type: 'string' }, plant: { type: 'string' }, faults: { type: 'string' } },
});
const seed = Number(values.seed ?? 1);
const seen = Object.fromEntries([...Object.keys(BEHAVIOURS), 'flood'].map((b) => [b, 0])) as Record<Behaviour, number>;
const agent = chaosAgent(seed, SOAK_SETTINGS.turnTimeoutMs, seen, values.faults !== 'off');
const store = new SqliteStore(values.db ?? 'soak.db');

const runtime = createRuntime({
  agent,
  store,
  debounceMs: SOAK_SETTINGS.debounceMs,
  maxWaitMs: SOAK_SETTINGS.maxWaitMs,
  turnTimeoutMs: SOAK_SETTINGS.turnTimeoutMs,
  idleTimeoutMs: SOAK_SETTINGS.idleTimeoutMs,
  ...(values.plant === 'overlap' && { kinds: { planted: plantedKind() } }),
});
const gateway = createGateway({
  runtime,
  port: Number(values.port ?? 0),
  rateLimit: { perSecond: 100, burst: 200 },
  initTimeoutMs: 5000,
  drainMs: 2000,
});
const { port } = await gateway.listen();
const loop = monitorEventLoopDelay({ resolution: 10 });
loop.enable();
process.stdout.write(`READY ${port}\n`);

createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() !== 'stats') return;
  (globalThis as { gc?: () => void }).gc?.();
  const stats = {
    heap: process.memoryUsage().heapUsed,
    handles: process.getActiveResourcesInfo().length,
    behaviours: seen,
    loopDelayMs: { p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 },
  };
  process.stdout.write(`STATS ${JSON.stringify(stats)}\n`);
});
process.on('SIGTERM', () => {
  void gateway.close().then(() => {
    store.close();
    process.exit(0);
  });
});

/** The planted bug: `interrupt` that forgets to end the running turn, for every input during a turn. */
function plantedKind() {
  const broken = sessionMachine.provide({
    guards: { interruptToNext: () => true },
    actions: {
      interruptTurn: enqueueActions(({ context, event, enqueue }) => {
        const e = event as SessionMachineEvent;
        const c = context as SessionContext;
        if (e.type !== 'input') return;
        enqueue.assign({ turn: null, queue: [...c.queue, { kind: 'input' as const, input: e.input }] });
        enqueue.emit({ type: 'receipt', receipt: { status: 'accepted', mode: 'queued' } } as never);
      }),
    } as never,
  });
  const settings = { ...sessionDefaults, ...SOAK_SETTINGS, commandHelp: [] };
  const kind = agentKind({ agent, commands: new Map(), store, historyWindow: 20, settingsFor: () => settings });
  return { ...kind, machine: broken };
}

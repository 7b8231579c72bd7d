/**
 * The soak's gateway process: the real gateway and runtime on a SQLite store, with the chaos
 * agent. `--plant overlap` serves agent sessions with a deliberately broken machine (an input
 * during a turn starts another turn without ending the first), for the checker to catch.
 *
 * Prints `READY <port>`; answers a `stats` line on stdin with `STATS <json>` (heap after a
 * full GC, active handles, agent behaviours seen, runtime health). `store fail` makes every
 * write of the store fail as a full disk does until `store ok` (answered `STORE <json>`); each
 * session a failed commit stops is printed as `FAILED <json>` (C16). SIGTERM: graceful
 * shutdown, exit 0.
 */
import { createInterface } from 'node:readline';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { enqueueActions } from 'xstate';
import Database from 'better-sqlite3';
import { createRuntime, StoreUnavailableError, sessionDefaults, sessionMachine, type SessionContext, type SessionEvent, type SessionMachineEvent } from '../../src/index.ts';
import { createGateway } from '../../src/gateway/index.ts';
import { SqliteStore } from '../../src/sqlite.ts';
import type { StepRecord } from '../../src/runtime/store.ts';
import { agentKind } from '../../src/runtime/agent-kind.ts';
import { BEHAVIOURS, chaosAgent, type Behaviour } from './chaos-agent.ts';
import { SOAK_SETTINGS } from './settings.ts';


const { values } = parseArgs({
  options: { db: { type: 'string' }, port: { type: 'string' }, seed: { type: 'string' }, plant: { type: 'string' }, faults: { type: 'string' } },
});
const seed = Number(values.seed ?? 1);
const seen = Object.fromEntries([...Object.keys(BEHAVIOURS), 'flood'].map((b) => [b, 0])) as Record<Behaviour, number>;
const agent = chaosAgent(seed, SOAK_SETTINGS.turnTimeoutMs, seen, values.faults !== 'off');

/**
 * The store fault: while `failing`, every write (a commit, a retention prune) throws what
 * better-sqlite3 throws on a full disk (SQLITE_FULL, "database or disk is full") before
 * touching the file; reads still work, as they do on a full disk.
 */
class FaultyStore extends SqliteStore {
  failing = false;
  /** Writes refused while failing. */
  refused = 0;
  #check(): void {
    if (!this.failing) return;
    this.refused++;
    throw new Database.SqliteError('database or disk is full', 'SQLITE_FULL');
  }
  override commit(steps: readonly StepRecord[]): void {
    if (this.failing) for (const sessionId of new Set(steps.map((step) => step.sessionId))) this.#stopped(sessionId);
    this.#check();
    super.commit(steps);
  }
  override prune(before: number, isLive: (sessionId: string) => boolean): number {
    this.#check();
    return super.prune(before, isLive);
  }
  /**
   * A session whose commit fails is stopped (C16): the orchestrator records it with the last
   * seq the store holds for it, where the re-activation goes on numbering.
   */
  #stopped(session: string): void {
    failedSessions++;
    const loaded = this.load(session, { recent: 0, history: 0 });
    const seq = loaded ? Math.max(loaded.session.seq, loaded.lastSeq) : 0;
    process.stdout.write(`FAILED ${JSON.stringify({ session, seq })}\n`);
  }
}
const store = new FaultyStore(values.db ?? 'soak.db');
/** Sessions a failed commit stopped, and what the store refused: reported at `store ok`. */
let failedSessions = 0;

const runtime = createRuntime({
  agent,
  store,
  debounceMs: SOAK_SETTINGS.debounceMs,
  maxWaitMs: SOAK_SETTINGS.maxWaitMs,
  turnTimeoutMs: SOAK_SETTINGS.turnTimeoutMs,
  idleTimeoutMs: SOAK_SETTINGS.idleTimeoutMs,
  onError: (error) => {
    // Store outages are recorded by the store itself (FAILED lines); the runtime reports each once.
    if (error instanceof StoreUnavailableError && store.failing) return;
    console.error('baton:', error);
  },
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
  const command = line.trim();
  if (command === 'store fail' || command === 'store ok') {
    store.failing = command === 'store fail';
    process.stdout.write(`STORE ${JSON.stringify({ failing: store.failing, refused: store.refused, failedSessions })}\n`);
    return;
  }
  if (command !== 'stats') return;
  (globalThis as { gc?: () => void }).gc?.();
  const stats = {
    heap: process.memoryUsage().heapUsed,
    handles: process.getActiveResourcesInfo().length,
    behaviours: seen,
    loopDelayMs: { p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 },
    health: runtime.health(),
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
  const kind = agentKind({ agent, commands: new Map(), settingsFor: () => settings });
  return { ...kind, machine: broken };
}

/**
 * The soak's gateway process: the real gateway and runtime with the chaos agent, on a SQLite
 * store (`--db PATH`) or, as one node of a cluster, on PostgreSQL (`--store postgres://…
 * --schema S --node-id N`), with the soak's tools (C19), whose executions it appends to
 * `--tool-log PATH` under its name `--proc NAME`. A planted bug, for the checker to catch:
 * `--plant overlap` serves agent sessions with a broken machine (an input during a turn
 * starts another turn without ending the first); `duplicate-result` emits every
 * `tool_result` twice; `missing-result` emits none; `unapproved` registers the guarded tool
 * without `needsApproval`; `double-fire` hands every schedule's fire to its session a second
 * time, past the durable inbox and the idempotency window (C20).
 *
 * One session in eight runs under busy policy `reject` (by seeded chance), the rest under
 * `collect`: a schedule that fires while its session is busy is refused there (C20). The
 * schedules the agent sets with `turn.schedule`, and the fires its turns are handed, are
 * appended to the tool log too.
 *
 * Prints `READY <port>`; answers a `stats` line on stdin with `STATS <json>` (heap after a
 * full GC, active handles, agent behaviours seen, runtime health). On SQLite, `store fail`
 * makes every write of the store fail as a full disk does until `store ok` (answered
 * `STORE <json>`); each session a failed commit stops is printed as `FAILED <json>` (C16).
 * On PostgreSQL, every committed step with events is printed as `COMMIT <json>`: its seqs
 * and the epoch that wrote them (C17). SIGTERM: graceful shutdown, exit 0.
 */
import { createInterface } from 'node:readline';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { enqueueActions } from 'xstate';
import { createRuntime, StaleEpochError, StoreUnavailableError, sessionDefaults, sessionMachine, type BusyPolicy, type SessionContext, type SessionMachineEvent } from '../../src/index.ts';
import { createGateway } from '../../src/gateway/index.ts';
import { agentKind } from '../../src/runtime/agent-kind.ts';
import type { SessionKind } from '../../src/runtime/kind.ts';
import { BEHAVIOURS, chaosAgent, type Behaviour } from './chaos-agent.ts';
import { hash } from './random.ts';
import { SOAK_JWT_SECRET, SOAK_SETTINGS } from './settings.ts';
import { FaultyStore, RecordingPostgresStore } from './stores.ts';
import { executionLog, soakTools } from './tools.ts';

const { values } = parseArgs({
  options: {
    db: { type: 'string' },
    store: { type: 'string' },
    schema: { type: 'string' },
    'node-id': { type: 'string' },
    'lease-ttl-ms': { type: 'string' },
    'renew-ms': { type: 'string' },
    port: { type: 'string' },
    seed: { type: 'string' },
    plant: { type: 'string' },
    faults: { type: 'string' },
    proc: { type: 'string' },
    'tool-log': { type: 'string' },
  },
});
const seed = Number(values.seed ?? 1);
const seen = Object.fromEntries([...Object.keys(BEHAVIOURS), 'flood', 'tools', 'schedule'].map((b) => [b, 0])) as Record<Behaviour, number>;
const proc = values.proc ?? `p${process.pid}`;
const toolLog = executionLog(values['tool-log'] ?? 'soak-tools.jsonl');
const t = () => performance.timeOrigin + performance.now();
const agent = chaosAgent(seed, SOAK_SETTINGS.turnTimeoutMs, seen, values.faults !== 'off', {
  set: (session, { id, dueAt, everyMs }) => toolLog.write({ k: 'schedule', t: t(), proc, session, id, dueAt, ...(everyMs !== undefined && { everyMs }) }),
  handed: (session, input, at) => toolLog.write({ k: 'fire', t: t(), proc, session, input, at }),
});
const tools = soakTools({ seed, proc, log: toolLog, skipApproval: values.plant === 'unapproved' });
/** One session in eight refuses inputs while busy, a schedule's fire included (C20). */
const busyPolicy = (sessionId: string): BusyPolicy => (hash(seed, sessionId, 'busy policy') % 8 === 0 ? 'reject' : 'collect');

// A cluster node: its lease options are the soak's (a killed node's sessions move within
// a few seconds, so a short run sees them run elsewhere), set here rather than by the CLI.
const cluster = values.store?.startsWith('postgres') ?? false;
const store = cluster
  ? new RecordingPostgresStore({
      url: values.store!,
      schema: values.schema ?? 'baton_soak',
      nodeId: values['node-id'] ?? `soak-${process.pid}`,
      leaseTtlMs: Number(values['lease-ttl-ms'] ?? 5000),
      renewMs: Number(values['renew-ms'] ?? 1000),
    })
  : new FaultyStore(values.db ?? 'soak.db');
const runtime = createRuntime({
  agent,
  store,
  debounceMs: SOAK_SETTINGS.debounceMs,
  maxWaitMs: SOAK_SETTINGS.maxWaitMs,
  turnTimeoutMs: SOAK_SETTINGS.turnTimeoutMs,
  idleTimeoutMs: SOAK_SETTINGS.idleTimeoutMs,
  approvalTimeoutMs: SOAK_SETTINGS.approvalTimeoutMs,
  settingsFor: (sessionId) => ({ busyPolicy: busyPolicy(sessionId) }),
  tools,
  onError: (error) => {
    // Store outages are recorded by the store itself (FAILED lines); the runtime reports each once.
    if (error instanceof StoreUnavailableError && store instanceof FaultyStore && store.failing) return;
    // A session another node claimed (this node's lease looked dead) stops here: the health counts it.
    if (error instanceof StaleEpochError && error.sessionId !== undefined) return;
    console.error('baton:', error);
  },
  ...(values.plant !== undefined && { kinds: { planted: plantedKind(values.plant) } }),
});
const gateway = createGateway({
  runtime,
  // C18: every soak client authenticates as its session's owner.
  jwt: { secret: SOAK_JWT_SECRET },
  port: Number(values.port ?? 0),
  rateLimit: { perSecond: 100, burst: 200 },
  // Every soak client comes from 127.0.0.1: the per-address limits would take them for one attacker.
  frameBudget: { perSecond: 10_000, burst: 20_000 },
  sessionRate: { perSecond: 1e6, burst: 1e6 },
  maxConnectionsPerAddress: 1e6,
  maxHandshakesPerAddress: 1e6,
  initTimeoutMs: 5000,
  drainMs: 2000,
});
const { port } = await gateway.listen();
const loop = monitorEventLoopDelay({ resolution: 10 });
loop.enable();
process.stdout.write(`READY ${port}\n`);

createInterface({ input: process.stdin }).on('line', (line) => {
  const command = line.trim();
  if ((command === 'store fail' || command === 'store ok') && store instanceof FaultyStore) {
    store.failing = command === 'store fail';
    process.stdout.write(`STORE ${JSON.stringify({ failing: store.failing, refused: store.refused, failedSessions: store.failedSessions })}\n`);
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
  void gateway.close().then(async () => {
    await store.close();
    toolLog.close();
    process.exit(0);
  });
});

/** The planted bug's kind: the agent kind with the soak's tools, broken as `plant` says. */
function plantedKind(plant: string): SessionKind {
  const settings = { ...sessionDefaults, ...SOAK_SETTINGS, commandHelp: [] };
  const kind = agentKind({ agent, commands: new Map(), tools: new Map(tools.map((t) => [t.name, t])), approvalTimeoutMs: SOAK_SETTINGS.approvalTimeoutMs, settingsFor: () => settings });
  switch (plant) {
    case 'overlap':
      return { ...kind, machine: overlappingMachine() };
    case 'duplicate-result':
    case 'missing-result':
      // The driver's outputs, with every tool_result said twice or never.
      return {
        ...kind,
        driver: (session) =>
          kind.driver!({
            ...session,
            output: (event) => {
              if (event.type !== 'tool_result') return session.output(event);
              if (plant === 'duplicate-result') {
                session.output(event);
                session.output(event);
              }
            },
          }),
      };
    case 'unapproved':
      return kind; // the tools were registered without needsApproval
    case 'double-fire':
      // When a turn takes a schedule's fire, the same fire is handed to the machine again,
      // straight past the host's idempotency window: the next turn takes it once more.
      return {
        ...kind,
        driver: (session) => {
          const inner = kind.driver!(session);
          const again = new Set<string>();
          return {
            effect: (effect) => {
              inner.effect(effect);
              if (effect.type !== 'turn.start') return;
              const { inputs } = (effect as unknown as { turn: { inputs: readonly { id: string }[] } }).turn;
              for (const { id } of inputs.filter((i) => i.id.startsWith('timer:') && !again.has(i.id))) {
                again.add(id);
                const input = { id, content: session.payload(id)?.content ?? '' };
                session.defer(() => session.dispatch({ type: 'input', input } as SessionMachineEvent));
              }
            },
            closeTurn: (done) => inner.closeTurn!(done),
            stop: () => inner.stop(),
            busy: () => inner.busy?.() ?? false,
            journal: () => inner.journal?.(),
          };
        },
      };
    default:
      throw new Error(`--plant must be overlap, duplicate-result, missing-result, unapproved or double-fire; got "${plant}"`);
  }
}

/** `interrupt` that forgets to end the running turn, for every input during a turn. */
function overlappingMachine() {
  return sessionMachine.provide({
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
}

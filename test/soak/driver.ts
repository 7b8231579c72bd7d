/**
 * A soak client process: drives sessions `from`..`to` against the gateway with seeded
 * chaos — single inputs and bursts, commands, resent ids, malformed and oversized frames,
 * disconnects with resume, slow reading, several connections per session — and records
 * every frame it sees. Reconnects (resuming from the last seq it saw) whenever the gateway
 * goes away, which it does once, killed on purpose, or closes a session's connections
 * (1013) because its store failed; resends, with the same id, an input the store refused
 * (INTERNAL_ERROR naming it), as a client retrying would (C10 makes a resend safe).
 *
 * Answers each `permission_request` once, by seeded chance: allows, denies, ignores it (it
 * times out) or sends `/stop` (C19).
 *
 * Sets schedules of its session (C20) — one-shots due soon or already due, now and then a
 * recurring one — and cancels some; at the end it cancels its recurring ones and waits for
 * the one-shots it is owed to fire, as it waits for the dones of its inputs.
 *
 * `--url` may name several gateways (a cluster's nodes, comma-separated): then every new
 * connection goes to one of them by seeded chance, so a session's connections are spread
 * over nodes and its resumes land on any of them.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { FLOOD_PREFIX } from './chaos-agent.ts';
import { Conn } from './client-connection.ts';
import { ClientSchedules } from './client-schedules.ts';
import { ACTIONS, CALM, DECISIONS, MALFORMED, MALFORMED_WEIGHTS } from './faults.ts';
import { historyWriter } from './history.ts';
import { hash, pick, prng } from './random.ts';
import { soakSessionId } from './settings.ts';

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    from: { type: 'string' },
    to: { type: 'string' },
    seed: { type: 'string' },
    seconds: { type: 'string' },
    out: { type: 'string' },
    kind: { type: 'string' },
    faults: { type: 'string' },
    name: { type: 'string' },
    'wind-down': { type: 'string' },
  },
});
const urls = values.url!.split(',');
const seed = Number(values.seed ?? 1);
const deadline = now() + Number(values.seconds ?? 30) * 1000;
const faults = values.faults !== 'off';
const agentKind = values.kind ?? 'agent';
const name = values.name ?? 'c';
/** How long the end of the run waits for dones still owed (a planted bug loses some for good). */
const windDownMs = Number(values['wind-down'] ?? 15_000);
const history = historyWriter(values.out!);
const injected: Record<string, number> = {};
let connections = 0;

function now(): number {
  return performance.timeOrigin + performance.now();
}
/** Floods are megabytes each: at most one per client process every few seconds. */
const FLOOD_EVERY_MS = 8000;
let lastFlood = 0;
const count = (fault: string) => (injected[fault] = (injected[fault] ?? 0) + 1);
/** An exponential pause (so load arrives as a Poisson process), cut short at the deadline. */
const think = (random: () => number, meanMs: number) => sleep(Math.min(-Math.log(1 - random()) * meanMs, Math.max(0, deadline - now())));

class Session {
  readonly random: () => number;
  /** Which node each new connection goes to: its own stream, so one gateway's run draws as before. */
  readonly #nodes: () => number;
  readonly conns: Conn[] = [];
  lastSeq = 0;
  /** Acked inputs not yet seen in a done (ids): the end of the run waits for them. Unacked ones are not owed a done. */
  readonly pending = new Set<string>();
  /** Ids seen in a done: a duplicate's late ack must not make them pending again. */
  readonly finished = new Set<string>();
  /** What each input not yet seen in a done said, by id: a refused one is resent as it was. */
  readonly #content = new Map<string, string>();
  /** Inputs refused with INTERNAL_ERROR (the store could not take them) and not accepted since: sent again later. */
  readonly refused = new Map<string, string>();
  question: string | undefined;
  answered = new Set<string>();
  /** Calls whose permission_request this client has answered (or chosen to ignore): each once, however many connections saw it. */
  readonly #asked = new Set<string>();
  /** Its schedules (C20), drawn from a stream of their own. */
  readonly schedules: ClientSchedules;
  #n = 0;

  constructor(readonly id: string, readonly kind: string, readonly onboarding: boolean) {
    this.random = prng(hash(seed, id));
    this.#nodes = prng(hash(seed, id, 'node'));
    this.schedules = new ClientSchedules(prng(hash(seed, id, 'schedules')), count);
  }

  get workerType(): string {
    return this.onboarding ? 'onboarding' : this.kind;
  }

  observe(type: string, data: Record<string, any>): void {
    this.schedules.observe(type, data);
    if (type === 'done') {
      for (const id of [...(data.input_ids ?? []), ...(data.cancelled_input_ids ?? [])]) {
        this.pending.delete(id);
        this.finished.add(id);
        this.#content.delete(id);
        this.refused.delete(id);
      }
    }
    if (type === 'input.ack' && data.status === 'accepted') {
      this.refused.delete(data.client_message_id);
      if (!this.finished.has(data.client_message_id)) this.pending.add(data.client_message_id);
    }
    // Not acknowledged, so not owed a done: the client may send it again (C16).
    if (type === 'error' && data.code === 'INTERNAL_ERROR' && typeof data.event_id === 'string') {
      const content = this.#content.get(data.event_id);
      if (content !== undefined && !this.pending.has(data.event_id)) this.refused.set(data.event_id, content);
    }
    if (type === 'question_request' && !this.answered.has(data.id)) this.question = data.id;
    if (type === 'permission_request' && !this.#asked.has(data.id)) {
      this.#asked.add(data.id);
      this.#decide(data.id);
    }
  }

  /**
   * The user's answer to a permission request, after a moment's thought (up to 300 ms of the
   * 500 ms it has): drawn from the call's own seeded stream, so the session's other choices
   * do not depend on when requests arrive. Sent on the first live connection, if any.
   */
  #decide(call: string): void {
    const random = prng(hash(seed, this.id, call));
    const choice = pick(random, DECISIONS);
    count(`approval: ${choice}`);
    if (choice === 'ignore') return;
    setTimeout(() => {
      const conn = this.live()[0];
      if (!conn) {
        count('approval: no connection to answer on');
        return;
      }
      if (choice === 'stop') conn.send('input', { content: '/stop' }, `stop-${call}`);
      else conn.send('permission_response', { id: call, allowed: choice === 'allow', ...(choice === 'deny' && { reason: 'chaos says no' }) }, `perm-${call}`, { decision: { call, allowed: choice === 'allow' } });
    }, random() * 300);
  }

  live(): Conn[] {
    return this.conns.filter((c) => c.open);
  }

  async connect(): Promise<void> {
    for (let attempt = 0; now() < deadline + 20_000; attempt++) {
      const node = urls.length > 1 ? Math.floor(this.#nodes() * urls.length) : undefined;
      const url = urls[node ?? 0]!;
      const conn = new Conn({ url, id: `${name}-${connections++}`, history, owner: this, node }, this.lastSeq > 0 ? this.lastSeq : undefined);
      this.conns.push(conn);
      if (await conn.opened) return;
      await sleep(100 + Math.min(attempt, 10) * 100);
    }
  }

  nextId(prefix = 'm'): string {
    return `${prefix}${this.#n++}`;
  }

  input(content: string, id = this.nextId(), conn = this.any()): void {
    if (!conn?.open) return;
    conn.unanswered.set(id, (conn.unanswered.get(id) ?? 0) + 1);
    if (!this.finished.has(id)) this.#content.set(id, content);
    conn.send('input', { content }, id);
  }

  /** Sends again, with the same ids, the inputs the store refused (on the first live connection: the seeded choices stay as they were). */
  resendRefused(): void {
    const conn = this.live()[0];
    if (!conn) return;
    for (const [id, content] of this.refused) {
      this.refused.delete(id);
      count('resent after a store error');
      this.input(content, id, conn);
    }
  }

  any(): Conn | undefined {
    const live = this.live();
    return live[Math.floor(this.random() * live.length)];
  }

  async run(): Promise<void> {
    const random = this.random;
    const extra = 1 + Math.floor(random() * 3);
    for (let i = 0; i < extra; i++) await this.connect();
    const first = this.live()[0];
    if (first && !this.onboarding) this.schedules.opening(first, () => this.live()[0]);
    while (now() < deadline) {
      await think(random, 2500);
      // Nothing new past the deadline: a fault sent now might not be answered before the end.
      if (now() >= deadline) break;
      if (this.live().length === 0) await this.connect();
      const conn = this.any();
      if (!conn) continue;
      this.resendRefused();
      if (this.onboarding) {
        if (this.question) {
          const id = this.nextId('a');
          this.answered.add(this.question);
          this.question = undefined;
          this.input(`answer ${id}`, id);
          if (faults && random() < 0.2) {
            count('resent id');
            this.input(`answer ${id}`, id); // the same id again: a duplicate, processed once
          }
        } else if (random() < 0.1) {
          conn.send('ping', {}, this.nextId('p'));
        }
        continue;
      }
      const action = pick(random, faults ? ACTIONS : CALM);
      count(action);
      switch (action) {
        case 'input':
          this.input(`hello ${this.#n}`);
          break;
        case 'burst':
          for (let i = 0, n = 2 + Math.floor(random() * 4); i < n; i++) this.input(`burst ${i}`);
          break;
        case 'status':
          conn.send('input', { content: '/status' }, this.nextId('c'));
          break;
        case 'stop':
          conn.send('input', { content: '/stop' }, this.nextId('c'));
          break;
        case 'resent id': {
          const id = this.nextId();
          this.input('twice', id);
          this.input('twice', id);
          break;
        }
        case 'malformed': {
          const id = this.nextId('bad');
          const variant = pick(random, MALFORMED_WEIGHTS);
          const { payload, code, byId } = MALFORMED[variant](id);
          count(`malformed: ${variant}`);
          conn.raw(payload, id, 'malformed', { code, byId });
          break;
        }
        case 'oversized': {
          const id = this.nextId('big');
          conn.raw(JSON.stringify({ version: 'aep/v1', id, event: { type: 'input', data: { content: 'x'.repeat(40_000) } } }), id, 'oversized');
          break;
        }
        case 'disconnect mid-turn':
          this.input('then I leave');
          conn.close();
          await sleep(random() * 500);
          await this.connect();
          break;
        case 'slow reader':
          conn.ws.pause();
          if (random() < 0.1 && now() - lastFlood >= FLOOD_EVERY_MS) {
            // Not reading while 6 MB stream out: the gateway must drop deltas and say so in done.
            lastFlood = now();
            count('slow reader of a flood');
            this.input(`${FLOOD_PREFIX} me`);
            await sleep(2000 + random() * 1000);
          } else {
            this.input('read me slowly');
            await sleep(200 + random() * 1500);
          }
          conn.ws.resume();
          break;
        case 'schedule':
          this.schedules.set(conn, () => this.live()[0]);
          break;
        case 'schedule cancel':
          this.schedules.cancelOne(conn);
          break;
      }
    }
    // Recurring schedules stop with the run: a session they keep waking never passivates.
    const last = this.live()[0];
    if (last) for (const id of this.schedules.recurring()) this.schedules.cancel(last, id);
    // Wind down: nothing new; let what was sent finish (turns end within the turn timeout).
    const owed = () => this.pending.size > 0 || this.conns.some((c) => c.unanswered.size > 0) || this.schedules.owed();
    for (let waited = 0; owed() && waited < windDownMs; waited += 100) {
      if (this.live().length === 0) await this.connect();
      await sleep(100);
    }
    // Wait for every close: an answer still in flight is recorded, and so is the close.
    const closing = this.conns.filter((c) => !c.closed);
    for (const conn of closing) conn.close();
    await Promise.race([Promise.all(closing.map((c) => c.ended)), sleep(5000)]);
  }
}

const from = Number(values.from ?? 0);
const to = Number(values.to ?? 10);
const sessions: Session[] = [];
for (let i = from; i < to; i++) {
  const random = prng(hash(seed, 'kind', i));
  sessions.push(new Session(soakSessionId(seed, i), agentKind, random() < 0.1));
}
// Stagger the starts so the gateway sees arrivals, not one wall of handshakes.
await Promise.all(sessions.map(async (s, i) => {
  await sleep((i / sessions.length) * 2000);
  await s.run();
}));
await history.close();
process.stdout.write(`DONE ${JSON.stringify({ injected, connections, unfinished: sessions.reduce((n, s) => n + s.pending.size, 0) })}\n`);
process.exit(0);

/**
 * PostgresStore latencies against a real server (not part of `npm run bench`, which needs
 * no database): `BATON_BENCH_PG_URL=postgres://… node --import tsx bench/postgres-store.ts`.
 * Uses a schema of its own and drops it. Prints p50/p99 in milliseconds.
 */
import postgres from 'postgres';
import { PostgresStore } from '../src/postgres.ts';
import type { StepRecord } from '../src/index.ts';

const url = process.env.BATON_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `bench_${process.pid}`;
const noHints = { inbox: () => {}, events: () => {}, leaseLost: () => {} };
const snapshot = { value: 'idle', context: { history: 'x'.repeat(2_000), settings: { debounceMs: 300 } } };

/** A typical step: one input accepted and consumed, three events, two transcript entries, the snapshot. */
function turn(sessionId: string, n: number): StepRecord {
  const seq = n * 3;
  return {
    sessionId,
    accepted: [{ id: `m${n}`, content: 'hello there' }],
    events: [1, 2, 3].map((i) => ({ sessionId, seq: seq + i, type: 'state', data: { state: 'idle' } }) as const),
    consumed: [`m${n}`],
    transcript: [{ role: 'user', content: 'hello there', inputId: `m${n}` }, { role: 'assistant', content: 'hi!' }],
    session: { sessionId, kind: 'agent', snapshot, seq: seq + 3 },
  };
}

/** Times `fn` (or takes the milliseconds it returns, when it times only part of itself). */
async function time(name: string, runs: number, fn: (i: number) => Promise<unknown>): Promise<void> {
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    const own = await fn(i);
    samples.push(typeof own === 'number' ? own : performance.now() - start);
  }
  samples.sort((a, b) => a - b);
  const at = (q: number) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))]!.toFixed(2);
  console.log(`${name.padEnd(44)} p50 ${at(0.5).padStart(6)}  p99 ${at(0.99).padStart(6)}  (n=${runs})`);
}

const a = new PostgresStore({ url, schema, nodeId: 'bench-a' });
const b = new PostgresStore({ url, schema, nodeId: 'bench-b' });
try {
  await a.join(noHints);
  let heard: (() => void) | undefined;
  await b.join({ ...noHints, inbox: () => heard?.() });
  for (let i = 0; i < 50; i++) await a.commit([turn('warm', i)]);
  await time('commit: 1 session, a typical step', 500, (i) => a.commit([turn('one', i)]));
  await time('commit: group of 20 sessions, a step each', 100, (i) => a.commit(Array.from({ length: 20 }, (_, s) => turn(`g${s}`, i))));
  await time('load: claim a released session (+ parts)', 200, async (i) => {
    await a.commit([{ ...turn(`c${i}`, 0), release: true }]);
    const start = performance.now();
    await b.load(`c${i}`, { recent: 20, history: 20 });
    return performance.now() - start;
  });
  await time('load: a session this node owns already', 200, () => a.load('one', { recent: 20, history: 20 }));
  await time('load: owned elsewhere (answers ownedBy)', 200, () => b.load('one', { recent: 20, history: 20 }));
  await time('deliver: mail to another node', 200, (i) => b.deliver('one', { kind: 'input', entry: { id: `d${i}`, content: 'x' } }));
  await time('deliver → inbox hint heard by the other node', 200, (i) => {
    const heardIt = new Promise<void>((resolve) => (heard = resolve));
    return Promise.all([a.deliver('hinted', { kind: 'input', entry: { id: `h${i}`, content: 'x' } }), heardIt]);
  });
} finally {
  await Promise.all([a.close(), b.close()]);
  const admin = postgres(url, { onnotice: () => {} });
  await admin.unsafe(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await admin.end();
}

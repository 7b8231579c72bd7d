/**
 * Memory: heap per live idle session and per passivated one (after `global.gc()`), and the
 * SQLite file per session; plus the time to re-activate passivated sessions from SQLite.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SimulatedClock } from 'xstate';
import { createRuntime, MemoryStore, SqliteStore } from '../src/index.ts';

const gc = () => {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (!collect) throw new Error('run with node --expose-gc');
  collect();
  collect();
};
const heap = () => {
  gc();
  return process.memoryUsage().heapUsed;
};
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

export async function memory(sessions: number) {
  const clock = new SimulatedClock();
  const before = heap();
  const runtime = createRuntime({ agent: async () => 'ok', debounceMs: 0, clock, idleTimeoutMs: 60_000, store: new MemoryStore() });
  for (let i = 0; i < sessions; i++) runtime.send(`s${i}`, { id: 'm1', content: 'hello' });
  await settle();
  const live = heap();
  clock.increment(60_000);
  clock.increment(60_000);
  await settle();
  if (runtime.sessionIds().length !== 0) throw new Error('sessions were not passivated');
  const passivated = heap();
  await runtime.shutdown({ drainMs: 0 });
  return {
    heap_bytes_per_live_session: Math.round((live - before) / sessions),
    heap_bytes_per_passivated_session: Math.round((passivated - before) / sessions),
  };
}

export async function sqlite(sessions: number) {
  const dir = mkdtempSync(join(tmpdir(), 'baton-bench-'));
  try {
    const path = join(dir, 'bench.db');
    const clock = new SimulatedClock();
    const first = createRuntime({ agent: async () => 'ok', debounceMs: 0, clock, idleTimeoutMs: 60_000, store: new SqliteStore(path) });
    for (let i = 0; i < sessions; i++) first.send(`s${i}`, { id: 'm1', content: 'hello' });
    await settle();
    clock.increment(60_000);
    clock.increment(60_000);
    await first.shutdown({ drainMs: 0 });
    const bytes = statSync(path).size + (statSync(`${path}-wal`, { throwIfNoEntry: false })?.size ?? 0);
    const store = new SqliteStore(path);
    const second = createRuntime({ agent: async () => 'ok', debounceMs: 0, store });
    const start = performance.now();
    for (let i = 0; i < sessions; i++) second.open(`s${i}`);
    const ms = performance.now() - start;
    await second.shutdown({ drainMs: 0 });
    store.close();
    return { sqlite_bytes_per_session: Math.round(bytes / sessions), reactivate_ms: ms };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

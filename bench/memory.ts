/**
 * Memory: heap per live idle session and per passivated one (after `global.gc()`), with the
 * SQLite store — the one `npm start` uses, whose data is on disk, so the heap is what the
 * runtime itself holds — and with the memory store, whose data is in the heap too. Also the
 * SQLite file per session and the time to re-activate passivated sessions from it.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SimulatedClock } from 'xstate';
import { createRuntime, MemoryStore, type Receipt, type Store } from '../src/index.ts';
import { SqliteStore } from '../src/sqlite.ts';

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
const accepted = (receipts: readonly Receipt[]) => {
  const refused = receipts.find((receipt) => receipt.status !== 'accepted');
  if (refused) throw new Error(`bench input rejected: ${refused.code}`);
};

/** `sessions` sessions with one turn each, then idle, then passivated: heap per session at each point. */
async function footprint(sessions: number, store: Store, progress: (text: string) => void) {
  const clock = new SimulatedClock();
  const before = heap();
  const runtime = createRuntime({ agent: async () => 'ok', debounceMs: 0, clock, idleTimeoutMs: 60_000, maxLiveSessions: sessions, store });
  // Sent without awaiting each (every session is claimed at the call); the receipts are
  // awaited ten thousand at a time, so holding them costs little and is over before measuring.
  let receipts: Promise<Receipt>[] = [];
  for (let i = 0; i < sessions; i++) {
    receipts.push(runtime.send(`s${i}`, { id: 'm1', content: 'hello' }));
    if (i % 10_000 === 9_999 || i === sessions - 1) {
      accepted(await Promise.all(receipts));
      receipts = [];
      progress(`${i + 1} sessions`);
      await settle();
    }
  }
  await settle();
  const live = heap();
  clock.increment(60_000);
  clock.increment(60_000);
  await settle();
  if (runtime.sessionIds().length !== 0) throw new Error('sessions were not passivated');
  const passivated = heap();
  await runtime.shutdown({ drainMs: 0 });
  return { live: Math.round((live - before) / sessions), passivated: Math.round((passivated - before) / sessions) };
}

export async function memory(sessions: number, progress: (text: string) => void) {
  const dir = mkdtempSync(join(tmpdir(), 'baton-bench-'));
  try {
    const path = join(dir, 'bench.db');
    progress(`memory store: ${sessions} sessions`);
    const inMemory = await footprint(sessions, new MemoryStore(), progress);
    progress(`SQLite store: ${sessions} sessions`);
    const store = new SqliteStore(path);
    const onDisk = await footprint(sessions, store, progress);
    store.close();
    const bytes = statSync(path).size + (statSync(`${path}-wal`, { throwIfNoEntry: false })?.size ?? 0);
    return {
      heap_bytes_per_live_session: onDisk.live,
      heap_bytes_per_passivated_session: onDisk.passivated,
      heap_bytes_per_live_session_memory_store: inMemory.live,
      heap_bytes_per_passivated_session_memory_store: inMemory.passivated,
      sqlite_bytes_per_session: Math.round(bytes / sessions),
      reactivate_10k_ms: await reactivate(path, Math.min(sessions, 10_000)),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Opens the first `count` stored sessions in a fresh runtime; returns the time for 10,000. */
async function reactivate(path: string, count: number): Promise<number> {
  const store = new SqliteStore(path);
  const runtime = createRuntime({ agent: async () => 'ok', debounceMs: 0, store });
  const start = performance.now();
  for (let i = 0; i < count; i++) await runtime.open(`s${i}`);
  const ms = performance.now() - start;
  await runtime.shutdown({ drainMs: 0 });
  store.close();
  return (ms * 10_000) / count;
}

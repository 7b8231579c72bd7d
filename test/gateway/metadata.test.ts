/**
 * C12 over a real socket: metadata shaped like XState actor references (and keys like
 * `__proto__` that only JSON can carry as data) is still data after a restart.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Turn } from '../../src/index.ts';
import { SqliteStore } from '../../src/sqlite.ts';
import { Client, startGateway } from './client.ts';

const dir = mkdtempSync(join(tmpdir(), 'baton-gw-metadata-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Raw JSON, as a client writes it: parsed, `__proto__` is an own key, not a prototype. */
const METADATA = [
  '{"xstate$$type":1,"id":"x"}',
  '{"id":"child","sessionId":"x.1","send":"x","ref":"r"}',
  '{"nested":{"list":[{"xstate$$type":1,"id":"y"}]},"lang":"en"}',
  '{"__proto__":{"xstate$$type":1,"id":"p"},"constructor":{"prototype":{"polluted":true}}}',
];

describe('C12 metadata over the gateway', () => {
  it('C12: metadata shaped like actor references, held in a snapshot across a gateway restart, reaches the agent as sent', async () => {
    const db = join(dir, 'meta.db');
    const held = () => new Promise<never>(() => {}); // the first turn never ends: the rest wait behind it
    const g1 = await startGateway({ runtime: { store: new SqliteStore(db), agent: held }, gateway: { drainMs: 0 } });
    const { client } = await Client.attach(g1.url, { session_id: 'meta' });
    for (const [i, json] of METADATA.entries()) {
      client.raw(`{"version":"aep/v1","id":"in-${i}","event":{"type":"input","data":{"content":"input ${i}","metadata":${json}}}}`);
      const ack = await client.until((f) => f.event.type === 'input.ack' && f.event.data.client_message_id === `in-${i}`);
      expect(ack.event.data.durability).toBe('durable');
    }
    await g1.gateway.close();

    const received = new Map<string, unknown>();
    let all: () => void = () => {};
    const done = new Promise<void>((resolve) => (all = resolve));
    const agent = (turn: Turn) => {
      for (const input of turn.inputs) received.set(input.id, input.metadata);
      if (received.size === METADATA.length) all();
      return 'ok';
    };
    const g2 = await startGateway({ runtime: { store: new SqliteStore(db), agent } });
    try {
      await done;
      for (const [i, json] of METADATA.entries()) {
        const metadata = received.get(`in-${i}`);
        expect(JSON.stringify(metadata), `in-${i}`).toBe(JSON.stringify(JSON.parse(json)));
        expect(metadata).toEqual(JSON.parse(json));
        expect(Object.getPrototypeOf(metadata)).toBe(Object.prototype);
      }
    } finally {
      await g2.gateway.close();
    }
  }, 20_000);
});
